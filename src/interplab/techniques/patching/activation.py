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
architecture, whole forwards (`interplab.techniques.patching.hooks`). The fast path
(``method="fast"``, `interplab.techniques.patching.fast`) also skips work that cannot change: the
layers below the patch, the positions before it (through the cached keys and values of the
unpatched run), and the logits other than the metric's. ``method="auto"`` takes the fast path
where the model supports partial forwards, else the packed hook path, and says why.
``method="verified"`` (`interplab.techniques.patching.verified`) patches exactly only the cells
AtP* ranks highest and a random sample of the rest, estimates the others, and bounds them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor

from interplab.core.interventions import Ablate
from interplab.core.memory import resolve_budget
from interplab.core.model import Model, Tokens
from interplab.results.patching import Direction, PatchingError, PatchingResult, Per, Source
from interplab.sites import Site
from interplab.store import recorded
from interplab.techniques.metrics import Metric, MetricName, Targets
from interplab.techniques.patching import fast, hooks
from interplab.techniques.patching.config import Method, PatchingConfig
from interplab.techniques.patching.grid import PairsLike, TokenPairs, answer_logits, prepare

FAST_TOLERANCE = 1e-4
"""The fast path equals the one-cell hook loop within ``FAST_TOLERANCE * (1 + |metric|)`` in
float32: it runs different batch shapes and kernels (a KV cache, gathered unembedding rows), which
round differently; the tests measure the gap on every family it supports."""


@recorded("activation_patching", inputs="pairs")
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
    batch_budget_mb: float | Literal["auto"] = 512.0,
    progress: bool = True,
    control: bool = True,
    config: PatchingConfig | None = None,
) -> PatchingResult:
    """Returns the per-example effect on ``metric`` of patching each cell of each component grid
    (``[n, layer, pos]``, ``[n, layer]``, or with a head axis for ``attn.z``). ``pairs`` is a
    `PairDataset`, a list of `ContrastPair`, or `TokenPairs`. With ``control`` (the default) the
    identical sweep also runs on unrelated control prompts
    (`interplab.techniques.patching.controls`) and is kept as ``result.control``. ``config``
    replaces the option keywords."""
    cfg = config or PatchingConfig(
        components=(components,) if isinstance(components, str) else tuple(components),  # type: ignore[arg-type]
        direction=direction,
        per=per,
        metric=metric.name if isinstance(metric, Metric) else metric,
        source=source,
        method=method,
        seed=seed,
        batch_budget_mb=batch_budget_mb,
        control=control,
    )
    if cfg.method == "verified":  # AtP* ranks the cells, the top and a sample run exactly
        from interplab.techniques.patching.verified import VerifiedConfig, run_verified

        return run_verified(model, pairs, VerifiedConfig.from_patching(cfg), progress=progress)
    comps: tuple[str, ...] = cfg.components
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
        base_m = corrupt_m if denoise else clean_m
        sites = [Site(layer, c) for c in comps for layer in range(model.dims.n_layers)]  # type: ignore[arg-type]
        base_acts = _capture(model, model.tokens(base_ids, tp.mask), sites)
        values = _sources(model, model.tokens(source_ids, tp.mask), sites, base_acts, cfg)
        budget = resolve_budget(cfg.batch_budget_mb, model.device)
        if use_fast:
            metric_grids, _ = fast.sweep(
                model, base_ids, values, comps, cfg.per, m, targets,
                budget_mb=budget, progress=progress,
            )  # fmt: skip
        elif cfg.method == "loop":
            metric_grids = hooks.loop_sweep(
                model, base_ids, tp, values, base_acts, comps, cfg.per, m, targets, cfg.source,
                cfg.seed, progress,
            )  # fmt: skip
        else:
            metric_grids = hooks.packed_sweep(
                model, base_ids, tp, values, comps, cfg.per, m, targets, budget, progress,
            )  # fmt: skip
    control_result = None
    if cfg.control:
        from interplab.techniques.patching.controls import run_control

        control_result = run_control(activation_patching, model, tp, cfg, progress=progress)
    shape_base = base_m.double().cpu().numpy()
    effects = {
        c: metric_grids[c].double().cpu().numpy()
        - shape_base.reshape((-1,) + (1,) * (metric_grids[c].ndim - 1))
        for c in comps
    }
    return PatchingResult(
        components=comps,
        direction=cfg.direction,
        per=cfg.per,
        metric=m.name,
        effects=effects,
        clean=clean_m.double().cpu().numpy(),
        corrupt=corrupt_m.double().cpu().numpy(),
        **inputs.recorded("activation_patching", model, cfg.to_dict(), cfg.seed),
        control=control_result,
        source=cfg.source,
        method="fast" if use_fast else ("loop" if cfg.method == "loop" else "hooks"),
        note=note,
    )


def _capture(model: Model, tokens: Tokens, sites: list[Site]) -> dict[Site, Tensor]:
    cache = model.run(tokens, capture=sites).cache
    return {s: cache[s] for s in sites}


def _sources(
    model: Model,
    source_tokens: Tokens,
    sites: list[Site],
    base_acts: dict[Site, Tensor],
    cfg: PatchingConfig,
) -> dict[Site, Tensor]:
    """Returns the value each site is patched to, shaped like the site ``[n, pos, ...]``."""
    if cfg.source == "contrast":
        return _capture(model, source_tokens, sites)
    out = {}
    for s, act in base_acts.items():
        ref = None if cfg.source == "zero" else act
        iv = Ablate(s, cfg.source, reference=ref, seed=cfg.seed)  # type: ignore[arg-type]
        rep = iv.replacement(act.shape[0])
        out[s] = torch.zeros_like(act) if rep is None else rep.expand_as(act).clone()
    return out


__all__ = ["FAST_TOLERANCE", "TokenPairs", "activation_patching"]
