"""Figures of patching results: layer × position (or layer × head) heatmaps of mean effects, the
task beside its control, ablation methods side by side, and the attribution-versus-activation
scatter; and the same grids as interactive heatmaps.

Cells that do not survive the multiple-comparison correction are faded and hatched, so the eye
lands on effects the data supports, not on the largest colour.

    viz.figure(result)                  # the first component's heatmap
    viz.figure(result, component="attn.z")
    viz.figure(result, control=True)    # task and control side by side, each in its own gap
    viz.save(result, "patch.png")       # patch.png and the interactive patch.html
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from interplab.results.patching import GridResult, PatchingError, PathPatchingResult, gap
from interplab.results.patching_compare import AblationComparison, Comparison
from interplab.stats import Summary
from interplab.stats.summary import SummaryCorrection
from interplab.viz.figures import clean_token, hatch
from interplab.viz.interactive import Heatmap
from interplab.viz.render import renders


def _kind(result: GridResult) -> str:
    return "estimated effect" if result.technique == "attribution_patching" else "effect"


def _summary(result: GridResult, component: str, correction: SummaryCorrection) -> Summary | None:
    return result.summary(component, correction=correction) if result.n >= 2 else None


def _grid(
    result: GridResult, component: str, summary: Summary | None
) -> tuple[np.ndarray, np.ndarray | None, str, list[str]]:
    """Returns the drawn values ``[layer, column]``, which survive correction, the column axis name
    and column labels. Per-head, per-position grids are drawn summed over positions."""
    mean = result.effect(component).mean(0)
    axes = result.axes(component)[1:]
    sig = None if summary is None else np.asarray(summary.significant)
    if axes == ("layer", "head", "pos"):
        mean = mean.sum(-1)
        sig = None if sig is None else np.asarray(sig.any(-1))
        return mean, sig, "head (summed over positions)", [f"h{h}" for h in range(mean.shape[1])]
    if axes == ("layer", "pos"):
        toks = result.tokens[0][: mean.shape[1]]
        return mean, sig, "position (clean token)", [f"{i} {t}" for i, t in enumerate(toks)]
    if axes == ("layer", "head"):
        return mean, sig, "head", [f"h{h}" for h in range(mean.shape[1])]
    return mean[:, None], None if sig is None else sig[:, None], "all positions", ["all"]


def _draw(
    ax: Any, mean: np.ndarray, sig: np.ndarray | None, xlabel: str, xticks: list[str], lim: float
) -> Any:
    im = ax.imshow(mean, aspect="auto", cmap="RdBu", vmin=-lim, vmax=lim, origin="lower")
    if sig is not None:
        hatch(ax, ~sig)
    rotate = xlabel.startswith("position")
    ax.set_xticks(
        range(mean.shape[1]),
        [clean_token(t) for t in xticks],
        rotation=60 if rotate else 0,
        ha="right" if rotate else "center",
        fontsize=7,
    )
    ax.set_yticks(range(mean.shape[0]), [str(i) for i in range(mean.shape[0])], fontsize=6)
    ax.set_xlabel(xlabel)
    return im


def grid_title(result: GridResult, component: str | None = None) -> str:
    """Returns what a grid figure or page shows, in a line (every component without one)."""
    comps = ", ".join(result.components) if component is None else result.component(component)
    if isinstance(result, PathPatchingResult):
        return f"{comps} senders: {result.title}"
    return f"{result.technique}: {result.direction} {comps} on {result.metric} (n={result.n})"


def grid_figure(
    result: GridResult,
    component: str | None = None,
    *,
    correction: SummaryCorrection = "holm",
    control: bool = False,
) -> Figure:
    """Returns the heatmap of ``component``'s mean effect over examples; cells that do not survive
    the correction are hatched. With ``control``, the task and control heatmaps side by side."""
    comp = result.component(component)
    if control:
        return control_figure(result, comp)
    summary = _summary(result, comp, correction)
    mean, sig, xlabel, xticks = _grid(result, comp, summary)
    n_layers, width = mean.shape
    lim = float(np.nanmax(np.abs(mean))) or 1.0
    fig = Figure(figsize=(2.0 + 0.55 * width, 1.2 + 0.22 * n_layers))
    ax = fig.subplots()
    im = _draw(ax, mean, sig, xlabel, xticks, lim)
    ax.set_ylabel(f"layer ({comp})")
    hatched = "" if summary is None else f"; hatched: not significant after {summary.correction}"
    if isinstance(result, PathPatchingResult):
        title = grid_title(result, comp)
    else:
        title = f"{result.direction} {comp}: mean {_kind(result)} on {result.metric} (n={result.n})"
    ax.set_title(title + hatched, fontsize=8)
    fig.colorbar(im, ax=ax, fraction=0.03, label=f"Δ {result.metric}")
    fig.tight_layout()
    return fig


def control_figure(result: GridResult, component: str | None = None) -> Figure:
    """Returns the task and control heatmaps side by side, each in units of its own gap."""
    if result.control is None:
        raise PatchingError("this sweep ran without a control; pass control=True")
    return side_by_side_figure(
        {"task prompts": result, "control prompts": result.control},
        result.component(component),
        "task vs unrelated control prompts",
        scale={"task prompts": gap(result), "control prompts": gap(result.control)},
        unit="mean effect / own gap",
    )


def side_by_side_figure(
    results: dict[str, GridResult],
    component: str,
    title: str,
    scale: dict[str, float] | None = None,
    unit: str | None = None,
) -> Figure:
    """Returns one heatmap per result on a shared colour scale; ``scale`` divides each result's
    values (e.g. by its own clean-corrupt gap) and ``unit`` names what the colours then mean."""
    drawn = {}
    for name, r in results.items():
        mean, sig, xlabel, xticks = _grid(r, component, _summary(r, component, "holm"))
        drawn[name] = (mean / (scale or {}).get(name, 1.0), sig, xlabel, xticks, r)
    lim = max(float(np.nanmax(np.abs(d[0]))) for d in drawn.values()) or 1.0
    n_layers, width = next(iter(drawn.values()))[0].shape
    fig = Figure(figsize=(len(drawn) * (1.6 + 0.5 * width), 1.6 + 0.22 * n_layers))
    axes = fig.subplots(1, len(drawn), squeeze=False)
    im: Any = None
    for ax, (name, (mean, sig, xlabel, xticks, r)) in zip(axes[0], drawn.items(), strict=True):
        im = _draw(ax, mean, sig, xlabel, xticks, lim)
        ax.set_title(f"{name} (n={r.n})", fontsize=8)
    axes[0][0].set_ylabel(f"layer ({component})")
    r0 = next(iter(results.values()))
    fig.suptitle(f"{title}: {r0.direction} {component}; hatched: not significant", fontsize=9)
    fig.colorbar(im, ax=list(axes[0]), fraction=0.03, label=unit or f"Δ {r0.metric}")
    return fig


def grid_heatmap(result: GridResult, component: str, summary: Summary | None) -> Heatmap:
    """Returns the interactive counterpart of `grid_figure`: the same cells, each naming its mean
    effect, 95% CI and adjusted p-value."""
    mean, sig, _, cols = _grid(result, component, summary)
    hover: list[list[str]] | None = None
    if summary is not None and result.axes(component)[1:] != ("layer", "head", "pos"):
        lo, hi = np.asarray(summary.ci_low), np.asarray(summary.ci_high)
        p = np.asarray(summary.p_adjusted)
        if lo.ndim == 1:
            lo, hi, p = lo[:, None], hi[:, None], p[:, None]
        hover = [
            [
                f"95% CI [{lo[i, j]:+.3g}, {hi[i, j]:+.3g}], p ({summary.correction}) "
                f"{p[i, j]:.3g}, n={result.n}"
                for j in range(lo.shape[1])
            ]
            for i in range(lo.shape[0])
        ]
    if isinstance(result, PathPatchingResult):
        title = grid_title(result, component)
    else:
        kind = _kind(result)
        title = f"{result.direction} {component}: mean {kind} on {result.metric} (n={result.n})"
    return Heatmap(
        values=mean,
        row_labels=[f"L{i}" for i in range(mean.shape[0])],
        col_labels=cols,
        title=title,
        value_label=f"mean Δ {result.metric}",
        hover=hover,
        faded=None if sig is None else ~sig,
    )


def grid_heatmaps(
    result: GridResult,
    component: str | None = None,
    *,
    correction: SummaryCorrection = "holm",
    control: bool = False,
) -> list[Heatmap]:
    """Returns the interactive heatmap of ``component`` and, when the sweep ran a control, the
    control's beside it (``control`` is accepted for symmetry with `grid_figure`)."""
    del control
    comp = result.component(component)
    maps = [grid_heatmap(result, comp, _summary(result, comp, correction))]
    if result.control is not None:
        m = grid_heatmap(result.control, comp, _summary(result.control, comp, correction))
        maps.append(replace(m, title=f"control prompts (unrelated text): {m.title}"))
        # One colour scale for task and control, so equal colours mean equal effects.
        values = [np.abs(np.asarray(x.values, dtype=float)) for x in maps]
        finite = [v[np.isfinite(v)] for v in values]
        lim = max((float(v.max()) for v in finite if v.size), default=1.0)
        maps = [replace(x, limit=lim) for x in maps]
    return maps


