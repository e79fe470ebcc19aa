"""Causal tracing: which hidden states, at which layer and token, carry a fact to the answer.

Algorithm (Meng et al. 2022, "Locating and Editing Factual Associations in GPT",
arXiv:2202.05262, section 2.1):

1. *Clean run.* Run each prompt ("The capital of France is") and keep every layer's
   ``resid_post``, ``attn_out`` and ``mlp_out``, and p(answer) at the last position. The answer is
   the given one (" Paris") or, without one, the clean run's top-1 token.
2. *Corrupted runs.* Add Gaussian noise N(0, (ν·σ)²) to the input embeddings (the ``embed`` site)
   of the subject tokens (" France"), ``samples`` times per prompt. ν is ``noise`` (3 by default,
   as in ROME); σ is the standard deviation of all entries of the model's token-embedding matrix
   ``W_E`` (times the scale the embedding module applies, e.g. Gemma's √d_model), unless ``sigma`` is
   given. ROME measured σ over the embeddings of its dataset's subject tokens; the whole matrix
   makes σ a property of the model alone, the same for every dataset. The noise is drawn once per
   (prompt, sample) from ``seed`` and shared by every cell of that pair.
3. *Restored runs.* For each layer l and position i, run the corrupted prompt again with the clean
   state put back at position i: ``resid`` restores ``resid_post`` of layer l; ``attn`` and
   ``mlp`` restore ``attn_out`` (resp. ``mlp_out``) at position i in every layer of the window
   ``max(0, l - window//2) .. min(L-1, l + ceil(window/2) - 1)`` (ROME's rule: window 10 gives
   layers l-5..l+4; window 1 restores layer l alone).
4. The *indirect effect* of a cell is p(answer | corrupted + restored) - p(answer | corrupted),
   averaged over the noise samples and kept per prompt. Cells before the first subject token
   are exactly 0 (with causal attention nothing there differs) and are not run.

Rows (prompt, sample, cell) are packed into the batch dimension and chunked under
``batch_budget_mb`` (`interplab.techniques._trace_sweep`). Where the model supports partial
forwards (`Model.supports_partial`, the Llama family) a row skips what cannot change: it joins at
the first layer it restores (the corrupted run's residual stream below it is reused), runs the
model's decoder layers on the positions from i onward over the corrupted run's keys and values
before i (`Model.partial`), and unembeds the last position only. Other models run every row
through the whole model with hooks (still batched); both equal a one-cell-at-a-time
``model.intervene`` loop (the tests check it). The options live in `TracingConfig`; the result
is a `TracingResult` (`interplab.results.tracing`), drawn by `interplab.viz`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor

from interplab.core.memory import resolve_budget
from interplab.core.model import Model
from interplab.data.factual import FACTUAL_TEMPLATES
from interplab.data.pairs import ContrastPair, PairDataset
from interplab.provenance import Provenance, data_hash
from interplab.results.tracing import (
    TRACE_COMPONENTS,
    TraceComponent,
    TracingCell,
    TracingConfig,
    TracingError,
    TracingResult,
    window_range,
)
from interplab.store import recorded
from interplab.techniques._trace_sweep import Sweep, TraceInputs, sweep

PromptsLike = str | Sequence[str] | PairDataset | Sequence[ContrastPair] | Tensor
SubjectsLike = Sequence[str] | Sequence[tuple[int, int]] | str | None


@recorded("causal_tracing", inputs="prompts")
def causal_tracing(
    model: Model,
    prompts: PromptsLike,
    *,
    subjects: SubjectsLike = None,
    answers: Sequence[str] | Sequence[int] | Tensor | None = None,
    noise: float = 3.0,
    sigma: float | None = None,
    samples: int = 10,
    window: int = 10,
    components: Sequence[TraceComponent] | TraceComponent = TRACE_COMPONENTS,
    seed: int = 0,
    method: str = "auto",
    batch_budget_mb: float | Literal["auto"] = 512.0,
    progress: bool = True,
    config: TracingConfig | None = None,
) -> TracingResult:
    """Returns p(answer) with each (layer, position) state restored inside runs whose subject
    embeddings carry Gaussian noise, per prompt, for ``resid``, ``attn`` and ``mlp``.

    ``prompts`` are strings with ``subjects`` (one substring each), a factual `PairDataset` or
    list of `ContrastPair` (clean prompts and answers; subjects found from the templates), or
    token ids ``[n, pos]`` with ``subjects`` as token spans ``(start, stop)``. ``method`` is
    ``auto`` (the suffix path where the model supports partial forwards), ``suffix`` or
    ``hooks``; ``config`` replaces the keyword options."""
    cfg = config or TracingConfig(
        components=(components,) if isinstance(components, str) else tuple(components),
        noise=noise,
        sigma=sigma,
        samples=samples,
        window=window,
        seed=seed,
        method=method,  # type: ignore[arg-type]
        batch_budget_mb=batch_budget_mb,
    )
    plan = plan_tracing(model, prompts, subjects=subjects, answers=answers, config=cfg)
    out = sweep(
        model,
        plan.inputs,
        cfg.components,
        plan.noises,
        cfg.window,
        plan.method,
        resolve_budget(cfg.batch_budget_mb, model.device),
        progress,
    )
    return tracing_result(model, plan, out)


@dataclass(frozen=True)
class TracePlan:
    """What a causal-tracing sweep runs on: the options, the prepared prompts, σ, the noise of
    every (prompt, sample) and the path (``suffix`` or ``hooks``, and why not ``suffix``)."""

    config: TracingConfig
    inputs: TraceInputs
    sigma: float
    noises: list[Tensor]  # per prompt [samples, pos, d_model]
    method: Literal["suffix", "hooks"]
    fallback: str


def plan_tracing(
    model: Model,
    prompts: PromptsLike,
    *,
    subjects: SubjectsLike = None,
    answers: Sequence[str] | Sequence[int] | Tensor | None = None,
    config: TracingConfig,
) -> TracePlan:
    """Returns the plan of `causal_tracing`'s sweep: prompts checked and tokenised, subject spans
    found, σ measured and the noise drawn (steps 1-2 of the module docstring, before any run)."""
    cfg = config
    inputs = _prepare(model, prompts, subjects, answers)
    sig = embedding_std(model) if cfg.sigma is None else float(cfg.sigma)
    reason = model.partial_support()
    if cfg.method == "suffix" and reason is not None:
        raise TracingError(f"method='suffix' cannot run on this model: {reason}")
    run_suffix = cfg.method == "suffix" or (cfg.method == "auto" and reason is None)
    noises = subject_noise(
        inputs.ids, inputs.spans, cfg.samples, cfg.noise * sig, cfg.seed, model.dims.d_model
    )
    fallback = reason if cfg.method == "auto" and reason is not None else ""
    return TracePlan(cfg, inputs, sig, noises, "suffix" if run_suffix else "hooks", fallback)


def tracing_result(model: Model, plan: TracePlan, out: Sweep) -> TracingResult:
    """Returns the `TracingResult` of a finished sweep (as `causal_tracing` builds it)."""
    cfg, inputs = plan.config, plan.inputs
    return TracingResult(
        components=cfg.components,
        restored=out.restored,
        clean=out.clean,
        corrupted=out.corrupted.mean(1),
        corrupted_samples=out.corrupted,
        tokens=inputs.tokens,
        subject_spans=inputs.spans,
        prompts=inputs.prompts,
        subjects=inputs.subjects,
        answers=[_decode(model, a) for a in out.answer_ids],
        answer_ids=out.answer_ids,
        noise=float(cfg.noise),
        sigma=plan.sigma,
        samples=cfg.samples,
        window=cfg.window,
        method=plan.method,
        fallback=plan.fallback,
        provenance=Provenance(
            technique="causal_tracing",
            model=model.info.to_dict(),
            config=cfg.to_dict(),
            data_sha256=inputs.data_sha256,
            seed=cfg.seed,
        ),
    )


def factual_subjects(
    pairs: PairDataset | Sequence[ContrastPair], templates: Sequence[str] | None = None
) -> list[str]:
    """Returns the subject (the country) of each pair's clean prompt, read off the templates."""
    if templates is None:
        params = getattr(pairs, "params", {}) or {}
        templates = tuple(params.get("templates") or FACTUAL_TEMPLATES)
    out = []
    for pair in pairs:
        found = None
        for template in templates:
            prefix, _, suffix = template.partition("{country}")
            text = pair.clean
            if text.startswith(prefix) and text.endswith(suffix):
                middle = text[len(prefix) : len(text) - len(suffix)]
                if middle:
                    found = middle
                    break
        if found is None:
            raise TracingError(
                f"prompt {pair.clean!r} matches none of the factual templates {list(templates)}; "
                "pass subjects= with one subject string per prompt"
            )
        out.append(found)
    return out


