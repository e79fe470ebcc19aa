"""Activation patching: the causal effect of each component at each layer (and position or head).

Algorithm (Vig et al. 2020; Meng et al. 2022; Wang et al. 2022; the conventions of Heimersheim &
Nanda 2024, "How to use and interpret activation patching"):

1. Tokenise the clean and corrupt prompt of every pair and check that they align token by token
   (a clear error names the first pair that does not), and that answers are single tokens.
2. Run the clean and the corrupt prompts once; their metrics (`interplab.techniques.metrics`) at
   the answer position are the baselines.
3. *Denoising* runs the corrupt prompt and patches in the clean activation of one cell; *noising*
   runs the clean prompt and patches in the corrupt one. Ablations (``source="zero"|"mean"|
   "resample"``) run the clean prompt and replace the cell by zero, its mean over the examples, or
   another example's activation (resampling: Chan et al. 2022).
4. A cell is one component (``resid_pre``, ``resid_mid``, ``resid_post``, ``attn_out``,
   ``mlp_out``, or one head's ``attn.z``) at one layer, and one token position
   (``per="position"``) or every position at once (``per="all"``).
5. The effect of a cell is the patched run's metric minus the unpatched run's, kept per example.

Three implementations compute step 5. The reference (``method="loop"``) patches one cell at a
time with `model.run`'s interventions: slow, obviously correct, any architecture; tests hold the
others to it. ``method="hooks"`` packs many cells into the batch dimension (row = cell ×
example, each row patched by an `Apply` intervention), chunked under ``batch_budget_mb``: any
architecture, whole forwards. The fast path (``method="fast"``, `interplab.techniques._fast_patch`)
also skips work that cannot change: the layers below the patch, the positions before it (through
a KV cache of the unpatched run), and the logits other than the metric's. ``method="auto"`` takes
the fast path where it applies, else the packed hook path, and says why.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, cast, get_args

import numpy as np
import torch
from torch import Tensor

from interplab.core.interventions import Ablate, AblateMethod, Apply, Intervention, Patch
from interplab.core.model import Model
from interplab.provenance import Provenance
from interplab.sites import Site
from interplab.techniques._grid import (
    Direction,
    GridResult,
    Inputs,
    PairsLike,
    PatchingError,
    Per,
    TokenPairs,
    check_options,
    grid_shape,
    prepare,
)
from interplab.techniques._progress import progress_bar
from interplab.techniques.metrics import Metric, MetricName, Targets

if TYPE_CHECKING:
    pass

Source = Literal["contrast", "zero", "mean", "resample"]
Method = Literal["auto", "fast", "hooks", "loop"]
SOURCES: tuple[str, ...] = get_args(Source)
METHODS: tuple[str, ...] = get_args(Method)

FAST_TOLERANCE = 1e-4
"""The fast path equals the one-cell hook loop within ``FAST_TOLERANCE * (1 + |metric|)`` in
float32: it runs different batch shapes and kernels (a KV cache, gathered unembedding rows), which
round differently; the tests measure the gap on every family it supports."""


@dataclass(frozen=True)
class PatchingResult(GridResult):
    """Per-example effect of patching every cell, with the clean and corrupt baselines."""

    source: Source = "contrast"
    method: str = "hooks"
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        d["source"], d["method"], d["note"] = self.source, self.method, self.note
        return d

    def patched(self, component: str | None = None) -> np.ndarray:
        """Returns the patched runs' metric per example and cell (base + effect)."""
        e = self.effect(component)
        return e + self.base.reshape((-1,) + (1,) * (e.ndim - 1))

    def recovery(self, component: str | None = None) -> np.ndarray:
        """Returns ``(patched - corrupt) / (clean - corrupt)`` per example and cell."""
        from interplab.techniques.metrics import normalised_recovery

        if self.source != "contrast":
            raise PatchingError(f"{self.source} ablation has no corrupt run to normalise against")
        return normalised_recovery(self.patched(component), self.clean, self.corrupt)


