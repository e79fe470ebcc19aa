"""Causal tracing: which hidden states, at which layer and token, carry a fact to the answer.

Algorithm (Meng et al. 2022, "Locating and Editing Factual Associations in GPT",
arXiv:2202.05262, section 2.1):

1. *Clean run.* Run each prompt ("The capital of France is") and keep every layer's
   ``resid_post``, ``attn_out`` and ``mlp_out``, and p(answer) at the last position. The answer is
   the given one (" Paris") or, without one, the clean run's top-1 token.
2. *Corrupted runs.* Add Gaussian noise N(0, (ν·σ)²) to the input embeddings (the ``embed`` site)
   of the subject tokens (" France"), ``samples`` times per prompt. ν is ``noise`` (3 by default,
   as in ROME); σ is the standard deviation of all entries of the model's token-embedding matrix
   (times the embedding scale the model applies, e.g. Gemma's √d_model), unless ``sigma`` is
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
``batch_budget_mb``. On the Llama family a row skips what cannot change: it joins at the first
layer it restores (the corrupted run's residual stream below it is reused), runs HF's own decoder
layers on the positions from i onward with the corrupted run's keys and values before i, and
unembeds the last position only. Other families run every row through the whole model with hooks
(still batched); both equal a one-cell-at-a-time ``model.intervene`` loop (the tests check it).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
from torch import Tensor

from interplab.core.model import Model
from interplab.data.factual import FACTUAL_TEMPLATES
from interplab.data.pairs import ContrastPair, PairDataset
from interplab.errors import UserError
from interplab.provenance import Provenance, data_hash, write_json
from interplab.stats import Summary, summarize
from interplab.stats.summary import SummaryCorrection
from interplab.techniques._trace_sweep import _sweep

if TYPE_CHECKING:
    from interplab.viz.interactive import Heatmap

TRACE_COMPONENTS: tuple[str, ...] = ("resid", "attn", "mlp")

PromptsLike = str | Sequence[str] | PairDataset | Sequence[ContrastPair] | Tensor
SubjectsLike = Sequence[str] | Sequence[tuple[int, int]] | str | None


class TracingError(UserError):
    """Inputs or options that causal tracing cannot run with."""


@dataclass(frozen=True)
class TracingResult:
    """Per-prompt p(answer) with each cell restored, the clean and corrupted baselines, inputs."""

    components: tuple[str, ...]
    restored: dict[str, np.ndarray]  # component -> [n, layer, pos], mean over samples; NaN past end
    clean: np.ndarray  # [n] p(answer) of the clean run
    corrupted: np.ndarray  # [n] p(answer) of the corrupted run, mean over samples
    corrupted_samples: np.ndarray  # [n, samples]
    tokens: list[list[str]]
    subject_spans: list[tuple[int, int]]  # token positions [start, stop) of each subject
    prompts: list[str] | None
    subjects: list[str] | None
    answers: list[str]
    answer_ids: list[int]
    noise: float  # ν: the noise standard deviation in units of sigma
    sigma: float
    samples: int
    window: int
    method: str  # "suffix" (layers and positions that cannot change are skipped) or "hooks"
    provenance: Provenance

    @property
    def n(self) -> int:
        return len(self.clean)

    @property
    def lengths(self) -> list[int]:
        return [len(t) for t in self.tokens]

    def effect(self, component: str = "resid") -> np.ndarray:
        """Returns the indirect effect per prompt and cell ``[n, layer, pos]`` (NaN past the end)."""
        return self._restored(component) - self.corrupted[:, None, None]

    def window_layers(self, layer: int) -> range:
        """Returns the layers an ``attn``/``mlp`` cell at ``layer`` restores."""
        n_layers = next(iter(self.restored.values())).shape[1]
        return window_range(layer, self.window, n_layers)

    def summary(
        self,
        component: str = "resid",
        *,
        correction: SummaryCorrection = "holm",
        alpha: float = 0.05,
        seed: int = 0,
        n_resamples: int = 10_000,
    ) -> Summary:
        """Returns per cell the mean effect with its CI over prompts, a sign-flip test against 0,
        and Holm correction over the cells; cells before the subject in every prompt (exactly 0)
        are not tested."""
        values = self._aligned(component, "a summary").copy()
        if self.n < 2:
            raise TracingError("a summary needs at least 2 prompts (CIs are over prompts)")
        first = min(start for start, _ in self.subject_spans)
        values[:, :, :first] = np.nan
        return summarize(
            values,
            null=0.0,
            correction=correction,
            alpha=alpha,
            seed=seed,
            n_resamples=n_resamples,
        )

    def top_cells(
        self, component: str = "resid", k: int = 10, *, summary: Summary | None = None
    ) -> list[dict[str, Any]]:
        """Returns the ``k`` cells with the largest mean effect, with CI and Holm-adjusted p."""
        s = summary if summary is not None else self.summary(component)
        mean = np.where(np.isnan(s.mean), -np.inf, s.mean).ravel()
        out = []
        for flat in np.argsort(-mean, kind="stable")[:k]:
            layer, pos = (int(i) for i in np.unravel_index(int(flat), s.cell_shape))
            out.append(
                {
                    "cell": f"L{layer}.{component} @ {pos} {self.tokens[0][pos]!r}",
                    "layer": layer,
                    "pos": pos,
                    "mean": float(s.mean[layer, pos]),
                    "ci_low": float(s.ci_low[layer, pos]),
                    "ci_high": float(s.ci_high[layer, pos]),
                    "p_adjusted": float(s.p_adjusted[layer, pos]),
                    "significant": bool(s.significant[layer, pos]),
                }
            )
        return out

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "technique": "causal_tracing",
            "components": list(self.components),
            "axes": ["example", "layer", "pos"],
            "restored": self.restored,
            "effects": {c: self.effect(c) for c in self.components},
            "clean": self.clean,
            "corrupted": self.corrupted,
            "corrupted_samples": self.corrupted_samples,
            "tokens": self.tokens,
            "subject_spans": [list(s) for s in self.subject_spans],
            "prompts": self.prompts,
            "subjects": self.subjects,
            "answers": self.answers,
            "answer_ids": self.answer_ids,
            "noise": self.noise,
            "sigma": self.sigma,
            "noise_std": self.noise * self.sigma,
            "samples": self.samples,
            "window": self.window,
            "method": self.method,
            "provenance": self.provenance.to_dict(),
        }
        if self.n >= 2 and len(set(self.lengths)) == 1:
            d["summary"] = {c: self.summary(c).to_dict() for c in self.components}
        return d

    def to_json(self, path: str | Path) -> Path:
        """Writes the result as JSON, atomically (an interrupt never leaves half a file)."""
        return write_json(path, self.to_dict())

    def figure(self, example: int | None = None) -> Any:
        """Returns one layer × position heatmap per component of the mean effect over prompts
        (or of one prompt's with ``example``); subject tokens are starred on the x axis."""
        from interplab.viz.figures import heatmaps_figure

        return heatmaps_figure(
            self.heatmaps(example), self._title(example), "position (token; * subject)"
        )

    def save_plot(self, path: str | Path, example: int | None = None) -> list[Path]:
        """Writes the figure as PNG at ``path`` and the interactive heatmaps beside it (.html)."""
        from interplab.viz.interactive import save_plot

        return save_plot(self.figure(example), path, self.heatmaps(example), self._title(example))

    def heatmaps(self, example: int | None = None) -> list[Heatmap]:
        """Returns the interactive heatmaps (one per component) that `figure` draws."""
        from interplab.viz.interactive import Heatmap

        maps = []
        for c in self.components:
            if example is not None:
                values = self.effect(c)[example, :, : self.lengths[example]]
                faded, hover, tokens, span = None, None, self.tokens[example], [example]
            else:
                values = self._aligned(c, "the averaged heatmap").mean(0)
                faded, hover = None, None
                if self.n >= 2:
                    s = self.summary(c)
                    faded = ~np.asarray(s.significant)
                    hover = [
                        [
                            f"95% CI [{s.ci_low[li, p]:+.3f}, {s.ci_high[li, p]:+.3f}], "
                            f"p (Holm) {s.p_adjusted[li, p]:.3g}"
                            for p in range(values.shape[1])
                        ]
                        for li in range(values.shape[0])
                    ]
                tokens, span = self.tokens[0], list(range(self.n))
            subject = {p for e in span for p in range(*self.subject_spans[e])}
            labels = [_label(t) + ("*" if p in subject else "") for p, t in enumerate(tokens)]
            what = {"resid": "resid_post", "attn": "attn_out", "mlp": "mlp_out"}[c]
            extra = "" if c == "resid" else f", window {self.window}"
            maps.append(
                Heatmap(
                    values=np.nan_to_num(np.asarray(values, dtype=float)),
                    row_labels=[str(li) for li in range(values.shape[0])],
                    col_labels=labels,
                    title=f"restore {what}{extra}",
                    value_label="Δ p(answer)",
                    hover=hover,
                    faded=faded,
                    diverging=True,
                )
            )
        return maps

    def _title(self, example: int | None) -> str:
        who = f"prompt {example}" if example is not None else f"mean over n={self.n} prompts"
        return (
            f"causal tracing, {who}: p(answer) clean {self.clean.mean():.3f}, corrupted "
            f"{self.corrupted.mean():.3f} (noise {self.noise:g}σ, σ={self.sigma:.3g}, "
            f"{self.samples} samples); * subject token"
        )

    def _restored(self, component: str) -> np.ndarray:
        if component not in self.restored:
            raise TracingError(
                f"no grid for {component!r}; this result has {', '.join(self.components)}"
            )
        return self.restored[component]

    def _aligned(self, component: str, what: str) -> np.ndarray:
        if len(set(self.lengths)) > 1:
            raise TracingError(
                f"{what} needs prompts of one token length so that a position means the same "
                f"token in every prompt; these have lengths {sorted(set(self.lengths))}. Trace "
                "prompts of one template and subject length, or pass example= for one prompt"
            )
        return self.effect(component)


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
    components: Sequence[str] | str = TRACE_COMPONENTS,
    seed: int = 0,
    batch_budget_mb: float = 512.0,
    progress: bool = True,
) -> TracingResult:
    """Returns p(answer) with each (layer, position) state restored inside runs whose subject
    embeddings carry Gaussian noise, per prompt, for ``resid``, ``attn`` and ``mlp``.

    ``prompts`` are strings with ``subjects`` (one substring each), a factual `PairDataset` or
    list of `ContrastPair` (clean prompts and answers; subjects found from the templates), or
    token ids ``[n, pos]`` with ``subjects`` as token spans ``(start, stop)``."""
    comps = _check_options(components, noise, sigma, samples, window, batch_budget_mb)
    inputs = _prepare(model, prompts, subjects, answers)
    sig = _embedding_std(model) if sigma is None else float(sigma)
    scale = float(noise) * sig
    reason = _suffix_unsupported(model)
    method = "hooks" if reason else "suffix"
    noises = subject_noise(inputs.ids, inputs.spans, samples, scale, seed, model.dims.d_model)
    out = _sweep(model, inputs, comps, noises, window, method, batch_budget_mb, progress)
    config = {
        "components": list(comps),
        "noise": float(noise),
        "sigma": sig,
        "sigma_definition": "given" if sigma is not None else "std of token-embedding entries",
        "noise_std": scale,
        "samples": samples,
        "window": window,
        "window_rule": "layers max(0, l - window//2) .. min(L-1, l + ceil(window/2) - 1)",
        "method": method,
        "note": f"hook path used: {reason}" if reason else "",
        "batch_budget_mb": batch_budget_mb,
    }
    return TracingResult(
        components=comps,
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
        noise=float(noise),
        sigma=sig,
        samples=samples,
        window=window,
        method=method,
        provenance=Provenance(
            technique="causal_tracing",
            model=model.info.to_dict(),
            config=config,
            data_sha256=inputs.data_sha256,
            seed=seed,
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


def window_range(layer: int, window: int, n_layers: int) -> range:
    """Returns the layers restored around ``layer``: ROME's ``max(0, l - w//2)`` up to and
    excluding ``min(L, l + ceil(w/2))``."""
    return range(max(0, layer - window // 2), min(n_layers, layer + math.ceil(window / 2)))


# -- inputs ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Inputs:
    ids: list[Tensor]  # one [pos] tensor per prompt (no padding)
    spans: list[tuple[int, int]]
    answer_ids: list[int | None]
    tokens: list[list[str]]
    prompts: list[str] | None
    subjects: list[str] | None
    data_sha256: str


def _check_options(
    components: Sequence[str] | str,
    noise: float,
    sigma: float | None,
    samples: int,
    window: int,
    budget: float,
) -> tuple[str, ...]:
    comps = (components,) if isinstance(components, str) else tuple(components)
    if not comps:
        raise TracingError(f"no components given; choose from {', '.join(TRACE_COMPONENTS)}")
    for c in comps:
        if c not in TRACE_COMPONENTS:
            raise TracingError(
                f"unknown component {c!r}; causal tracing restores {', '.join(TRACE_COMPONENTS)} "
                "(resid_post, attn_out, mlp_out)"
            )
    if len(set(comps)) != len(comps):
        raise TracingError(f"components repeat: {comps}")
    if not math.isfinite(noise) or noise < 0:
        raise TracingError(f"noise is a multiple of sigma and must be >= 0, got {noise}")
    if sigma is not None and (not math.isfinite(sigma) or sigma < 0):
        raise TracingError(f"sigma must be >= 0 (or None for the embedding std), got {sigma}")
    if not isinstance(samples, int) or samples < 1:
        raise TracingError(f"samples (noise draws per prompt) must be an int >= 1, got {samples}")
    if not isinstance(window, int) or window < 1:
        raise TracingError(f"window (layers restored per attn/mlp cell) must be >= 1, got {window}")
    if budget <= 0:
        raise TracingError(f"batch_budget_mb must be positive, got {budget}")
    return comps


def _prepare(
    model: Model,
    prompts: PromptsLike,
    subjects: SubjectsLike,
    answers: Sequence[str] | Sequence[int] | Tensor | None,
) -> _Inputs:
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
    return _Inputs(
        ids,
        spans,
        answer_ids,
        [model.to_str_tokens(r) for r in ids],
        texts,
        subj,
        data_hash({"prompts": texts, "subjects": subj, "answers": answer_ids}),
    )


def _prepare_ids(model: Model, ids: Tensor, subjects: SubjectsLike, answers: Any) -> _Inputs:
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
    return _Inputs(
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


def _embedding_std(model: Model) -> float:
    hf: Any = model.hf
    emb = hf.get_input_embeddings()
    scale = getattr(emb, "embed_scale", 1.0)
    weight = cast("Tensor", emb.weight)
    return float(weight.detach().float().std()) * float(scale)


def _suffix_unsupported(model: Model) -> str | None:
    cfg = model.hf.config
    if model.adapter.family not in ("llama", "qwen3"):
        return f"the suffix path supports the Llama family, not {model.adapter.family}"
    if any(t != "full_attention" for t in getattr(cfg, "layer_types", None) or ()):
        return "the model mixes attention types"
    if getattr(cfg, "final_logit_softcapping", None):
        return "the model soft-caps its logits"
    return None


def _decode(model: Model, token: int) -> str:
    return model.tokenizer.decode([token]) if model.tokenizer is not None else f"<{token}>"


def _label(token: str) -> str:
    return token.replace("\n", "\\n")
