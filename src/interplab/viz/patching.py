"""Figures of patching results: layer × position (or layer × head) heatmaps of mean effects, and
the attribution-versus-activation scatter.

Cells that do not survive the multiple-comparison correction are faded and hatched, so the eye
lands on effects the data supports, not on the largest colour.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import matplotlib

matplotlib.use("Agg")  # headless: figures are saved, never shown
import matplotlib.pyplot as plt
import numpy as np

from interplab.viz.figures import hatch

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from interplab.stats import Summary
    from interplab.techniques._grid import GridResult
    from interplab.techniques.attribution import Comparison
    from interplab.viz.interactive import Heatmap


def _clean(token: str) -> str:
    return token.replace("\n", "\\n").replace("$", r"\$")


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
        [_clean(t) for t in xticks],
        rotation=60 if rotate else 0,
        ha="right" if rotate else "center",
        fontsize=7,
    )
    ax.set_yticks(range(mean.shape[0]), [str(i) for i in range(mean.shape[0])], fontsize=6)
    ax.set_xlabel(xlabel)
    return im


def grid_figure(result: GridResult, component: str, summary: Summary | None) -> Figure:
    """Returns the heatmap of ``component``'s mean effect over examples; cells that do not survive
    the correction are hatched."""
    mean, sig, xlabel, xticks = _grid(result, component, summary)
    n_layers, width = mean.shape
    lim = float(np.nanmax(np.abs(mean))) or 1.0
    fig, ax = plt.subplots(figsize=(2.0 + 0.55 * width, 1.2 + 0.22 * n_layers))
    im = _draw(ax, mean, sig, xlabel, xticks, lim)
    ax.set_ylabel(f"layer ({component})")
    kind = (
        "estimated effect (attribution)" if result.technique == "attribution_patching" else "effect"
    )
    hatch = "" if summary is None else f"; hatched: not significant after {summary.correction}"
    ax.set_title(
        f"{result.direction} {component}: mean {kind} on {result.metric} (n={result.n}){hatch}",
        fontsize=8,
    )
    fig.colorbar(im, ax=ax, fraction=0.03, label=f"Δ {result.metric}")
    fig.tight_layout()
    return fig


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
        mean, sig, xlabel, xticks = _grid(r, component, r.summary(component) if r.n >= 2 else None)
        drawn[name] = (mean / (scale or {}).get(name, 1.0), sig, xlabel, xticks, r)
    lim = max(float(np.nanmax(np.abs(d[0]))) for d in drawn.values()) or 1.0
    n_layers, width = next(iter(drawn.values()))[0].shape
    fig, axes = plt.subplots(
        1,
        len(drawn),
        figsize=(len(drawn) * (1.6 + 0.5 * width), 1.6 + 0.22 * n_layers),
        squeeze=False,
    )
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
    from interplab.viz.interactive import Heatmap

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
    kind = "estimated effect" if result.technique == "attribution_patching" else "effect"
    return Heatmap(
        values=mean,
        row_labels=[f"L{i}" for i in range(mean.shape[0])],
        col_labels=cols,
        title=f"{result.direction} {component}: mean {kind} on {result.metric} (n={result.n})",
        value_label=f"mean Δ {result.metric}",
        hover=hover,
        faded=None if sig is None else ~sig,
    )


def comparison_figure(comparison: Comparison, label: int = 8) -> Figure:
    """Returns estimate (y) against exact effect (x) per cell, y = x dashed, worst misses named."""
    x, y = comparison.activation, comparison.attribution
    fig, ax = plt.subplots(figsize=(5.2, 4.8))
    ax.scatter(x, y, s=10, alpha=0.6)
    lo = float(min(x.min(), y.min()))
    hi = float(max(x.max(), y.max()))
    ax.plot([lo, hi], [lo, hi], "--", color="grey", lw=0.8, label="estimate = exact")
    for name, est, exact in comparison.worst(label):
        ax.annotate(_clean(name), (exact, est), fontsize=6, alpha=0.8)
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