def activation_patching(
    model: Model,
    pairs: PairsLike,
    *,
    components: Sequence[str] | str = ("resid_pre",),
    direction: Direction = "denoise",
    per: Per = "position",
    metric: MetricName | Metric = "logit_diff",
    source: Source = "contrast",
    seed: int = 0,
    method: Method = "auto",
    batch_budget_mb: float = 512.0,
    progress: bool = True,
    control: bool = True,
) -> PatchingResult:
    """Returns the per-example effect on ``metric`` of patching each cell of each component grid
    (``[n, layer, pos]``, ``[n, layer]``, or with a head axis for ``attn.z``). ``pairs`` is a
    `PairDataset`, a list of `ContrastPair`, or `TokenPairs`. With ``control`` (the default) the
    identical sweep also runs on unrelated control prompts (`interplab.techniques.controls`) and
    is kept as ``result.control``."""
    comps = check_options(components, direction, per, model.dims)
    if source not in SOURCES:
        raise PatchingError(f"source must be one of {SOURCES}, got {source!r}")
    if source != "contrast" and direction != "noise":
        raise PatchingError(
            f"{source} ablation replaces activations of the clean run; pass direction='noise'"
        )
    if method not in METHODS:
        raise PatchingError(f"method must be one of {METHODS}, got {method!r}")
    if batch_budget_mb <= 0:
        raise PatchingError(f"batch_budget_mb must be positive, got {batch_budget_mb}")
    m = metric if isinstance(metric, Metric) else Metric(metric)
    inputs = prepare(model, pairs, per)
    tp = inputs.pairs
    base_ids, source_ids = (
        (tp.corrupt, tp.clean) if direction == "denoise" else (tp.clean, tp.corrupt)
    )
    answer_pos = tp.lengths - 1
    with torch.no_grad():
        clean_logits = _answer_logits(model, tp.clean, tp.mask, answer_pos)
        corrupt_logits = _answer_logits(model, tp.corrupt, tp.mask, answer_pos)
        targets = Targets(tp.answer, tp.wrong, torch.log_softmax(clean_logits.float(), -1))
        clean_m, corrupt_m = m(clean_logits, targets), m(corrupt_logits, targets)
        base_m = corrupt_m if direction == "denoise" else clean_m
        sites = [Site(layer, c) for c in comps for layer in range(model.dims.n_layers)]
        base_acts = _capture(model, base_ids, tp.mask, sites)
        values = _sources(model, source_ids, tp.mask, sites, base_acts, source, seed)

        from interplab.techniques import _fast_patch

        reason = _fast_patch.unsupported(model, tp)
        if method == "fast" and reason:
            raise PatchingError(f"the fast path cannot run here: {reason}")
        use_fast = method == "fast" or (method == "auto" and not reason)
        note = "" if use_fast or method != "auto" else f"hook path used: {reason}"
        if use_fast:
            metric_grids = _fast_patch.sweep(
                model,
                base_ids,
                values,
                comps,
                per,
                m,
                targets,
                budget_mb=batch_budget_mb,
                progress=progress,
            )
        elif method == "loop":
            metric_grids = _loop_sweep(
                model,
                base_ids,
                tp,
                values,
                base_acts,
                comps,
                per,
                m,
                targets,
                source,
                seed,
                progress,
            )
        else:
            metric_grids = _packed_sweep(
                model, base_ids, tp, values, comps, per, m, targets, batch_budget_mb, progress
            )
    used = "fast" if use_fast else ("loop" if method == "loop" else "hooks")
    control_result = None
    if control:
        from interplab.techniques.controls import run_control

        control_result = run_control(
            activation_patching, model, tp, seed, components=comps, direction=direction, per=per,
            metric=m, source=source, seed=seed, method=method, batch_budget_mb=batch_budget_mb,
            progress=progress,
        )  # fmt: skip
    shape_base = base_m.double().cpu().numpy()
    effects = {
        c: metric_grids[c].double().cpu().numpy()
        - shape_base.reshape((-1,) + (1,) * (metric_grids[c].ndim - 1))
        for c in comps
    }
    return PatchingResult(
        technique="activation_patching",
        components=comps,
        direction=direction,
        per=per,
        metric=m.name,
        effects=effects,
        clean=clean_m.double().cpu().numpy(),
        corrupt=corrupt_m.double().cpu().numpy(),
        tokens=inputs.tokens,
        clean_prompts=inputs.clean_prompts,
        corrupt_prompts=inputs.corrupt_prompts,
        answers=inputs.answers,
        wrong_answers=inputs.wrong_answers,
        provenance=_provenance(
            model, inputs, comps, direction, per, m, source, seed, used, note, control
        ),
        source=source,
        method=used,
        note=note,
        control=control_result,
    )


