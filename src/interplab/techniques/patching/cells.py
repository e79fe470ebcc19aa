"""Activation patching cell by cell: the split and merge points of a sweep run in pieces.

An exact sweep (`activation_patching` with ``method="fast"`` or ``"hooks"``) computes each cell's
patched metric from the same three things: the unpatched token ids, the value every site is
patched to, and the metric's targets. Nothing couples one cell to another, so a sweep can be cut
into any subsets of cells and put back together:

1. `plan` runs what every cell shares once (`prepare`, the clean and corrupt baselines, the
   base activations and the patch values) and returns a `SweepPlan`; its `work` is a `CellWork`,
   plain CPU tensors that pickle, which is all a worker needs besides the model.
2. `cell_keys` lists every cell ``(component, grid index)`` in grid order; `split` cuts them
   into tasks along the lines the local sweep batches them (whole position groups on the fast
   path), so that every cell meets the same kernels as in the one-piece sweep.
3. `compute` returns the metric ``[k, n]`` of a subset of cells, through the same runner the
   local sweep uses (`fast.sweep` or `hooks.packed_sweep`) with a mask of the cells to run.
4. `merge` writes the pieces into the metric grids, and `finish` builds the `PatchingResult`
   exactly as `activation_patching` does.

A cell's arithmetic is the same whatever else shares its batch only as far as the matrix kernels
are row-independent; the tests compare pieces merged against the one-piece sweep with
``torch.equal`` on the model families they cover.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from interplab.core.memory import resolve_budget
from interplab.core.model import Model
from interplab.results.patching import PatchingError, PatchingResult
from interplab.sites import Site
from interplab.techniques.metrics import Metric, Targets
from interplab.techniques.patching import fast, hooks
from interplab.techniques.patching.activation import _capture, _sources
from interplab.techniques.patching.config import PatchingConfig
from interplab.techniques.patching.grid import (
    Inputs,
    PairsLike,
    TokenPairs,
    answer_logits,
    cells,
    prepare,
)

CellKey = tuple[str, tuple[int, ...]]
"""One cell: its component and its index in that component's grid without the example axis."""


@dataclass(frozen=True)
class CellWork:
    """Everything a worker needs, besides the model, to compute any cell of one sweep."""

    base_ids: Tensor  # [n, pos]
    pairs: TokenPairs
    values: dict[Site, Tensor]
    targets: Targets
    components: tuple[str, ...]
    per: str
    metric: str
    fast: bool
    budget_mb: float
    n_layers: int
    n_heads: int

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        n, length = self.base_ids.shape
        out = {}
        for c in self.components:
            shape: tuple[int, ...] = (int(n), self.n_layers)
            shape += (self.n_heads,) if c == "attn.z" else ()
            shape += (int(length),) if self.per == "position" else ()
            out[c] = shape
        return out


@dataclass(frozen=True)
class SweepPlan:
    """The shared part of one sweep: the work for the cells and what the result records."""

    work: CellWork
    config: PatchingConfig
    inputs: Inputs
    clean: Tensor  # [n] metric of the clean run
    corrupt: Tensor  # [n]
    note: str


def plan(model: Model, pairs: PairsLike, config: PatchingConfig) -> SweepPlan:
    """Returns the shared part of an exact sweep (`activation_patching`'s first steps)."""
    cfg = config
    if cfg.method in ("loop", "verified"):
        raise PatchingError(
            f"method={cfg.method!r} does not split into cells: 'loop' is the one-cell reference "
            "and 'verified' chooses its cells as it goes; use 'auto', 'fast' or 'hooks'"
        )
    m = Metric(cfg.metric)
    inputs = prepare(model, pairs, cfg.per)
    tp = inputs.pairs
    denoise = cfg.direction == "denoise"
    base_ids, source_ids = (tp.corrupt, tp.clean) if denoise else (tp.clean, tp.corrupt)
    answer_pos = tp.lengths - 1
    reason = fast.unsupported(model, tp)
    if cfg.method == "fast" and reason:
        raise PatchingError(f"the fast path cannot run here: {reason}")
    use_fast = cfg.method == "fast" or (cfg.method == "auto" and not reason)
    note = "" if use_fast or cfg.method != "auto" else f"hook path used: {reason}"
    with torch.no_grad():
        clean_logits = answer_logits(model, tp.tokens(model, "clean"), answer_pos)
        corrupt_logits = answer_logits(model, tp.tokens(model, "corrupt"), answer_pos)
        targets = Targets(tp.answer, tp.wrong, torch.log_softmax(clean_logits.float(), -1))
        clean_m, corrupt_m = m(clean_logits, targets), m(corrupt_logits, targets)
        sites = [Site(layer, c) for c in cfg.components for layer in range(model.dims.n_layers)]  # type: ignore[arg-type]
        base_acts = _capture(model, model.tokens(base_ids, tp.mask), sites)
        values = _sources(model, model.tokens(source_ids, tp.mask), sites, base_acts, cfg)
    work = CellWork(
        base_ids=base_ids,
        pairs=tp,
        values={s: v.cpu() for s, v in values.items()},
        targets=_targets_on(targets, torch.device("cpu")),
        components=tuple(cfg.components),
        per=cfg.per,
        metric=cfg.metric,
        fast=use_fast,
        budget_mb=resolve_budget(cfg.batch_budget_mb, model.device),
        n_layers=model.dims.n_layers,
        n_heads=model.dims.n_heads,
    )
    return SweepPlan(work, cfg, inputs, clean_m, corrupt_m, note)