def subject_noise(
    ids: list[Tensor],
    spans: list[tuple[int, int]],
    samples: int,
    scale: float,
    seed: int,
    d_model: int,
) -> list[Tensor]:
    """Returns per prompt the noise added to the embed site ``[samples, pos, d_model]``: zero
    outside the subject, ``scale`` times standard normal on it, drawn in prompt order from one
    generator seeded with ``seed``."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for row, (start, stop) in zip(ids, spans, strict=True):
        full = torch.zeros(samples, len(row), d_model)
        full[:, start:stop] = scale * torch.randn(samples, stop - start, d_model, generator=g)
        out.append(full)
    return out


@torch.no_grad()
def embedding_std(model: Model) -> float:
    """Returns σ: the standard deviation of all entries of ``W_E``, times the scale the embedding
    module applies to its rows (1 on most models, √d_model on Gemma), measured on one row."""
    w_e = model.weights.W_E.detach()
    std = float(w_e.float().std())
    row = int(w_e.float().norm(dim=1).argmax())
    raw = w_e[row].float()
    embedded = model.embed(torch.tensor([[row]]))[0, 0].float()
    return std * float((embedded @ raw) / (raw @ raw))


# -- inputs ---------------------------------------------------------------------------------------


def _prepare(
    model: Model,
    prompts: PromptsLike,
    subjects: SubjectsLike,
    answers: Sequence[str] | Sequence[int] | Tensor | None,
) -> TraceInputs:
    if isinstance(prompts, Tensor):
        return _prepare_ids(model, prompts, subjects, answers)
    if isinstance(prompts, str):
        prompts = [prompts]
    items = list(prompts)
    if not items:
        raise TracingError("no prompts given")
    if all(isinstance(p, ContrastPair) for p in items):
        pairs: list[ContrastPair] = items  # type: ignore[assignment]
        if subjects is None:
            subjects = factual_subjects(prompts)  # type: ignore[arg-type]
        if answers is None:
            answers = [p.answer for p in pairs]
        texts = [p.clean for p in pairs]
    elif all(isinstance(p, str) for p in items):
        texts = [str(p) for p in items]
    else:
        raise TracingError("prompts must be strings, ContrastPairs or a tensor of token ids")
    if model.tokenizer is None:
        raise TracingError("this model has no tokenizer; pass token ids [n, pos] and spans")
    if isinstance(subjects, str):
        subjects = [subjects]
    if subjects is None or len(subjects) != len(texts):
        got = "none" if subjects is None else len(subjects)
        raise TracingError(f"give one subject per prompt: {len(texts)} prompts, {got} subjects")
    if not all(isinstance(s, str) and s for s in subjects):
        raise TracingError("subjects of text prompts must be non-empty strings")
    subj: list[str] = list(subjects)  # type: ignore[arg-type]
    for text, subject in zip(texts, subj, strict=True):
        if subject not in text:
            raise TracingError(f"subject {subject!r} does not occur in prompt {text!r}")
    ids, spans = [], []
    for text, subject in zip(texts, subj, strict=True):
        row = model.tokenize(text).ids[0]
        ids.append(row)
        spans.append(_find_subject(model, text, subject, row))
    answer_ids = _answer_ids(model, answers, len(texts))
    return TraceInputs(
        ids,
        spans,
        answer_ids,
        [model.to_str_tokens(r) for r in ids],
        texts,
        subj,
        data_hash({"prompts": texts, "subjects": subj, "answers": answer_ids}),
    )


def _prepare_ids(model: Model, ids: Tensor, subjects: SubjectsLike, answers: Any) -> TraceInputs:
    rows = model.tokenize(ids).ids
    n, length = rows.shape
    if subjects is None or isinstance(subjects, str) or len(subjects) != n:
        raise TracingError(f"token ids need subjects= as {n} token spans (start, stop)")
    spans = []
    for i, span in enumerate(subjects):
        if isinstance(span, str) or len(span) != 2:
            raise TracingError(f"subject {i} must be a token span (start, stop), got {span!r}")
        start, stop = int(span[0]), int(span[1])
        if not 0 <= start < stop <= length:
            raise TracingError(
                f"subject span {(start, stop)} of prompt {i} is not inside its {length} tokens"
            )
        spans.append((start, stop))
    answer_ids = _answer_ids(model, answers, n)
    return TraceInputs(
        list(rows),
        spans,
        answer_ids,
        [[_decode(model, int(t)) for t in r] for r in rows],
        None,
        None,
        data_hash({"ids": rows, "spans": spans, "answers": answer_ids}),
    )


def _answer_ids(model: Model, answers: Any, n: int) -> list[int | None]:
    if answers is None:
        return [None] * n
    items = answers.tolist() if isinstance(answers, Tensor) else list(answers)
    if len(items) != n:
        raise TracingError(f"give one answer per prompt: {n} prompts, {len(items)} answers")
    out: list[int | None] = []
    for a in items:
        tid = model.token_id(a) if isinstance(a, str) else int(a)
        if not 0 <= tid < model.dims.d_vocab:
            raise TracingError(
                f"answer id {tid} is outside the vocabulary 0..{model.dims.d_vocab - 1}"
            )
        out.append(tid)
    return out


def _find_subject(model: Model, prompt: str, subject: str, ids: Tensor) -> tuple[int, int]:
    """Returns the token span ``[start, stop)`` covering the first occurrence of ``subject``."""
    at = prompt.find(subject)
    tok = model.tokenizer
    if not getattr(tok, "is_fast", False):
        raise TracingError("finding subject tokens needs a fast tokenizer (offset mappings)")
    enc = tok(prompt, add_special_tokens=True, return_offsets_mapping=True)
    if list(enc["input_ids"]) != ids.tolist():
        raise TracingError(f"prompt {prompt!r} tokenises differently with offsets")
    end = at + len(subject)
    hit = [i for i, (s, e) in enumerate(enc["offset_mapping"]) if e > s and s < end and e > at]
    if not hit:
        raise TracingError(f"subject {subject!r} covers no token of prompt {prompt!r}")
    return hit[0], hit[-1] + 1


def _decode(model: Model, token: int) -> str:
    return model.tokenizer.decode([token]) if model.tokenizer is not None else f"<{token}>"


__all__ = [
    "TRACE_COMPONENTS",
    "TracePlan",
    "TracingCell",
    "TracingConfig",
    "TracingError",
    "TracingResult",
    "causal_tracing",
    "embedding_std",
    "factual_subjects",
    "plan_tracing",
    "subject_noise",
    "tracing_result",
    "window_range",
]
