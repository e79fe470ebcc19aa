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
implementations give the same numbers (`interplab.techniques.patching.path_sweep`).
``method="hooks"`` runs whole forwards (any architecture). ``method="fast"`` (models with partial
forwards: the Llama family, unpadded prompts) runs the decoder layers directly and uses what
freezing implies: with every head's output fixed, nothing moves information between positions in
step 2, so each (row, position) is its own length-1 sequence that joins the batch at the sender's
layer, and for ``"logits"`` only the answer position is computed at all. Step 3 starts at the
lowest receiver layer, from the clean residual stream. Nothing is returned until the sweep
completes: Ctrl-C leaves no partial result.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

import torch
from torch import Tensor

from interplab.core.memory import resolve_budget
from interplab.core.model import Model
from interplab.core.points import head_index
from interplab.progress import progress_bar
from interplab.results.patching import PatchingError, PathPatchingResult
from interplab.sites import Site, SiteError, SiteLike, check_site
from interplab.store import recorded
from interplab.techniques.metrics import Metric, MetricName
from interplab.techniques.patching import fast
from interplab.techniques.patching.config import LOGITS, PathMethod, PathPatchingConfig
from interplab.techniques.patching.grid import Inputs, PairsLike, prepare
from interplab.techniques.patching.path_sweep import (
    PathWork,
    Receivers,
    chunks,
    compute,
    row_bytes,
    rows_and_grids,
    setup,
    write,
)

SenderSet = Literal["heads", "mlps", "all"]
SENDER_SETS: tuple[str, ...] = get_args(SenderSet)
METHODS: tuple[str, ...] = get_args(PathMethod)
RECEIVER_COMPONENTS = ("attn.q", "attn.k", "attn.v")
_VALID_SENDERS = (
    "senders must be 'heads', 'mlps', 'all', or sites like 'L3.attn.z.h5', 'L3.attn.z' "
    "(every head of layer 3) or 'L3.mlp_out'"
)


@recorded("path_patching", inputs="pairs")
def path_patching(
    model: Model,
    pairs: PairsLike,
    *,
    senders: SenderSet | Sequence[SiteLike] = "heads",
    receivers: Literal["logits"] | SiteLike | Sequence[SiteLike] = "logits",
    freeze_mlps: bool = False,
    metric: MetricName | Metric = "logit_diff",
    method: PathMethod = "auto",
    batch_budget_mb: float | Literal["auto"] = 512.0,
    progress: bool = True,
    config: PathPatchingConfig | None = None,
) -> PathPatchingResult:
    """Returns the per-example effect on ``metric`` of patching each sender's corrupt value along
    the paths to ``receivers`` only. ``senders`` is ``"heads"``, ``"mlps"``, ``"all"`` or sites
    (``"L3.attn.z.h5"``, ``"L3.attn.z"`` for every head of layer 3, ``"L3.mlp_out"``);
    ``receivers`` is ``"logits"`` or head inputs (``["L9.attn.q.h6", "L9.attn.k.h6"]``).
    ``config`` replaces the option keywords."""
    cfg = config or path_config(senders, receivers, freeze_mlps, metric, method, batch_budget_mb)
    plan = plan_path(model, pairs, cfg)
    work = plan.work
    effects = {c: g.clone() for c, g in plan.grids.items()}
    with progress_bar(len(work.rows["example"]), "path patching", progress) as advance:
        for span in chunks(work):
            write(work, effects, [span], compute(model, work, [span]))
            advance(span[1] - span[0])
    return path_result(model, plan, effects)


def path_config(
    senders: SenderSet | Sequence[SiteLike],
    receivers: Literal["logits"] | SiteLike | Sequence[SiteLike],
    freeze_mlps: bool,
    metric: MetricName | Metric,
    method: PathMethod,
    batch_budget_mb: float | Literal["auto"],
) -> PathPatchingConfig:
    """Returns the config of `path_patching`'s keyword options (sites parsed, names checked)."""
    return PathPatchingConfig(
        senders="sites" if _is_sites(senders) else senders,  # type: ignore[arg-type]
        sender_sites=_sites(senders, _VALID_SENDERS) if _is_sites(senders) else (),
        receivers=_receiver_sites(receivers),
        freeze_mlps=freeze_mlps,
        metric=metric.name if isinstance(metric, Metric) else metric,
        method=method,
        batch_budget_mb=batch_budget_mb,
    )


@dataclass(frozen=True)
class PathPlan:
    """What a path-patching sweep runs on: the options, the prepared pairs, the rows and their
    runs (`PathWork`), the effect grids prefilled with 0 (no-op senders) and NaN (no path), and
    the note on the path taken."""

    config: PathPatchingConfig
    inputs: Inputs
    work: PathWork
    grids: dict[str, Tensor]
    note: str


