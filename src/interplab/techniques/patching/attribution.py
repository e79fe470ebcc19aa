"""Attribution patching: a first-order estimate of every cell's patching effect from one backward.

Algorithm (Nanda 2023, "Attribution Patching: Activation Patching At Industrial Scale"; Syed,
Rager & Conmy 2023, "Attribution Patching Outperforms Automated Circuit Discovery"):

1. Run the source prompts (clean when denoising) once, capturing every site of the grid.
2. Run the base prompts (corrupt when denoising) once with ``grad=True``, capturing the same
   sites, and compute the metric per example at the answer position.
3. One backward pass gives the gradient of the summed metric with respect to every captured
   activation (only activation gradients: no weight gradient is computed). Examples do not
   interact, so each example's gradient is its own metric's.
4. A cell's estimated effect is ``grad · (source - base)`` summed over the cell's features
   (``d_model``, or ``d_head`` for one head) and over its positions: the first-order Taylor term
   of patching that cell.

The estimate is exact when the metric is linear in the patched activation and degrades where the
model is far from linear (saturated softmaxes, large patches, attention pattern changes);
`compare_with_activation_patching` shows where by correlating it with the exact effects, with
percentile-bootstrap CIs over examples.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from interplab.core.model import Model
from interplab.results.patching import AttributionResult, Direction, GridResult, PatchingError, Per
from interplab.results.patching_compare import Comparison
from interplab.sites import Site
from interplab.store import recorded
from interplab.techniques.metrics import Metric, MetricName, Targets
from interplab.techniques.patching.config import AttributionConfig
from interplab.techniques.patching.grid import PairsLike, grid_shape, prepare


@recorded("attribution_patching", inputs="pairs")
def attribution_patching(
    model: Model,
    pairs: PairsLike,
    *,
    components: Sequence[str] | str = ("resid_pre",),
    direction: Direction = "denoise",
    per: Per = "position",
    metric: MetricName | Metric = "logit_diff",
    control: bool = True,
    seed: int = 0,
    config: AttributionConfig | None = None,
) -> AttributionResult:
    """Returns ``grad · (source - base)`` per example for each cell of each component grid: the
    linear estimate of `activation_patching`'s effects, from one forward and one backward. With
    ``control`` (the default) the same estimate is made on unrelated control prompts (drawn with
    ``seed``, `interplab.techniques.patching.controls`) and kept as ``result.control``.
    ``config`` replaces the option keywords."""
    cfg = config or AttributionConfig(
        components=(components,) if isinstance(components, str) else tuple(components),  # type: ignore[arg-type]
        direction=direction,
        per=per,
        metric=metric.name if isinstance(metric, Metric) else metric,
        control=control,
        seed=seed,
    )
    comps: tuple[str, ...] = cfg.components
    m = Metric(cfg.metric)
    inputs = prepare(model, pairs, cfg.per)
    tp = inputs.pairs
    d = model.dims
    n, length = tp.clean.shape
    sites = [Site(layer, c) for c in comps for layer in range(d.n_layers)]  # type: ignore[arg-type]
    rows = torch.arange(n)
    answer_pos = tp.lengths - 1
    denoise = cfg.direction == "denoise"
    base_side, source_side = ("corrupt", "clean") if denoise else ("clean", "corrupt")
    with torch.no_grad():
        source = model.run(tp.tokens(model, source_side), capture=sites)
    base = model.run(tp.tokens(model, base_side), capture=sites, grad=True)
    logits = base.logits
    base_logits = logits[rows, answer_pos].detach()
    source_logits = source.logits[rows, answer_pos]
    clean_logits = source_logits if denoise else base_logits
    corrupt_logits = base_logits if denoise else source_logits
    targets = Targets(tp.answer, tp.wrong, torch.log_softmax(clean_logits.float(), -1))
    value = m(logits[rows, answer_pos], targets)
    acts = [base.cache[s] for s in sites]
    grads = torch.autograd.grad(value.sum(), acts)
    effects: dict[str, np.ndarray] = {}
    with torch.no_grad():
        for c in comps:
            grid = torch.empty(grid_shape(c, cfg.per, n, d, length))
            for layer in range(d.n_layers):
                site = Site(layer, c)  # type: ignore[arg-type]
                i = sites.index(site)
                prod = grads[i] * (source.cache[site] - acts[i].detach())  # [n, pos, (H), feat]
                if tp.mask is not None:
                    shape = tp.mask.shape + (1,) * (prod.ndim - 2)
                    prod = prod * tp.mask.view(shape).to(prod.device)
                cell = prod.sum(-1)  # [n, pos, (H)]
                if c == "attn.z":
                    cell = cell.transpose(1, 2)  # [n, H, pos]
                grid[:, layer] = cell if cfg.per == "position" else cell.sum(-1)
            effects[c] = grid.double().numpy()
    clean_m = m(clean_logits, targets).double().cpu().numpy()
    corrupt_m = m(corrupt_logits, targets).double().cpu().numpy()
    control_result = None
    if cfg.control:
        from interplab.techniques.patching.controls import run_control

        control_result = run_control(attribution_patching, model, tp, cfg)
    return AttributionResult(
        components=comps,
        direction=cfg.direction,
        per=cfg.per,
        metric=m.name,
        effects=effects,
        clean=clean_m,
        corrupt=corrupt_m,
        **inputs.recorded("attribution_patching", model, cfg.to_dict(), cfg.seed),
        control=control_result,
    )


def compare_with_activation_patching(
    attribution: GridResult,
    activation: GridResult,
    *,
    component: str | None = None,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Comparison:
    """Returns Pearson and Spearman correlations (with percentile bootstrap CIs over examples)
    between the two results' mean effects per cell, and the cells where they disagree most."""
    comp = component or attribution.components[0]
    a, b = attribution.effect(comp), activation.effect(comp)
    if a.shape != b.shape:
        raise PatchingError(
            f"the grids of {comp} differ in shape ({a.shape} vs {b.shape}); run both on the same "
            "pairs, components and per="
        )
    if attribution.direction != activation.direction:
        raise PatchingError("the two results patch in different directions (denoise vs noise)")
    n = a.shape[0]
    a2, b2 = a.reshape(n, -1), b.reshape(n, -1)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_resamples, n))
    pear = np.array([_pearson(a2[r].mean(0), b2[r].mean(0)) for r in idx])
    spear = np.array([_spearman(a2[r].mean(0), b2[r].mean(0)) for r in idx])
    lo, hi = (1 - confidence) / 2 * 100, (1 + confidence) / 2 * 100

    def ci(x: np.ndarray) -> tuple[float, float]:
        x = x[np.isfinite(x)]
        return (
            (float(np.percentile(x, lo)), float(np.percentile(x, hi)))
            if x.size
            else (np.nan, np.nan)
        )

    ma, mb = a2.mean(0), b2.mean(0)
    return Comparison(
        component=comp,
        cells=attribution.cells(comp),
        attribution=ma,
        activation=mb,
        errors=a2 - b2,
        pearson=_pearson(ma, mb),
        pearson_ci=ci(pear),
        spearman=_spearman(ma, mb),
        spearman_ci=ci(spear),
        n_examples=n,
        n_resamples=n_resamples,
        confidence=confidence,
    )


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    xc, yc = x - x.mean(), y - y.mean()
    denom = float(np.sqrt((xc**2).sum() * (yc**2).sum()))
    return float((xc * yc).sum() / denom) if denom > 0 else float("nan")


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    from scipy.stats import rankdata

    return _pearson(rankdata(x), rankdata(y))


__all__ = ["attribution_patching", "compare_with_activation_patching"]
