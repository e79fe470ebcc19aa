"""Figures of patching results: layer × position (or layer × head) heatmaps of mean effects, and
the attribution-versus-activation scatter.

Cells that do not survive the multiple-comparison correction are faded and hatched, so the eye
lands on effects the data supports, not on the largest colour.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")  # headless: figures are saved, never shown
import matplotlib.pyplot as plt
import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from interplab.stats import Summary
    from interplab.techniques._grid import GridResult
    from interplab.techniques.attribution import Comparison


def _clean(token: str) -> str:
    return token.replace("\n", "\\n").replace("$", r"\$")


def grid_figure(result: GridResult, component: str, summary: Summary | None) -> Figure:
    """Returns the heatmap of ``component``'s mean effect over examples (for per-head,
    per-position grids the picture sums positions; the result keeps them)."""
    mean = result.effect(component).mean(0)
    axes = result.axes(component)[1:]
    sig = None if summary is None else np.asarray(summary.significant)
    if axes == ("layer", "head", "pos"):
        mean = mean.sum(-1)
        sig = None if sig is None else sig.any(-1)
        xlabel, xticks = "head", [str(h) for h in range(mean.shape[1])]
    elif axes == ("layer", "pos"):
        xlabel = "position (clean token)"
        xticks = [f"{_clean(t)} ({i})" for i, t in enumerate(result.tokens[0][: mean.shape[1]])]
    elif axes == ("layer", "head"):
        xlabel, xticks = "head", [str(h) for h in range(mean.shape[1])]
    else:  # ("layer",): one column
        mean, sig = mean[:, None], None if sig is None else sig[:, None]
        xlabel, xticks = "all positions", ["all"]
    n_layers, width = mean.shape
    lim = float(np.nanmax(np.abs(mean))) or 1.0
    fig, ax = plt.subplots(figsize=(2.0 + 0.55 * width, 1.2 + 0.22 * n_layers))
    im = ax.imshow(mean, aspect="auto", cmap="RdBu", vmin=-lim, vmax=lim, origin="lower")
    if sig is not None:
        for li, ci in zip(*np.nonzero(~sig), strict=True):
            ax.add_patch(
                plt.Rectangle(
                    (ci - 0.5, li - 0.5),
                    1,
                    1,
                    facecolor=(1, 1, 1, 0.55),
                    hatch="///",
                    edgecolor=(0.6, 0.6, 0.6, 0.6),
                    linewidth=0,
                )
            )
    ax.set_xticks(
        range(width),
        xticks,
        rotation=60 if xlabel.startswith("position") else 0,
        ha="right" if xlabel.startswith("position") else "center",
        fontsize=7,
    )
    ax.set_yticks(range(n_layers), [str(i) for i in range(n_layers)], fontsize=6)
    ax.set_xlabel(xlabel)
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