def cell_keys(work: CellWork) -> list[CellKey]:
    """Returns every cell of the sweep, component by component in grid order."""
    length = int(work.base_ids.shape[1])
    return [
        (c, idx)
        for c in work.components
        for idx, *_ in cells(c, work.per, work.n_layers, work.n_heads, length)
    ]


def split(work: CellWork, parts: int) -> list[list[CellKey]]:
    """Returns the cells cut into up to ``parts`` tasks that keep each cell's arithmetic.

    The fast path batches every row of one position group together (`fast.sweep`), and which
    rows share a batch can change the last bit of a float32 result; so with ``per="position"``
    a task takes whole position groups, and its batches are those of the one-piece sweep. The
    hook path runs ``n`` rows per cell in whole forwards, and takes contiguous runs of cells."""
    if parts < 1:
        raise PatchingError(f"parts must be at least 1, got {parts}")
    keys = cell_keys(work)
    if work.fast and work.per == "position":
        length = int(work.base_ids.shape[1])
        groups: list[list[CellKey]] = [[] for _ in range(length)]
        for key in keys:
            groups[key[1][-1]].append(key)
        bounds = np.linspace(0, length, min(parts, length) + 1).round().astype(int)
        return [[k for g in groups[a:b] for k in g] for a, b in itertools.pairwise(bounds)]
    bounds = np.linspace(0, len(keys), min(parts, len(keys)) + 1).round().astype(int)
    return [keys[a:b] for a, b in itertools.pairwise(bounds)]


def compute(
    model: Model, work: CellWork, keys: Sequence[CellKey], *, progress: bool = False
) -> Tensor:
    """Returns the patched metric ``[len(keys), n]`` of the given cells, row i for ``keys[i]``."""
    if not keys:
        return torch.empty((0, int(work.base_ids.shape[0])))
    shapes = work.shapes
    only = {c: torch.zeros(shapes[c][1:], dtype=torch.bool) for c in work.components}
    for c, idx in keys:
        if c not in only:
            raise PatchingError(f"cell component {c!r} is not one of {work.components}")
        only[c][idx] = True
    device = model.device
    values = {s: v.to(device) for s, v in work.values.items()}
    targets = _targets_on(work.targets, device)
    m = Metric(work.metric)  # type: ignore[arg-type]
    with torch.no_grad():
        if work.fast:
            grids, _ = fast.sweep(
                model, work.base_ids, values, work.components, work.per, m, targets,
                budget_mb=work.budget_mb, progress=progress, only=only,
            )  # fmt: skip
        else:
            grids = hooks.packed_sweep(
                model, work.base_ids, work.pairs, values, work.components, work.per, m, targets,
                work.budget_mb, progress, only=only,
            )  # fmt: skip
    return torch.stack([grids[c][(slice(None), *idx)].cpu() for c, idx in keys])


def merge(work: CellWork, parts: Iterable[tuple[Sequence[CellKey], Tensor]]) -> dict[str, Tensor]:
    """Returns the metric grids ``[n, layer, (head), (pos)]`` written from ``(keys, values)``
    pieces; raises when a cell is missing."""
    shapes = work.shapes
    grids: dict[str, Tensor] = {}
    filled = {c: torch.zeros(shapes[c][1:], dtype=torch.bool) for c in work.components}
    for keys, vals in parts:
        for (c, idx), v in zip(keys, vals, strict=True):
            if c not in grids:
                grids[c] = torch.empty(shapes[c], dtype=v.dtype)
            grids[c][(slice(None), *idx)] = v
            filled[c][idx] = True
    for c in work.components:
        if c not in grids or not bool(filled[c].all()):
            missing = int((~filled[c]).sum())
            raise PatchingError(f"{missing} cells of {c} were not computed; cannot merge")
    return grids


def finish(
    model: Model,
    sweep: SweepPlan,
    metric_grids: dict[str, Tensor],
    control: PatchingResult | None = None,
) -> PatchingResult:
    """Returns the `PatchingResult` of the merged grids (as `activation_patching` builds it)."""
    cfg, work, inputs = sweep.config, sweep.work, sweep.inputs
    base_m = sweep.corrupt if cfg.direction == "denoise" else sweep.clean
    shape_base = base_m.double().cpu().numpy()
    effects: dict[str, np.ndarray] = {
        c: metric_grids[c].double().cpu().numpy()
        - shape_base.reshape((-1,) + (1,) * (metric_grids[c].ndim - 1))
        for c in work.components
    }
    return PatchingResult(
        components=work.components,
        direction=cfg.direction,
        per=cfg.per,
        metric=Metric(cfg.metric).name,
        effects=effects,
        clean=sweep.clean.double().cpu().numpy(),
        corrupt=sweep.corrupt.double().cpu().numpy(),
        **inputs.recorded("activation_patching", model, cfg.to_dict(), cfg.seed),
        control=control,
        source=cfg.source,
        method="fast" if work.fast else "hooks",
        note=sweep.note,
    )


def _targets_on(targets: Targets, device: torch.device) -> Targets:
    lp = targets.clean_logprobs
    return Targets(
        targets.answer.to(device), targets.wrong.to(device), None if lp is None else lp.to(device)
    )


__all__ = [
    "CellKey",
    "CellWork",
    "SweepPlan",
    "cell_keys",
    "compute",
    "finish",
    "merge",
    "plan",
    "split",
]
