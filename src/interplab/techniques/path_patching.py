"""Path patching: the effect of each sender (a head or an MLP) on chosen receivers, through the
paths that end there and nowhere else.

Algorithm (Wang et al. 2022, "Interpretability in the Wild: a Circuit for Indirect Object
Identification in GPT-2 small", arXiv:2211.00593, appendix on path patching; Goldowsky-Dill et
al. 2023, "Localizing Model Behavior with Path Patching"), for every clean/corrupt pair and
every sender:

1. Run the clean and the corrupt prompt; cache every head's ``attn.z`` and every ``mlp_out``.
2. Run the clean prompt with the sender set to its corrupt value (one head's ``attn.z``, which
   reaches the residual stream through its slice of the output projection, or one ``mlp_out``)
   and every attention head of every layer frozen to its clean ``attn.z``. MLPs are recomputed
   (``freeze_mlps=False``, as in the IOI paper), so paths through MLPs count, or frozen too.
   Record the receivers' inputs: the final residual stream for ``receivers="logits"``, or the
   q, k or v of each receiver head (``"L9.attn.q.h6"``; under grouped-query attention ``.k``/
   ``.v`` of query head h is the key/value head h reads).
3. For head receivers, run the clean prompt again, nothing frozen, with only the receivers' q/k/v
   replaced by the recorded values. The metric of that run (for ``"logits"``, of step 2's run)
   minus the clean run's metric, at the answer position, is the sender's effect, per example.

A sender reaches a head receiver only from a layer below it; such cells are NaN and the result's
``note`` says how many. A sender whose corrupt value equals its clean value bit for bit changes
nothing, gets no row, and its effect is exactly 0.

Rows (example, sender) are packed into the batch dimension, sorted by the sender's layer and
chunked under ``batch_budget_mb``; an `Apply` intervention writes each row's values. Two
implementations give the same numbers. ``method="hooks"`` runs whole forwards (any architecture).
``method="fast"`` (the Llama family, unpadded prompts) runs HF's decoder layers directly and uses
what freezing implies: with every head's output fixed, nothing moves information between
positions in step 2, so each (row, position) is its own length-1 sequence that joins the batch at
the sender's layer, and for ``"logits"`` only the answer position is computed at all. Step 3
starts at the lowest receiver layer, from the clean residual stream, with HF's rotary embeddings
and causal mask. Nothing is returned until the sweep completes: Ctrl-C leaves no partial result.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

import torch
from torch import Tensor

from interplab.core.interventions import Apply
from interplab.core.model import Model
from interplab.core.points import head_index
from interplab.models.adapter import get_module
from interplab.provenance import Provenance
from interplab.sites import Site, SiteError, SiteLike, check_site
from interplab.techniques._grid import GridResult, PairsLike, PatchingError, prepare
from interplab.techniques._suffix import answer_metric, run_layer, suffix
from interplab.techniques.metrics import Metric, MetricName, Targets

SenderSet = Literal["heads", "mlps", "all"]
Method = Literal["auto", "fast", "hooks"]
SENDER_SETS: tuple[str, ...] = get_args(SenderSet)
METHODS: tuple[str, ...] = get_args(Method)
RECEIVER_COMPONENTS = ("attn.q", "attn.k", "attn.v")


@dataclass(frozen=True)
class PathPatchingResult(GridResult):
    """Per-example effect of every sender on the receivers: ``effects["attn.z"]`` is
    ``[example, layer, head]``, ``effects["mlp_out"]`` is ``[example, layer]``; NaN: no path."""

    receivers: tuple[str, ...] = ("logits",)
    freeze_mlps: bool = False
    method: str = "fast"
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        d.update(receivers=list(self.receivers), freeze_mlps=self.freeze_mlps)
        d.update(method=self.method, note=self.note)
        return d

    @property
    def title(self) -> str:
        frozen = "heads and MLPs frozen" if self.freeze_mlps else "heads frozen"
        return f"path patching → {', '.join(self.receivers)} ({frozen}, {self.metric}, n={self.n})"

    def figure(self, component: str | None = None, **kw: Any) -> Any:
        fig = super().figure(component, **kw)
        fig.axes[0].set_title(f"{self._component(component)} senders: {self.title}", fontsize=8)
        return fig

    def heatmaps(self, component: str | None = None, **kw: Any) -> list[Any]:
        comp = self._component(component)
        title = f"{comp} senders: {self.title}"
        return [dataclasses.replace(h, title=title) for h in super().heatmaps(comp, **kw)]


def path_patching(
    model: Model,
    pairs: PairsLike,
    *,
    senders: SenderSet | Sequence[SiteLike] = "heads",
    receivers: Literal["logits"] | SiteLike | Sequence[SiteLike] = "logits",
    freeze_mlps: bool = False,
    metric: MetricName | Metric = "logit_diff",
    method: Method = "auto",
    batch_budget_mb: float = 512.0,
    progress: bool = True,
) -> PathPatchingResult:
    """Returns the per-example effect on ``metric`` of patching each sender's corrupt value along
    the paths to ``receivers`` only. ``senders`` is ``"heads"``, ``"mlps"``, ``"all"`` or sites
    (``"L3.attn.z.h5"``, ``"L3.attn.z"`` for every head of layer 3, ``"L3.mlp_out"``);
    ``receivers`` is ``"logits"`` or head inputs (``["L9.attn.q.h6", "L9.attn.k.h6"]``)."""
    if method not in METHODS:
        raise PatchingError(f"method must be one of {METHODS}, got {method!r}")
    if batch_budget_mb <= 0:
        raise PatchingError(f"batch_budget_mb must be positive, got {batch_budget_mb}")
    m = metric if isinstance(metric, Metric) else Metric(metric)
    d = model.dims
    recv = _receivers(receivers, model)
    top = None if recv is None else max(s.layer for s, _ in recv)  # type: ignore[type-var]
    cells, comps = _senders(senders, model, top)
    inputs = prepare(model, pairs)
    tp = inputs.pairs
    from interplab.techniques import _fast_patch
    from interplab.techniques._progress import progress_bar

    reason = _fast_patch.unsupported(model, tp)
    if method == "fast" and reason:
        raise PatchingError(f"the fast path cannot run here: {reason}")
    fast = method == "fast" or (method == "auto" and not reason)
    with torch.no_grad():
        run = _setup(model, tp, recv, m, fast)
        rows, effects = _rows(run, cells, comps, top, d.n_heads)
        limit = max(1, int(batch_budget_mb * 2**20 // _row_bytes(model, run, recv, fast)))
        chunk_fn = _fast_chunk if fast else _hook_chunk
        with progress_bar(len(rows["example"]), "path patching", progress) as advance:
            for lo in range(0, len(rows["example"]), limit):
                chunk = {k: v[lo : lo + limit] for k, v in rows.items()}
                patched = chunk_fn(model, run, chunk, recv, freeze_mlps)
                out = patched - run.clean_metric[chunk["example"]].double()
                for ci, c in enumerate(comps):
                    sel = chunk["comp"] == ci
                    effects[c].view(tp.n, -1)[chunk["example"][sel], chunk["flat"][sel]] = out[sel]
                advance(len(chunk["example"]))  # type: ignore[operator]
    no_path = sum(1 for _, layer, _ in cells if top is not None and layer >= top)
    note = "" if fast or method == "hooks" else f"hook path used: {reason}"
    if no_path:
        note = (note + "; " if note else "") + (
            f"{no_path} sender(s) sit at or above the highest receiver layer ({top}): no path, NaN"
        )
    names = ("logits",) if recv is None else _receiver_names(receivers)
    config = {
        "senders": senders if isinstance(senders, str) else [str(Site.parse(s)) for s in senders],
        "receivers": list(names),
        "freeze_mlps": freeze_mlps,
        "metric": m.name,
        "method": "fast" if fast else "hooks",
        "note": note,
    }
    return PathPatchingResult(
        technique="path_patching",
        components=comps,
        direction="noise",
        per="all",
        metric=m.name,
        effects={c: e.cpu().numpy() for c, e in effects.items()},
        clean=run.clean_metric.double().cpu().numpy(),
        corrupt=run.corrupt_metric.double().cpu().numpy(),
        tokens=inputs.tokens,
        clean_prompts=inputs.clean_prompts,
        corrupt_prompts=inputs.corrupt_prompts,
        answers=inputs.answers,
        wrong_answers=inputs.wrong_answers,
        provenance=Provenance(
            technique="path_patching",
            model=model.info.to_dict(),
            config=config,
            data_sha256=inputs.data_sha256,
        ),
        receivers=names,
        freeze_mlps=freeze_mlps,
        method="fast" if fast else "hooks",
        note=note,
    )


# -- inputs ---------------------------------------------------------------------------------------

Receivers = list[tuple[Site, int]]  # (layer-wide q/k/v site, index on its head axis)


def _items(spec: object) -> list[Any]:
    return [spec] if isinstance(spec, str | Site) else list(spec)  # type: ignore[call-overload]


def _receiver_names(spec: object) -> tuple[str, ...]:
    return tuple(dict.fromkeys(str(Site.parse(s)) for s in _items(spec)))


def _receivers(spec: object, model: Model) -> Receivers | None:
    """Returns the receiver sites with their head-axis index (None for the logits); two names of
    one key/value head (query heads of one group) are one receiver."""
    if spec == "logits" or (isinstance(spec, list | tuple) and list(spec) == ["logits"]):
        return None
    items = _items(spec)
    if not items:
        raise PatchingError("no receivers given; pass 'logits' or sites like 'L20.attn.q.h3'")
    out: Receivers = []
    for item in items:
        try:
            site = check_site(item, model.dims)  # type: ignore[arg-type]
        except SiteError as e:
            raise PatchingError(f"receiver {item!r}: {e}") from None
        if site.component not in RECEIVER_COMPONENTS or site.head is None:
            raise PatchingError(
                f"receiver {str(item)!r} is not one head's q, k or v input; receivers are 'logits' "
                "(alone) or sites like 'L20.attn.q.h3', 'L20.attn.k.h3', 'L20.attn.v.h3'"
            )
        key = (site.with_head(None), head_index(site, model.dims, site.head))
        if key not in out:
            out.append(key)
    return out


def _senders(
    spec: object, model: Model, top: int | None
) -> tuple[list[tuple[str, int, int]], tuple[str, ...]]:
    """Returns the sender cells (component, layer, head or -1) and the components they fill."""
    d = model.dims
    valid = (
        "senders must be 'heads', 'mlps', 'all', or sites like 'L3.attn.z.h5', 'L3.attn.z' "
        f"(every head of layer 3) or 'L3.mlp_out'; got {spec!r}"
    )
    if isinstance(spec, str) and spec in SENDER_SETS:
        heads = [("attn.z", i, h) for i in range(d.n_layers) for h in range(d.n_heads)]
        mlps = [("mlp_out", i, -1) for i in range(d.n_layers)]
        cells = {"heads": heads, "mlps": mlps, "all": heads + mlps}[spec]
    else:
        items = [spec] if isinstance(spec, str | Site) else spec
        if not isinstance(items, Sequence) or not items:
            raise PatchingError(valid)
        cells = []
        for item in items:
            try:
                s = check_site(item, d)  # type: ignore[arg-type]
            except SiteError as e:
                raise PatchingError(f"{valid} ({e})") from None
            if s.component not in ("attn.z", "mlp_out"):
                raise PatchingError(valid)
            assert s.layer is not None
            if top is not None and s.layer >= top:
                raise PatchingError(
                    f"sender {s} has no path to the receivers: a receiver at layer {top} reads the "
                    f"residual stream entering layer {top}; senders must sit below layer {top}"
                )
            if s.component == "mlp_out":
                cells.append(("mlp_out", s.layer, -1))
            else:
                hs = range(d.n_heads) if s.head is None else [s.head]
                cells.extend(("attn.z", s.layer, h) for h in hs)
        cells = list(dict.fromkeys(cells))
    comps = tuple(c for c in ("attn.z", "mlp_out") if any(x[0] == c for x in cells))
    return cells, comps


@dataclass(frozen=True)
class _Run:
    """The clean and corrupt runs: what the sweep reads (tensors per layer, ``[n, pos, ...]``)."""

    ids: Tensor
    mask: Tensor | None
    answer_pos: Tensor
    z: dict[str, list[Tensor]]  # "clean"/"corrupt" -> attn.z per layer [n, pos, head, d_head]
    mlp: dict[str, list[Tensor]]  # "clean"/"corrupt" -> mlp_out per layer [n, pos, d_model]
    resid: list[Tensor]  # clean resid_pre per layer (fast path only)
    received: list[Tensor]  # clean value of each receiver [n, pos, d_head]
    metric: Metric
    targets: Targets
    clean_metric: Tensor
    corrupt_metric: Tensor


def _setup(model: Model, tp: Any, recv: Receivers | None, metric: Metric, fast: bool) -> _Run:
    n_layers = model.dims.n_layers
    z = [Site(i, "attn.z") for i in range(n_layers)]
    mlp = [Site(i, "mlp_out") for i in range(n_layers)]
    resid = [Site(i, "resid_pre") for i in range(n_layers)] if fast else []
    rsites = [] if recv is None else [s for s, _ in recv]
    answer_pos = tp.lengths - 1
    caches, logits = {}, {}
    for side, ids in (("clean", tp.clean), ("corrupt", tp.corrupt)):
        extra = [*resid, *rsites] if side == "clean" else []
        with model.capture(list(dict.fromkeys([*z, *mlp, *extra]))) as cache:
            out = model.hf(input_ids=ids, attention_mask=tp.mask, use_cache=False)
        caches[side] = cache
        logits[side] = out.logits[torch.arange(tp.n), answer_pos].float()
    targets = Targets(tp.answer, tp.wrong, torch.log_softmax(logits["clean"], -1))
    clean = caches["clean"]
    return _Run(
        ids=tp.clean,
        mask=tp.mask,
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


def _rows(
    run: _Run, cells: list[tuple[str, int, int]], comps: tuple[str, ...], top: int | None, H: int
) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Returns the rows to run (sorted by the sender's layer) and effect grids prefilled with 0
    (no-op senders), or NaN (not a sender, or no path)."""
    n = run.ids.shape[0]
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


