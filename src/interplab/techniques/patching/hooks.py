"""The hook paths of activation patching: whole forwards through interventions, any architecture.

1. The reference (``method="loop"``): one patched forward of the whole batch per cell, through
   a `Patch` or `Ablate` intervention exactly as a user would write it. Slow and obviously
   correct; the tests hold the other paths to it.
2. The packed path (``method="hooks"``): many cells per batch. Row ``j * n + i`` is example i
   with cell j patched; one `Apply` per site writes each row's source value at its position
   (and head), so every cell still gets its own exact forward, without one call per cell.
   Chunks are sized under the memory budget.
"""

from __future__ import annotations

from typing import cast

import torch
from torch import Tensor

from interplab.core.interventions import Ablate, AblateMethod, Apply, Intervention, Patch
from interplab.core.model import Model
from interplab.progress import progress_bar
from interplab.sites import Site
from interplab.techniques.metrics import Metric, Targets
from interplab.techniques.patching.grid import (
    TokenPairs,
    answer_logits,
    cells,
    grid_shape,
    max_rows,
)


def packed_sweep(
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
    only: dict[str, Tensor] | None = None,
) -> dict[str, Tensor]:
    """Returns every cell's metric from whole forwards with many cells per batch: rows are (cell,
    example), and one `Apply` per site writes each row's source value at its position/head (with
    ``only``, boolean masks ``[layer, (head), (pos)]`` per component, those cells alone)."""
    d = model.dims
    n, length = base_ids.shape
    answer_pos = tp.lengths - 1
    grids = {c: torch.empty(grid_shape(c, per, n, d, length)) for c in comps}
    todo = [(c, *cell) for c in comps for cell in cells(c, per, d.n_layers, d.n_heads, length)]
    if only is not None:
        todo = [t for t in todo if bool(only[t[0]][t[1]])]
    per_chunk = max(1, max_rows(model, length, length, budget_mb) // n)
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
                logits = answer_logits(
                    model, model.tokens(base_ids.repeat(k, 1), mask), answer_pos.repeat(k)
                )
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


def loop_sweep(
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
    tokens = model.tokens(base_ids, tp.mask)
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
                logits = model.run(tokens, interventions=[iv]).logits
                rows = torch.arange(n, device=logits.device)
                grids[c][(slice(None), *idx)] = metric(
                    logits[rows, answer_pos.to(logits.device)], targets
                )
                advance(1)
    return grids


__all__ = ["loop_sweep", "packed_sweep"]