renders(GridResult, heatmaps=grid_heatmaps, title=grid_title)(grid_figure)


def ablation_heatmaps(
    comparison: AblationComparison, component: str | None = None
) -> list[Heatmap]:
    """Returns one interactive heatmap per ablation method."""
    comp = component or comparison.components[0]
    maps = []
    for method, r in comparison.results.items():
        m = grid_heatmap(r, comp, _summary(r, comp, "holm"))
        maps.append(replace(m, title=f"{method} ablation: {m.title}"))
    return maps


def _ablation_title(comparison: AblationComparison) -> str:
    return f"ablation methods side by side: {comparison.components[0]}"


@renders(AblationComparison, heatmaps=ablation_heatmaps, title=_ablation_title)
def ablation_figure(comparison: AblationComparison, component: str | None = None) -> Figure:
    """Returns the methods' heatmaps side by side on one colour scale."""
    comp = component or comparison.components[0]
    return side_by_side_figure(
        {f"{m} ablation": r for m, r in comparison.results.items()}, comp, "ablation methods"
    )


@renders(Comparison)
def comparison_figure(comparison: Comparison, label: int = 8) -> Figure:
    """Returns estimate (y) against exact effect (x) per cell, y = x dashed, worst misses named."""
    x, y = comparison.activation, comparison.attribution
    fig = Figure(figsize=(5.2, 4.8))
    ax = fig.subplots()
    ax.scatter(x, y, s=10, alpha=0.6)
    lo = float(min(x.min(), y.min()))
    hi = float(max(x.max(), y.max()))
    ax.plot([lo, hi], [lo, hi], "--", color="grey", lw=0.8, label="estimate = exact")
    for miss in comparison.worst(label):
        ax.annotate(
            clean_token(miss.cell.label), (miss.exact, miss.estimate), fontsize=6, alpha=0.8
        )
    ax.set_xlabel("activation patching (exact effect)")
    ax.set_ylabel("attribution patching (estimate)")
    ax.set_title(
        f"{comparison.component}: Pearson {comparison.pearson:.2f}, Spearman "
        f"{comparison.spearman:.2f} ({comparison.n_cells} cells)",
        fontsize=9,
    )
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


__all__ = [
    "ablation_figure",
    "ablation_heatmaps",
    "comparison_figure",
    "control_figure",
    "grid_figure",
    "grid_heatmap",
    "grid_heatmaps",
    "grid_title",
    "side_by_side_figure",
]