def _row_bytes(model: Model, run: _Run, recv: Receivers | None, fast: bool) -> int:
    """Returns a row's working memory: a layer's activations (and the logits on the hook path)."""
    d = model.dims
    length = run.ids.shape[1]
    per_token = 8 * d.d_model + 4 * d.d_mlp + 4 * d.n_heads * d.d_head
    full = length * (per_token + 3 * d.n_heads * length + 2 * len(recv or ()) * d.d_head)
    if not fast:
        return 4 * (full + length * d.d_vocab)
    return 4 * (per_token if recv is None else full)


# -- the two sweeps -------------------------------------------------------------------------------


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
    run: _Run, rows: dict[str, Tensor], layer: int, freeze_mlps: bool, pos: Tensor | None
) -> list[Apply]:
    """Returns step 2's interventions at ``layer``: heads frozen, the senders of this layer swapped."""
    ex = rows["example"]
    at = rows["layer"] == layer
    out = [
        Apply(
            Site(layer, "attn.z"),
            _writer(
                run.z["clean"][layer],
                run.z["corrupt"][layer],
                ex,
                pos,
                at & (rows["head"] >= 0),
                rows["head"],
            ),
        )
    ]
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


def _hook_chunk(
    model: Model, run: _Run, rows: dict[str, Tensor], recv: Receivers | None, freeze_mlps: bool
) -> Tensor:
    """Returns each row's path-patched metric, from whole forwards with per-row interventions."""
    ex = rows["example"]
    mask = None if run.mask is None else run.mask[ex]
    ivs = [a for i in range(model.dims.n_layers) for a in _freezes(run, rows, i, freeze_mlps, None)]
    rsites = [] if recv is None else list(dict.fromkeys(s for s, _ in recv))
    with model.capture(rsites, interventions=ivs) as cache:
        logits = model.hf(input_ids=run.ids[ex], attention_mask=mask, use_cache=False).logits
    if recv is not None:
        recorded = [cache[s][:, :, h] for s, h in recv]
        writes = [
            a
            for i in {s.layer for s, _ in recv if s.layer is not None}
            for a in _receiver_writes(recv, recorded, i)
        ]  # type: ignore[arg-type]
        with model.intervene(writes):
            logits = model.hf(input_ids=run.ids[ex], attention_mask=mask, use_cache=False).logits
    last = logits[torch.arange(len(ex)), run.answer_pos[ex]]
    return run.metric(last, run.targets, ex).double()