def _provenance(
    model: Model,
    inputs: Inputs,
    comps: tuple[str, ...],
    direction: str,
    per: str,
    metric: Metric,
    source: str,
    seed: int,
    used: str,
    note: str,
    control: bool,
) -> Provenance:
    return Provenance(
        technique="activation_patching",
        model=model.info.to_dict(),
        config={
            "components": list(comps),
            "direction": direction,
            "per": per,
            "metric": metric.name,
            "source": source,
            "method": used,
            "fast_tolerance": FAST_TOLERANCE,
            "note": note,
            "control": control,
        },
        data_sha256=inputs.data_sha256,
        seed=seed,
    )


# -- shared steps ---------------------------------------------------------------------------------


def _answer_logits(model: Model, ids: Tensor, mask: Tensor | None, answer_pos: Tensor) -> Tensor:
    """Returns the logits ``[n, vocab]`` at each row's answer position (hooks active apply)."""
    out = model.hf(input_ids=ids, attention_mask=mask, use_cache=False)
    return out.logits[torch.arange(ids.shape[0]), answer_pos.to(ids.device)]


def _capture(
    model: Model, ids: Tensor, mask: Tensor | None, sites: list[Site]
) -> dict[Site, Tensor]:
    with model.capture(sites) as cache:
        model.hf(input_ids=ids, attention_mask=mask, use_cache=False)
    return {s: cache[s] for s in sites}


def _sources(
    model: Model,
    source_ids: Tensor,
    mask: Tensor | None,
    sites: list[Site],
    base_acts: dict[Site, Tensor],
    source: str,
    seed: int,
) -> dict[Site, Tensor]:
    """Returns the value each site is patched to, shaped like the site ``[n, pos, ...]``."""
    if source == "contrast":
        return _capture(model, source_ids, mask, sites)
    out = {}
    for s, act in base_acts.items():
        iv = Ablate(s, source, reference=None if source == "zero" else act, seed=seed)  # type: ignore[arg-type]
        rep = iv.replacement(act.shape[0])
        out[s] = torch.zeros_like(act) if rep is None else rep.expand_as(act).clone()
    return out


def cells(
    comp: str, per: str, n_layers: int, n_heads: int, length: int
) -> Iterator[tuple[tuple[int, ...], int, int | None, int | None]]:
    """Yields (grid index without the example axis, layer, head, position) of every cell."""
    heads: list[int | None] = list(range(n_heads)) if comp == "attn.z" else [None]
    positions: list[int | None] = list(range(length)) if per == "position" else [None]
    for layer in range(n_layers):
        for h in heads:
            for p in positions:
                idx = (layer,) + ((h,) if h is not None else ()) + ((p,) if p is not None else ())
                yield idx, layer, h, p


