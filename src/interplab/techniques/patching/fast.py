"""The fast path of activation patching: every cell's exact effect, with the work that cannot
change skipped.

A cell patched at layer L and position p changes nothing below layer L and nothing before p
(attention is causal). So, for each position group p:

1. Run the unpatched (base) prompts once (`Model.base_run`), keeping the residual stream entering
   every layer and the keys and values of every layer.
2. Give every (example, cell) one row of a batch: its hidden state is the base residual entering
   the cell's layer at positions p..T-1, the *suffix*; ``resid_pre``/``resid_post`` are written
   into it directly, the other components by an `Apply` intervention on that layer's forward.
   Rows join the batch at their own layer, so a row patched at layer 20 never runs layers 0-19.
3. Run the model's own decoder layers on the suffix only (`Model.partial`): each row attends to
   its example's cached keys and values of positions < p.
4. Apply the final norm at the answer position only, and the unembedding only for the columns
   the metric reads (two for a logit difference; `Model.unembed`).
5. A cell whose patched value equals the base value bit for bit (a token both prompts share, at
   layer 0) changes nothing: its metric is the base metric, and it gets no row.

Rows are packed by position group, sorted by the layer they join, and chunked under a memory
budget. Only models with partial forwards (`Model.partial_support`: the Llama family, unpadded
prompts) take this path; `unsupported` says why another does not.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from interplab.core.interventions import Apply
from interplab.core.model import Model
from interplab.core.partial import BaseRun, Partial
from interplab.progress import progress_bar
from interplab.sites import Site
from interplab.techniques.metrics import Metric, Targets
from interplab.techniques.patching.grid import TokenPairs, grid_shape, max_rows

_DIRECT = ("resid_pre", "resid_post")  # written into the hidden state; the rest via Apply


def unsupported(model: Model, pairs: TokenPairs) -> str | None:
    """Returns why the fast path cannot run on this model and these inputs (None: it can)."""
    return model.partial_support(pairs.tokens(model))


def metric_at_answer(
    model: Model, metric: Metric, targets: Targets, final_resid: Tensor, examples: Tensor
) -> Tensor:
    """Returns the metric of each row from its final residual at the answer position ``[rows, d]``
    (row r is example ``examples[r]``); a logit difference gathers two unembedding columns."""
    if metric.needs_full_logits:
        return metric(model.unembed(final_resid), targets, examples)
    columns = metric.columns(targets, examples).to(final_resid.device)
    return metric.from_columns(model.unembed(final_resid, columns).float())


@dataclass(frozen=True)
class _Base:
    run: BaseRun
    acts: dict[Site, Tensor]
    metric: Tensor  # [n]


@dataclass(frozen=True)
class _Rows:
    """One row per (example, cell) to compute, sorted by the layer the row joins at."""

    join: Tensor
    layer: Tensor
    head: Tensor  # -1 without heads
    example: Tensor
    comp: Tensor  # index into the component tuple
    flat: Tensor  # flat index into that component's grid

    def take(self, sel: Tensor | slice) -> _Rows:
        return _Rows(*(getattr(self, f)[sel] for f in _Rows.__dataclass_fields__))

    def __len__(self) -> int:
        return int(self.join.shape[0])


def sweep(
    model: Model,
    base_ids: Tensor,
    sources: dict[Site, Tensor],
    comps: Sequence[str],
    per: str,
    metric: Metric,
    targets: Targets,
    *,
    budget_mb: float,
    progress: bool,
    only: dict[str, Tensor] | None = None,
) -> tuple[dict[str, Tensor], Tensor]:
    """Returns the patched metric ``[n, layer, (head), (pos)]`` of every cell of each component
    (with ``only``, boolean masks ``[layer, (head), (pos)]`` per component, of those cells alone;
    the others keep the base metric), and the base metric ``[n]`` of its unpatched run."""
    d = model.dims
    n, length = base_ids.shape
    run = model.base_run(model.tokens(base_ids), capture=list(sources))
    base = _Base(run, {s: run.cache[s] for s in sources}, metric(run.logits[:, -1], targets))
    grids = {
        c: base.metric.view((n,) + (1,) * (len(grid_shape(c, per, n, d, length)) - 1))
        .expand(grid_shape(c, per, n, d, length))
        .clone()
        for c in comps
    }
    groups = list(range(length)) if per == "position" else [None]
    work = [(p, _rows(model, base, sources, comps, per, p, length, only)) for p in groups]
    total = sum(len(r) for _, r in work)
    with progress_bar(total, "patching (fast)", progress) as advance:
        for p, rows in work:
            if not len(rows):
                continue
            start = 0 if p is None else p
            part = model.partial(start, length, run)
            limit = max_rows(model, length - start, length, budget_mb)
            for lo in range(0, len(rows), limit):
                chunk = rows.take(slice(lo, lo + limit))
                out = _run_chunk(model, part, base, sources, comps, chunk, p, metric, targets)
                for ci, c in enumerate(comps):
                    sel = chunk.comp == ci
                    grids[c].view(n, -1)[chunk.example[sel], chunk.flat[sel]] = out[sel]
                advance(len(chunk))
    return grids, base.metric


def _rows(
    model: Model,
    base: _Base,
    sources: dict[Site, Tensor],
    comps: Sequence[str],
    per: str,
    p: int | None,
    length: int,
    only: dict[str, Tensor] | None = None,
) -> _Rows:
    """Returns the rows of position group ``p`` (None: every position at once), no-ops dropped."""
    d = model.dims
    parts: list[tuple[int, int, Tensor, Tensor, Tensor]] = []  # (join, comp, layer, head, ex)
    for ci, c in enumerate(comps):
        for layer in range(d.n_layers):
            site = Site(layer, c)  # type: ignore[arg-type]
            src, act = sources[site], base.acts[site]
            if p is not None:
                src, act = src[:, p : p + 1], act[:, p : p + 1]
            differs = (src != act).any(-1).any(1)  # [n] or, per head, [n, H]
            if only is not None:
                keep = only[c][layer]  # [(H), (pos)]
                differs = differs & (keep if p is None else keep[..., p]).to(differs.device)
            if c != "attn.z":
                differs = differs[:, None]
            ex, head = differs.nonzero(as_tuple=True)
            if c != "attn.z":
                head = torch.full_like(head, -1)
            join = layer + 1 if c == "resid_post" else layer
            parts.append((join, ci, torch.full_like(ex, layer), head, ex))
    join = torch.cat([torch.full_like(ex, j) for j, _, _, _, ex in parts])
    comp = torch.cat([torch.full_like(ex, ci) for _, ci, _, _, ex in parts])
    layer = torch.cat([lay for _, _, lay, _, _ in parts])
    head = torch.cat([h for _, _, _, h, _ in parts])
    ex = torch.cat([e for _, _, _, _, e in parts])
    # Flat index of each row's cell inside its component's grid (without the example axis).
    heads = torch.where(head < 0, 0, head)
    n_heads = torch.tensor([d.n_heads if c == "attn.z" else 1 for c in comps], device=comp.device)
    flat = layer * n_heads[comp] + heads
    if per == "position":
        flat = flat * length + (p or 0)
    order = torch.argsort(join, stable=True)
    return _Rows(join, layer, head, ex, comp, flat).take(order)


def _run_chunk(
    model: Model,
    part: Partial,
    base: _Base,
    sources: dict[Site, Tensor],
    comps: Sequence[str],
    rows: _Rows,
    p: int | None,
    metric: Metric,
    targets: Targets,
) -> Tensor:
    """Returns the patched metric of each row (rows sorted by the layer they join)."""
    resid = base.run.resid
    n_layers = model.dims.n_layers
    start = part.start
    hidden = resid[0].new_empty((0, part.length - start, resid[0].shape[-1]))
    examples = rows.example.new_empty(0)
    for i in range(int(rows.join.min()), n_layers + 1):
        joining = (rows.join == i).nonzero().flatten()
        if len(joining):
            new = rows.take(joining)
            h = resid[i][new.example, start:].clone()
            for ci, c in enumerate(comps):
                if c not in _DIRECT:
                    continue
                sel = (new.comp == ci).nonzero().flatten()
                for lay in new.layer[sel].unique().tolist():
                    r = sel[new.layer[sel] == lay]
                    src = sources[Site(lay, c)]  # type: ignore[arg-type]
                    if p is None:
                        h[r] = src[new.example[r]]
                    else:
                        h[r, 0] = src[new.example[r], p]
            offset = hidden.shape[0]
            hidden = torch.cat([hidden, h])
            examples = torch.cat([examples, new.example])
            interventions = _applies(comps, new, offset, i, sources, p)
        else:
            interventions = []
        if i == n_layers:
            break
        with model.intervene(interventions) if interventions else contextlib.nullcontext():
            hidden = part.layer(i, hidden, examples)
    return metric_at_answer(model, metric, targets, hidden[:, -1], examples)


def _applies(
    comps: Sequence[str],
    new: _Rows,
    offset: int,
    layer: int,
    sources: dict[Site, Tensor],
    p: int | None,
) -> list[Apply]:
    """Returns one Apply per hooked component that writes the joining rows' source values."""
    out = []
    for ci, c in enumerate(comps):
        if c in _DIRECT:
            continue
        sel = ((new.comp == ci) & (new.layer == layer)).nonzero().flatten()
        if not len(sel):
            continue
        src = sources[Site(layer, c)]  # type: ignore[arg-type]
        src = src if p is None else src[:, p : p + 1]
        batch_rows = sel + offset
        ex = new.example[sel]
        if c == "attn.z":
            head = new.head[sel]
            vals = src[ex, :, head]  # [m, pos, d_head]

            def fn_heads(
                t: Tensor, r: Tensor = batch_rows, h: Tensor = head, v: Tensor = vals
            ) -> Tensor:
                t = t.clone()
                t[r, :, h] = v
                return t

            fn = fn_heads

        else:
            vals = src[ex]

            def fn_rows(t: Tensor, r: Tensor = batch_rows, v: Tensor = vals) -> Tensor:
                t = t.clone()
                t[r] = v
                return t

            fn = fn_rows

        out.append(Apply(Site(layer, c), fn, positions=None if p is None else [0]))  # type: ignore[arg-type]
    return out


__all__ = ["metric_at_answer", "sweep", "unsupported"]