def _fast_chunk(
    model: Model, run: _Run, rows: dict[str, Tensor], recv: Receivers | None, freeze_mlps: bool
) -> Tensor:
    """Returns each row's path-patched metric, running HF's decoder layers on what can change."""
    hf: Any = model.hf
    layers = get_module(hf, model.adapter.layers)
    n_layers = model.dims.n_layers
    length = run.ids.shape[1]
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
    probe = run.resid[0][:1, :1]
    one = hf.model.rotary_emb(probe, torch.zeros((1, 1), dtype=torch.long))
    hidden = probe.new_empty((0, 1, probe.shape[-1]))
    for i in range(int(rows["layer"].min()), stop):
        joining = (toks["layer"] == i).nonzero().flatten()
        new = run.resid[i][toks["example"][joining], pos[joining]]
        hidden = torch.cat([hidden, new.unsqueeze(1)])
        rsites = [] if recv is None else list(dict.fromkeys(s for s, _ in recv if s.layer == i))
        with model.capture(rsites, interventions=_freezes(run, toks, i, freeze_mlps, pos)) as cache:
            hidden = layers[i](hidden, attention_mask=None, position_embeddings=one)  # type: ignore[index]
        for j, (s, h) in enumerate(recv or ()):
            if s.layer == i:
                k = hidden.shape[0]
                recorded[j][tok[:k], pos[:k]] = cache[s][:, 0, h]
    if recv is None:
        return _metric(model, run, hidden[:, 0], rows["example"])
    # Step 3: from the lowest receiver layer, clean residual, receivers' q/k/v as recorded.
    start = min(s.layer for s, _ in recv)  # type: ignore[type-var]
    sx = suffix(model, run.resid[0], None, None, 0)
    hidden = run.resid[start][rows["example"]]
    for i in range(start, n_layers):
        writes = _receiver_writes(recv, recorded, i)
        with model.intervene(writes) if writes else contextlib.nullcontext():
            hidden = run_layer(model, sx, i, hidden)
    return _metric(model, run, hidden[:, -1], rows["example"])


def _metric(model: Model, run: _Run, final_resid: Tensor, examples: Tensor) -> Tensor:
    """Returns the metric from the final residual at the answer position (two logits suffice
    for a logit difference)."""
    return answer_metric(model, run.metric, run.targets, final_resid, examples).double()


__all__ = ["METHODS", "SENDER_SETS", "PathPatchingResult", "path_patching"]