def _packed_sweep(
    model: Model,
    base_ids: Tensor,
    tp: TokenPairs,
    values: dict[Site, Tensor],
    comps: tuple[str, ...],
    per: str,
    metric: Metric,
    targets: Targets,
    budget_mb: float,
    progress: bool,
) -> dict[str, Tensor]:
    """Every cell's metric from whole forwards with many cells per batch: rows are (cell,
    example), and one `Apply` per site writes each row's source value at its position/head."""
    from interplab.techniques._fast_patch import _max_rows

    d = model.dims
    n, length = base_ids.shape
    answer_pos = tp.lengths - 1
    grids = {c: torch.empty(grid_shape(c, per, n, d, length)) for c in comps}
    todo = [(c, *cell) for c in comps for cell in cells(c, per, d.n_layers, d.n_heads, length)]
    per_chunk = max(1, _max_rows(model, length, length, budget_mb) // n)
    with progress_bar(len(todo), "patching (hooks, packed)", progress) as advance:
        for lo in range(0, len(todo), per_chunk):
            chunk = todo[lo : lo + per_chunk]
            k = len(chunk)
            by_site: dict[Site, list[tuple[int, int | None, int | None]]] = {}
            for j, (c, _, layer, head, pos) in enumerate(chunk):
                by_site.setdefault(Site(layer, c), []).append((j, head, pos))  # type: ignore[arg-type]
            ivs = [_row_writer(site, edits, values[site], n) for site, edits in by_site.items()]
            mask = None if tp.mask is None else tp.mask.repeat(k, 1)
            with model.intervene(ivs):
                logits = _answer_logits(model, base_ids.repeat(k, 1), mask, answer_pos.repeat(k))
            out = metric(logits, targets, torch.arange(n).repeat(k)).view(k, n)
            for j, (c, idx, *_) in enumerate(chunk):
                grids[c][(slice(None), *idx)] = out[j]
            advance(k)
    return grids


def _row_writer(
    site: Site, edits: list[tuple[int, int | None, int | None]], value: Tensor, n: int
) -> Apply:
    """Returns an Apply that writes, for each (cell j, head, pos), ``value`` into rows
    j*n..(j+1)*n at that position (every position when None) and head."""

    def fn(t: Tensor) -> Tensor:
        t = t.clone()
        v = value.to(t.dtype)
        for j, head, pos in edits:
            rows = slice(j * n, (j + 1) * n)
            p = slice(None) if pos is None else pos
            if head is None:
                t[rows, p] = v[:, p]
            else:
                t[rows, p, head] = v[:, p, head]
        return t

    return Apply(site, fn)


def _loop_sweep(
    model: Model,
    base_ids: Tensor,
    tp: TokenPairs,
    values: dict[Site, Tensor],
    base_acts: dict[Site, Tensor],
    comps: tuple[str, ...],
    per: str,
    metric: Metric,
    targets: Targets,
    source: str,
    seed: int,
    progress: bool,
) -> dict[str, Tensor]:
    """The reference: one patched forward of the whole batch per cell, through interventions
    (`Patch` or `Ablate` as a user would write them)."""
    d = model.dims
    n, length = base_ids.shape
    answer_pos = tp.lengths - 1
    grids = {c: torch.empty(grid_shape(c, per, n, d, length)) for c in comps}
    total = sum(len(list(cells(c, per, d.n_layers, d.n_heads, length))) for c in comps)
    with progress_bar(total, "patching (hooks)", progress) as advance:
        for c in comps:
            for idx, layer, head, pos in cells(c, per, d.n_layers, d.n_heads, length):
                site = Site(layer, c)  # type: ignore[arg-type]
                positions = None if pos is None else [pos]
                heads = None if head is None else [head]
                iv: Intervention
                if source == "contrast":
                    iv = Patch(site, values[site], positions=positions, heads=heads)
                else:
                    ref = None if source == "zero" else base_acts[site]
                    method = cast("AblateMethod", source)
                    iv = Ablate(
                        site, method, reference=ref, seed=seed, positions=positions, heads=heads
                    )
                with model.intervene([iv]):
                    logits = _answer_logits(model, base_ids, tp.mask, answer_pos)
                grids[c][(slice(None), *idx)] = metric(logits, targets)
                advance(1)
    return grids
