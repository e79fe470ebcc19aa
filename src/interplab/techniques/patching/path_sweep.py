"""The two sweeps of path patching (`interplab.techniques.patching.path`), which give the same
numbers:

1. `setup` runs the clean and corrupt prompts once, caching every head's ``attn.z``, every
   ``mlp_out``, the clean receivers' values and (fast path) the clean residual entering each layer.
2. `rows_and_grids` gives every (example, sender) whose corrupt value differs from its clean one a
   row, sorted by the sender's layer; the grids start at 0 for senders that change nothing and
   NaN where there is no sender or no path.
3. `hook_chunk` runs whole forwards: every head frozen (and MLPs, with ``freeze_mlps``) by one
   `Apply` per site that writes the clean value to every row and the corrupt value to the rows
   whose sender this is; for head receivers a second forward writes the recorded q/k/v.
4. `fast_chunk` uses what freezing implies: in step 2 nothing moves information between
   positions, so each (row, position) runs as its own length-1 sequence (`Model.partial`) that
   joins the batch at the sender's layer, and for the logits only the answer position runs;
   step 3 re-runs the layers from the lowest receiver on the whole sequence.
5. `chunks` lists the batches of rows the sweep runs (the memory budget sets them); `compute`
   runs some of them and `write` puts their effects into the grids: one chunk at a time in
   `path_patching`, or as tasks (`split`, then `merge`) on a backend of `interplab.distributed`.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import Tensor

from interplab.core.interventions import Apply
from interplab.core.model import Model
from interplab.results.patching import PatchingError
from interplab.sites import Site
from interplab.techniques.metrics import Metric, Targets
from interplab.techniques.patching.fast import metric_at_answer
from interplab.techniques.patching.grid import TokenPairs

Receivers = list[tuple[Site, int]]  # (layer-wide q/k/v site, index on its head axis)
Span = tuple[int, int]
"""Rows ``[lo, hi)`` of the sorted row table: one chunk of the sweep."""


@dataclass(frozen=True)
class Run:
    """The clean and corrupt runs: what the sweep reads (tensors per layer, ``[n, pos, ...]``)."""

    pairs: TokenPairs
    answer_pos: Tensor
    z: dict[str, list[Tensor]]  # "clean"/"corrupt" -> attn.z per layer [n, pos, head, d_head]
    mlp: dict[str, list[Tensor]]  # "clean"/"corrupt" -> mlp_out per layer [n, pos, d_model]
    resid: list[Tensor]  # clean resid_pre per layer (fast path only)
    received: list[Tensor]  # clean value of each receiver [n, pos, d_head]
    metric: Metric
    targets: Targets
    clean_metric: Tensor
    corrupt_metric: Tensor

    @property
    def length(self) -> int:
        return int(self.pairs.clean.shape[1])

    def to(self, device: torch.device | str) -> Run:
        """Returns the runs with their cached tensors on ``device`` (values unchanged)."""
        t = self.targets
        lp = t.clean_logprobs
        return replace(
            self,
            answer_pos=self.answer_pos.to(device),
            z={k: [v.to(device) for v in vs] for k, vs in self.z.items()},
            mlp={k: [v.to(device) for v in vs] for k, vs in self.mlp.items()},
            resid=[v.to(device) for v in self.resid],
            received=[v.to(device) for v in self.received],
            targets=Targets(
                t.answer.to(device), t.wrong.to(device), None if lp is None else lp.to(device)
            ),
            clean_metric=self.clean_metric.to(device),
            corrupt_metric=self.corrupt_metric.to(device),
        )


@dataclass(frozen=True)
class PathWork:
    """Everything a worker needs, besides the model, to compute any chunk of one sweep's rows."""

    run: Run
    rows: dict[str, Tensor]  # the row table of `rows_and_grids`
    components: tuple[str, ...]
    recv: Receivers | None
    freeze_mlps: bool
    fast: bool
    limit: int  # rows per chunk, from the memory budget

    def to(self, device: torch.device | str) -> PathWork:
        """Returns the work with its tensors on ``device`` (values unchanged)."""
        rows = {k: v.to(device) for k, v in self.rows.items()}
        return replace(self, run=self.run.to(device), rows=rows)


