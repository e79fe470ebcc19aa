"""Chain-of-thought resampling (thought anchors) and prompt-variation sweeps.

Thought anchors (Bogdan et al. 2025, "Thought Anchors: Which LLM reasoning steps matter?"):

1. Take a reasoning trace (given, or the model's greedy reply) and split it into sentences.
2. For each cut point ``i`` (just before sentence ``i``), resample ``n`` continuations of
   prompt + sentences ``< i`` in batches over the shared prefix (`sample`), and read each
   continuation's final answer with ``answer_pattern``. The trace must end with its answer; the
   row after the last sentence is the trace itself (all kept: its own answer).
3. A resample *replaces* sentence ``i`` with its own first sentence; with a user's
   ``similar(a, b)`` function only replacements not similar to the original count as different
   (the paper keeps replacements below a cosine-similarity threshold); without one, any textual
   change counts.
4. Counterfactual importance of sentence ``i``: the rate of reaching the original answer with the
   sentence kept (cut ``i + 1``, all resamples) minus the rate with it replaced by a different
   sentence (cut ``i``, different resamples only), with a two-sample bootstrap CI and a
   permutation p-value (`interplab.stats.two_sample_permutation_test`).

A prompt-variation sweep samples each variant of a prompt ``n`` times and reports the rate of
samples matching a pattern per variant, its difference from a reference variant, the same
two-sample CI and permutation test.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import numpy as np

from interplab.configs import ConfigError
from interplab.core.model import Model
from interplab.provenance import Provenance, data_hash
from interplab.results.blackbox import ResamplingResult, SweepResult
from interplab.stats import two_sample_permutation_test
from interplab.store import recorded
from interplab.techniques.blackbox.chat import ChatTemplate, Message, user
from interplab.techniques.blackbox.generation import SamplingConfig, sample

ANSWER_PATTERN = r"answer is\W*([\w.\-]+)"
_SENTENCE = re.compile(r"[^.!?\n]+(?:[.!?]+|\n+|$)")


def sentences(text: str) -> list[tuple[int, int]]:
    """Returns the (start, end) character spans of ``text``'s sentences (ends at . ! ? or a
    line break; the spans cover the text, whitespace going to the sentence before it)."""
    starts = [
        m.start() + len(m.group()) - len(m.group().lstrip())
        for m in _SENTENCE.finditer(text)
        if m.group().strip()
    ]
    return [
        (0 if k == 0 else a, starts[k + 1] if k + 1 < len(starts) else len(text))
        for k, a in enumerate(starts)
    ]


def extract_answer(text: str, pattern: str = ANSWER_PATTERN) -> str:
    """Returns the last answer ``pattern`` (its first group) finds in ``text``, lower-cased and
    stripped of trailing punctuation, or "" if none."""
    found = re.findall(pattern, text, flags=re.IGNORECASE)
    if not found:
        return ""
    last = found[-1] if isinstance(found[-1], str) else found[-1][0]
    return last.lower().rstrip(".,;:!?")


@recorded("thought_anchors", inputs="prompt")
def thought_anchors(
    model: Model,
    prompt: str | Sequence[Message],
    *,
    trace: str | None = None,
    answer_pattern: str = ANSWER_PATTERN,
    n: int = 100,
    max_new_tokens: int = 96,
    temperature: float = 1.0,
    similar: Callable[[str, str], bool] | None = None,
    seed: int = 0,
    batch_size: int = 50,
    progress: bool = False,
) -> ResamplingResult:
    """Returns each sentence's counterfactual importance for the trace's final answer, from
    ``n`` resamples at every cut (see the module docstring)."""
    try:
        re.compile(answer_pattern)
    except re.error as e:
        raise ConfigError(f"answer_pattern is not a regular expression: {e}") from None
    template = ChatTemplate.of(model)
    convo = [user(prompt)] if isinstance(prompt, str) else list(prompt)
    head = template.prompt(convo)
    if trace is None:
        greedy = SamplingConfig(n=1, max_new_tokens=max_new_tokens, temperature=0)
        trace = sample(model, template.ids(head), greedy).texts[0]
    spans = sentences(trace)
    if not spans:
        raise ConfigError("the trace has no sentences to resample")
    answer = extract_answer(trace, answer_pattern)
    if not answer:
        raise ConfigError(
            f"the trace has no final answer matching answer_pattern {answer_pattern!r}; give a "
            "trace that ends with its answer (e.g. 'The answer is 7.') or a pattern that finds it"
        )
    cuts = [a for a, _ in spans]
    replacements: list[list[str]] = []
    answers: list[list[str]] = []
    for i, cut in enumerate(cuts):
        cfg = SamplingConfig(
            n=n, max_new_tokens=max_new_tokens, temperature=temperature, seed=seed + i,
            batch_size=batch_size,
        )  # fmt: skip
        out = sample(model, template.ids(head + trace[:cut]), cfg, progress=progress)
        replacements.append([_first_sentence(t) for t in out.texts])
        answers.append([extract_answer(trace[:cut] + t, answer_pattern) for t in out.texts])
    # With every sentence kept the trace is itself: its answer, nothing to resample.
    replacements.append([""] * n)
    answers.append([answer] * n)
    originals = [trace[a:b] for a, b in spans]
    different = np.ones((len(cuts) + 1, n), dtype=bool)
    for i, original in enumerate(originals):
        for j, new in enumerate(replacements[i]):
            same = similar(new, original) if similar is not None else _same(new, original)
            different[i, j] = not same
    same_answer = np.array([[a == answer and a != "" for a in row] for row in answers], dtype=bool)
    k = len(originals)
    importance = np.full(k, np.nan)
    low, high, p = np.full(k, np.nan), np.full(k, np.nan), np.full(k, np.nan)
    for i in range(k):
        kept = same_answer[i + 1].astype(np.float64)
        replaced = same_answer[i][different[i]].astype(np.float64)
        if replaced.size == 0:
            continue
        importance[i] = kept.mean() - replaced.mean()
        low[i], high[i] = two_sample_ci(kept, replaced, seed=seed)
        p[i] = float(two_sample_permutation_test(kept, replaced, seed=seed).p_value)
    return ResamplingResult(
        prompt=head,
        trace=trace,
        sentences=originals,
        answer=answer,
        replacements=replacements,
        answers=answers,
        different=different,
        same_answer=same_answer,
        importance=importance,
        ci_low=low,
        ci_high=high,
        p_value=p,
        n_replaced=different[:k].sum(1).astype(np.int64),
        provenance=Provenance(
            technique="thought_anchors",
            model=model.info.to_dict(),
            config={
                "n": n,
                "max_new_tokens": max_new_tokens,
                "temperature": temperature,
                "answer_pattern": answer_pattern,
                "similar": None if similar is None else getattr(similar, "__name__", "user"),
                "batch_size": batch_size,
            },
            data_sha256=data_hash([head, trace]),
            seed=seed,
        ),
    )


def two_sample_ci(
    a: np.ndarray,
    b: np.ndarray,
    *,
    seed: int = 0,
    n_resamples: int = 4000,
    confidence: float = 0.95,
) -> tuple[float, float]:
    """Returns the percentile bootstrap interval of ``mean(a) - mean(b)`` for two independent
    samples (each resampled on its own)."""
    rng = np.random.default_rng(seed)
    ma = a[rng.integers(0, a.size, (n_resamples, a.size))].mean(1)
    mb = b[rng.integers(0, b.size, (n_resamples, b.size))].mean(1)
    tail = (1 - confidence) / 2
    lo, hi = np.quantile(ma - mb, [tail, 1 - tail])
    return float(lo), float(hi)


def _first_sentence(text: str) -> str:
    spans = sentences(text)
    return text[spans[0][0] : spans[0][1]] if spans else text


def _same(a: str, b: str) -> bool:
    return " ".join(a.lower().split()) == " ".join(b.lower().split())


@recorded("prompt_sweep", inputs="variants")
def prompt_sweep(
    model: Model,
    variants: Sequence[str],
    pattern: str,
    *,
    labels: Sequence[str] | None = None,
    reference: int = 0,
    n: int = 32,
    max_new_tokens: int = 32,
    temperature: float = 1.0,
    seed: int = 0,
    progress: bool = False,
) -> SweepResult:
    """Returns, per prompt variant (user messages), the rate of ``n`` samples matching
    ``pattern`` and its difference from variant ``reference`` with a CI and p-value."""
    if len(variants) < 2:
        raise ConfigError("a sweep needs at least two prompt variants")
    if not 0 <= reference < len(variants):
        raise ConfigError(f"reference must lie in 0..{len(variants) - 1}")
    names = list(labels) if labels is not None else [f"v{i}" for i in range(len(variants))]
    if len(names) != len(variants):
        raise ConfigError(f"{len(names)} labels for {len(variants)} variants")
    try:
        regex = re.compile(pattern, re.IGNORECASE)
    except re.error as e:
        raise ConfigError(f"pattern is not a regular expression: {e}") from None
    template = ChatTemplate.of(model)
    texts: list[list[str]] = []
    for i, v in enumerate(variants):
        cfg = SamplingConfig(
            n=n, max_new_tokens=max_new_tokens, temperature=temperature, seed=seed + i
        )
        texts.append(
            sample(model, template.ids(template.prompt([user(v)])), cfg, progress=progress).texts
        )
    matches = np.array([[bool(regex.search(t)) for t in row] for row in texts], dtype=bool).T
    values = matches.astype(np.float64)
    ref = values[:, reference]
    diff = values.mean(0) - ref.mean()
    low, high, p = np.zeros(len(variants)), np.zeros(len(variants)), np.ones(len(variants))
    for i in range(len(variants)):
        if i != reference:
            low[i], high[i] = two_sample_ci(values[:, i], ref, seed=seed)
            p[i] = float(two_sample_permutation_test(values[:, i], ref, seed=seed).p_value)
    return SweepResult(
        variants=list(variants),
        labels=names,
        pattern=pattern,
        texts=texts,
        matches=matches,
        difference=diff,
        ci_low=low,
        ci_high=high,
        p_value=p,
        reference=reference,
        provenance=Provenance(
            technique="prompt_sweep",
            model=model.info.to_dict(),
            config={"n": n, "max_new_tokens": max_new_tokens, "temperature": temperature},
            data_sha256=data_hash([list(variants), pattern]),
            seed=seed,
        ),
    )


__all__ = [
    "ANSWER_PATTERN",
    "extract_answer",
    "prompt_sweep",
    "sentences",
    "thought_anchors",
    "two_sample_ci",
]