def plan_path(model: Model, pairs: PairsLike, config: PathPatchingConfig) -> PathPlan:
    """Returns the plan of `path_patching`'s sweep: senders and receivers checked, the clean and
    corrupt runs cached (step 1 of the module docstring) and the rows to run listed."""
    cfg = config
    m = Metric(cfg.metric)
    d = model.dims
    recv = _receivers(cfg.receivers, model)
    top = None if recv is None else max(s.layer for s, _ in recv)  # type: ignore[type-var]
    cells, comps = _senders(cfg, model, top)
    inputs = prepare(model, pairs)
    tp = inputs.pairs
    reason = fast.unsupported(model, tp)
    if cfg.method == "fast" and reason:
        raise PatchingError(f"the fast path cannot run here: {reason}")
    use_fast = cfg.method == "fast" or (cfg.method == "auto" and not reason)
    with torch.no_grad():
        run = setup(model, tp, recv, m, use_fast)
        rows, grids = rows_and_grids(run, cells, comps, top, d.n_heads)
    budget = resolve_budget(cfg.batch_budget_mb, model.device)
    limit = max(1, int(budget * 2**20 // row_bytes(model, run, recv, use_fast)))
    work = PathWork(run, rows, comps, recv, cfg.freeze_mlps, use_fast, limit)
    no_path = sum(1 for _, layer, _ in cells if top is not None and layer >= top)
    note = "" if use_fast or cfg.method == "hooks" else f"hook path used: {reason}"
    if no_path:
        note = (note + "; " if note else "") + (
            f"{no_path} sender(s) sit at or above the highest receiver layer ({top}): no path, NaN"
        )
    return PathPlan(cfg, inputs, work, grids, note)


def path_result(model: Model, plan: PathPlan, effects: dict[str, Tensor]) -> PathPatchingResult:
    """Returns the `PathPatchingResult` of the filled effect grids (as `path_patching` builds it)."""
    cfg, run = plan.config, plan.work.run
    return PathPatchingResult(
        components=plan.work.components,
        direction="noise",
        per="all",
        metric=run.metric.name,
        effects={c: e.cpu().numpy() for c, e in effects.items()},
        clean=run.clean_metric.double().cpu().numpy(),
        corrupt=run.corrupt_metric.double().cpu().numpy(),
        **plan.inputs.recorded("path_patching", model, cfg),
        receivers=cfg.receivers,
        freeze_mlps=cfg.freeze_mlps,
        method="fast" if plan.work.fast else "hooks",
        note=plan.note,
    )


# -- inputs ---------------------------------------------------------------------------------------


def _is_sites(spec: object) -> bool:
    return not (isinstance(spec, str) and spec in SENDER_SETS)


def _items(spec: object) -> list[Any]:
    return [spec] if isinstance(spec, str | Site) else list(spec)  # type: ignore[call-overload]


def _sites(spec: object, error: str) -> tuple[Site, ...]:
    """Returns the sites of a string, a Site or a list of them, raising ``error`` otherwise."""
    try:
        items = _items(spec)
        return tuple(dict.fromkeys(Site.parse(s) for s in items))
    except (SiteError, TypeError) as e:
        raise PatchingError(f"{error}; got {spec!r} ({e})") from None


def _receiver_sites(spec: object) -> tuple[Site, ...]:
    if spec == "logits" or (isinstance(spec, list | tuple) and list(spec) == ["logits"]):
        return (LOGITS,)
    if isinstance(spec, list | tuple) and not spec:
        raise PatchingError("no receivers given; pass 'logits' or sites like 'L20.attn.q.h3'")
    return _sites(spec, "receivers are 'logits' or sites like 'L20.attn.q.h3'")


def _receivers(sites: tuple[Site, ...], model: Model) -> Receivers | None:
    """Returns the receiver sites with their head-axis index (None for the logits); two names of
    one key/value head (query heads of one group) are one receiver."""
    if sites == (LOGITS,):
        return None
    out: Receivers = []
    for item in sites:
        try:
            site = check_site(item, model.dims)
        except SiteError as e:
            raise PatchingError(f"receiver {str(item)!r}: {e}") from None
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
    cfg: PathPatchingConfig, model: Model, top: int | None
) -> tuple[list[tuple[str, int, int]], tuple[str, ...]]:
    """Returns the sender cells (component, layer, head or -1) and the components they fill."""
    d = model.dims
    if cfg.senders != "sites":
        heads = [("attn.z", i, h) for i in range(d.n_layers) for h in range(d.n_heads)]
        mlps = [("mlp_out", i, -1) for i in range(d.n_layers)]
        cells = {"heads": heads, "mlps": mlps, "all": heads + mlps}[cfg.senders]
    else:
        cells = []
        for item in cfg.sender_sites:
            try:
                s = check_site(item, d)
            except SiteError as e:
                raise PatchingError(f"{_VALID_SENDERS} ({e})") from None
            if s.component not in ("attn.z", "mlp_out"):
                raise PatchingError(f"{_VALID_SENDERS}; got {str(s)!r}")
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


__all__ = [
    "METHODS",
    "SENDER_SETS",
    "PathPlan",
    "path_config",
    "path_patching",
    "path_result",
    "plan_path",
]