def setup(model: Model, tp: TokenPairs, recv: Receivers | None, metric: Metric, fast: bool) -> Run:
    """Returns the clean and corrupt runs' caches and metrics (step 1 of the module docstring)."""
    n_layers = model.dims.n_layers
    z = [Site(i, "attn.z") for i in range(n_layers)]
    mlp = [Site(i, "mlp_out") for i in range(n_layers)]
    resid = [Site(i, "resid_pre") for i in range(n_layers)] if fast else []
    rsites = [] if recv is None else [s for s, _ in recv]
    answer_pos = tp.lengths - 1
    caches, logits = {}, {}
    for side in ("clean", "corrupt"):
        extra = [*resid, *rsites] if side == "clean" else []
        r = model.run(tp.tokens(model, side), capture=list(dict.fromkeys([*z, *mlp, *extra])))
        caches[side] = r.cache
        rows = torch.arange(tp.n, device=r.logits.device)
        logits[side] = r.logits[rows, answer_pos.to(r.logits.device)].float()
    targets = Targets(tp.answer, tp.wrong, torch.log_softmax(logits["clean"], -1))
    clean = caches["clean"]
    return Run(
        pairs=tp,
        answer_pos=answer_pos,
        z={k: [c[s] for s in z] for k, c in caches.items()},
        mlp={k: [c[s] for s in mlp] for k, c in caches.items()},
        resid=[clean[s] for s in resid],
        received=[] if recv is None else [clean[s][:, :, h] for s, h in recv],
        metric=metric,
        targets=targets,
        clean_metric=metric(logits["clean"], targets),
        corrupt_metric=metric(logits["corrupt"], targets),
    )


def rows_and_grids(
    run: Run, cells: list[tuple[str, int, int]], comps: tuple[str, ...], top: int | None, H: int
) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Returns the rows to run (sorted by the sender's layer) and effect grids prefilled with 0
    (no-op senders), or NaN (not a sender, or no path)."""
    n = run.pairs.n
    n_layers = len(run.z["clean"])
    effects = {
        c: torch.full((n, n_layers, H) if c == "attn.z" else (n, n_layers), torch.nan).double()
        for c in comps
    }
    parts = []
    for c, layer, h in cells:
        ci = comps.index(c)
        flat = layer * H + h if c == "attn.z" else layer
        if top is not None and layer >= top:
            continue
        src = run.z if c == "attn.z" else run.mlp
        a, b = src["clean"][layer], src["corrupt"][layer]
        if h >= 0:
            a, b = a[:, :, h], b[:, :, h]
        differs = (a != b).flatten(1).any(1)
        effects[c].view(n, -1)[:, flat] = 0.0
        ex = differs.nonzero().flatten()
        parts.append(torch.stack([ex, *(torch.full_like(ex, v) for v in (layer, h, ci, flat))], 1))
    table = torch.cat(parts) if parts else torch.zeros((0, 5), dtype=torch.long)
    table = table[torch.argsort(table[:, 1], stable=True)]
    return dict(zip(("example", "layer", "head", "comp", "flat"), table.T, strict=True)), effects


def row_bytes(model: Model, run: Run, recv: Receivers | None, fast: bool) -> int:
    """Returns a row's working memory: a layer's activations (and the logits on the hook path)."""
    d = model.dims
    length = run.length
    per_token = 8 * d.d_model + 4 * d.d_mlp + 4 * d.n_heads * d.d_head
    full = length * (per_token + 3 * d.n_heads * length + 2 * len(recv or ()) * d.d_head)
    if not fast:
        return 4 * (full + length * d.d_vocab)
    return 4 * (per_token if recv is None else full)


def chunks(work: PathWork) -> list[Span]:
    """Returns the chunks of rows the sweep runs one batch each, in order."""
    n = len(work.rows["example"])
    return [(lo, min(lo + work.limit, n)) for lo in range(0, n, work.limit)]


def split(work: PathWork, parts: int) -> list[list[Span]]:
    """Returns the chunks cut into up to ``parts`` contiguous tasks. Which rows share a batch can
    change the last bit of a float32 result, so a task takes whole chunks of the one-piece sweep
    (a smaller ``batch_budget_mb`` gives more, smaller chunks)."""
    if not isinstance(parts, int) or parts < 1:
        raise PatchingError(f"parts must be an int of at least 1, got {parts!r}")
    spans = chunks(work)
    bounds = np.linspace(0, len(spans), min(parts, len(spans)) + 1).round().astype(int)
    return [spans[a:b] for a, b in itertools.pairwise(bounds)]


def compute(model: Model, work: PathWork, spans: Sequence[Span]) -> Tensor:
    """Returns the effect (path-patched minus clean metric, float64) of every row of the chunks
    ``spans``, in order, each chunk run as one batch (`fast_chunk` or `hook_chunk`)."""
    n = len(work.rows["example"])
    w = work.to(model.device)
    chunk_fn = fast_chunk if w.fast else hook_chunk
    out = [torch.zeros(0, dtype=torch.float64)]
    with torch.no_grad():
        for lo, hi in spans:
            if not 0 <= lo < hi <= n:
                raise PatchingError(f"rows [{lo}, {hi}) are not a chunk of the sweep's {n} rows")
            chunk = {k: v[lo:hi] for k, v in w.rows.items()}
            patched = chunk_fn(model, w.run, chunk, w.recv, w.freeze_mlps)
            out.append((patched - w.run.clean_metric[chunk["example"]].double()).cpu())
    return torch.cat(out)


def write(
    work: PathWork, effects: dict[str, Tensor], spans: Sequence[Span], values: Tensor
) -> None:
    """Writes the effects ``values`` of the rows of ``spans`` (as `compute` returns them) into
    the grids ``effects``."""
    n = work.run.pairs.n
    at = 0
    for lo, hi in spans:
        out = values[at : at + hi - lo]
        at += hi - lo
        ex, comp, flat = (work.rows[k][lo:hi].cpu() for k in ("example", "comp", "flat"))
        for ci, c in enumerate(work.components):
            sel = comp == ci
            effects[c].view(n, -1)[ex[sel], flat[sel]] = out[sel]


def merge(
    work: PathWork,
    grids: dict[str, Tensor],
    parts: Iterable[tuple[Sequence[Span], Tensor]],
) -> dict[str, Tensor]:
    """Returns copies of the prefilled ``grids`` with the ``(spans, effects)`` pieces written in;
    raises when a chunk is missing."""
    effects = {c: g.clone() for c, g in grids.items()}
    done: set[Span] = set()
    for spans, values in parts:
        write(work, effects, spans, values)
        done.update(spans)
    missing = [s for s in chunks(work) if s not in done]
    if missing:
        raise PatchingError(
            f"{len(missing)} chunks of rows were not computed (rows {list(missing[0])}); "
            "cannot merge"
        )
    return effects


def _take(t: Tensor, ex: Tensor, pos: Tensor | None) -> Tensor:
    """Returns ``t[ex]`` (whole sequences) or ``t[ex, pos]`` as length-1 sequences."""
    return t[ex] if pos is None else t[ex, pos].unsqueeze(1)


def _writer(
    clean: Tensor | None,
    corrupt: Tensor,
    ex: Tensor,
    pos: Tensor | None,
    swap: Tensor,
    head: Tensor,
) -> Callable[[Tensor], Tensor]:
    """Returns an Apply function: the clean value (``clean=None``: what was computed) for every
    batch entry, the corrupt value for the entries whose sender this is (``swap``). Entries are
    the first rows of ``ex``/``pos``: the batch holds the rows that have joined so far."""

    def fn(t: Tensor) -> Tensor:
        k = t.shape[0]
        e, p = ex[:k], None if pos is None else pos[:k]
        out = t.clone() if clean is None else _take(clean, e, p)
        r = swap[:k].nonzero().flatten()
        if len(r):
            src = _take(corrupt, e[r], None if p is None else p[r])
            if out.ndim == 4:  # attn.z: one head per row
                h = head[:k][r]
                out[r, :, h] = src[torch.arange(len(r)), :, h]
            else:
                out[r] = src
        return out

    return fn


def _freezes(
    run: Run, rows: dict[str, Tensor], layer: int, freeze_mlps: bool, pos: Tensor | None
) -> list[Apply]:
    """Returns step 2's interventions at ``layer``: heads frozen, the senders of this layer swapped."""
    ex = rows["example"]
    at = rows["layer"] == layer
    z_clean, z_corrupt = run.z["clean"][layer], run.z["corrupt"][layer]
    heads = _writer(z_clean, z_corrupt, ex, pos, at & (rows["head"] >= 0), rows["head"])
    out = [Apply(Site(layer, "attn.z"), heads)]
    mlp_swap = at & (rows["head"] < 0)
    if freeze_mlps or bool(mlp_swap.any()):
        clean = run.mlp["clean"][layer] if freeze_mlps else None
        fn = _writer(clean, run.mlp["corrupt"][layer], ex, pos, mlp_swap, rows["head"])
        out.append(Apply(Site(layer, "mlp_out"), fn))
    return out


def _receiver_writes(recv: Receivers, recorded: list[Tensor], layer: int) -> list[Apply]:
    """Returns step 3's interventions at ``layer``: each receiver head's q/k/v as recorded."""
    out = []
    for site in dict.fromkeys(s for s, _ in recv if s.layer == layer):
        heads = [(h, recorded[j]) for j, (s, h) in enumerate(recv) if s == site]

        def fn(t: Tensor, heads: list[tuple[int, Tensor]] = heads) -> Tensor:
            t = t.clone()
            for h, v in heads:
                t[:, :, h] = v[: t.shape[0]]
            return t

        out.append(Apply(site, fn))
    return out


def hook_chunk(
    model: Model, run: Run, rows: dict[str, Tensor], recv: Receivers | None, freeze_mlps: bool
) -> Tensor:
    """Returns each row's path-patched metric, from whole forwards with per-row interventions."""
    ex = rows["example"]
    tp = run.pairs
    tokens = model.tokens(tp.clean[ex], None if tp.mask is None else tp.mask[ex])
    ivs = [a for i in range(model.dims.n_layers) for a in _freezes(run, rows, i, freeze_mlps, None)]
    rsites = [] if recv is None else list(dict.fromkeys(s for s, _ in recv))
    step2 = model.run(tokens, capture=rsites, interventions=ivs)
    logits = step2.logits
    if recv is not None:
        recorded = [step2.cache[s][:, :, h] for s, h in recv]
        layers = {s.layer for s, _ in recv if s.layer is not None}
        writes = [a for i in layers for a in _receiver_writes(recv, recorded, i)]
        logits = model.run(tokens, interventions=writes).logits
    last = logits[torch.arange(len(ex), device=logits.device), run.answer_pos[ex].to(logits.device)]
    return run.metric(last, run.targets, ex).double()


def fast_chunk(
    model: Model, run: Run, rows: dict[str, Tensor], recv: Receivers | None, freeze_mlps: bool
) -> Tensor:
    """Returns each row's path-patched metric, running the decoder layers on what can change."""
    n_layers = model.dims.n_layers
    length = run.length
    n_rows = len(rows["example"])
    # Step 2, one length-1 sequence per (row, position): frozen heads carry nothing across positions.
    if recv is None:
        tok = torch.arange(n_rows)
        pos = run.answer_pos[rows["example"]]
        stop = n_layers
    else:
        tok = torch.arange(n_rows).repeat_interleave(length)
        pos = torch.arange(length).repeat(n_rows)
        stop = max(s.layer for s, _ in recv) + 1  # type: ignore[type-var]
    toks = {k: v[tok] for k, v in rows.items()}
    recorded = [r[rows["example"]].clone() for r in run.received]
    one = model.partial(0, 1)
    hidden = run.resid[0].new_empty((0, 1, run.resid[0].shape[-1]))
    for i in range(int(rows["layer"].min()), stop):
        joining = (toks["layer"] == i).nonzero().flatten()
        new = run.resid[i][toks["example"][joining], pos[joining]]
        hidden = torch.cat([hidden, new.unsqueeze(1)])
        rsites = [] if recv is None else list(dict.fromkeys(s for s, _ in recv if s.layer == i))
        with model.capture(rsites, interventions=_freezes(run, toks, i, freeze_mlps, pos)) as cache:
            hidden = one.layer(i, hidden)
        for j, (s, h) in enumerate(recv or ()):
            if s.layer == i:
                k = hidden.shape[0]
                recorded[j][tok[:k], pos[:k]] = cache[s][:, 0, h]
    if recv is None:
        return _metric(model, run, hidden[:, 0], rows["example"])
    # Step 3: from the lowest receiver layer, clean residual, receivers' q/k/v as recorded.
    start = min(s.layer for s, _ in recv)  # type: ignore[type-var]
    whole = model.partial(0, length)
    hidden = run.resid[start][rows["example"]]
    for i in range(start, n_layers):
        writes = _receiver_writes(recv, recorded, i)
        with model.intervene(writes) if writes else contextlib.nullcontext():
            hidden = whole.layer(i, hidden)
    return _metric(model, run, hidden[:, -1], rows["example"])


def _metric(model: Model, run: Run, final_resid: Tensor, examples: Tensor) -> Tensor:
    """Returns the metric from the final residual at the answer position (two logits suffice
    for a logit difference)."""
    return metric_at_answer(model, run.metric, run.targets, final_resid, examples).double()


__all__ = [
    "PathWork",
    "Receivers",
    "Run",
    "Span",
    "chunks",
    "compute",
    "fast_chunk",
    "hook_chunk",
    "merge",
    "row_bytes",
    "rows_and_grids",
    "setup",
    "split",
    "write",
]
