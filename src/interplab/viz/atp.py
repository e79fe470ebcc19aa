"""Figures of AtP* and verified patching.

- `AtPResult`: three heatmaps per component on one colour scale: the AtP* estimate (QK fix),
  plain attribution patching, and the GradDrop score (a magnitude) the ranking uses.
- `VerifiedPatchingResult`: one heatmap of mean effects where the cells patched exactly are
  outlined (solid black: verified, top of the ranking; dashed: the random sample) and the cells
  only estimated are faded and hatched; the title states the bound on what they could hide.

Per-head grids per position are drawn summed over positions (a head counts as exact when all its
positions are); neuron grids as layer × neuron without tick labels.

    viz.figure(result)                       # first component
    viz.figure(result, component="attn.k")
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from interplab.results.patching import GridResult
from interplab.results.patching_verified import (
    ESTIMATED,
    SAMPLED,
    VERIFIED,
    AtPResult,
    VerifiedPatchingResult,
)
from interplab.viz.figures import clean_token, hatch
from interplab.viz.interactive import Heatmap
from interplab.viz.render import renders


def _layout(
    result: GridResult, component: str, cells: np.ndarray
) -> tuple[np.ndarray, str, list[str]]:
    """Returns ``cells`` ``[layer, ...]`` as ``[layer, column]``, the column axis and labels."""
    axes = result.axes(component)[1:]
    if len(axes) == 3:  # layer, head|kv_head|neuron, pos
        return cells.sum(-1), f"{axes[1]} (summed over positions)", _labels(axes[1], cells.shape[1])
    if axes == ("layer", "pos"):
        toks = result.tokens[0][: cells.shape[1]]
        return cells, "position (clean token)", [f"{i} {t}" for i, t in enumerate(toks)]
    if len(axes) == 2:
        return cells, axes[1], _labels(axes[1], cells.shape[1])
    return cells[:, None], "all positions", ["all"]


def _labels(axis: str, count: int) -> list[str]:
    prefix = {"head": "h", "kv_head": "kv", "neuron": "n"}.get(axis, "")
    return [f"{prefix}{i}" for i in range(count)]


def _draw(
    ax: Any, values: np.ndarray, xlabel: str, xticks: list[str], lim: float, cmap: str
) -> Any:
    vmin = -lim if cmap == "RdBu" else 0.0
    im = ax.imshow(values, aspect="auto", cmap=cmap, vmin=vmin, vmax=lim, origin="lower")
    if len(xticks) <= 40:
        rotate = xlabel.startswith("position")
        ax.set_xticks(
            range(values.shape[1]),
            [clean_token(t) for t in xticks],
            rotation=60 if rotate else 0,
            ha="right" if rotate else "center",
            fontsize=7,
        )
    ax.set_yticks(range(values.shape[0]), [str(i) for i in range(values.shape[0])], fontsize=6)
    ax.set_xlabel(xlabel)
    return im


def atp_title(result: AtPResult, component: str | None = None) -> str:
    comps = ", ".join(result.components) if component is None else result.component(component)
    fixes = [f for f, on in (("QK fix", result.qk_fix), ("GradDrop", result.graddrop)) if on]
    return f"AtP* ({' + '.join(fixes) or 'no fixes'}): {result.direction} {comps} on {result.metric} (n={result.n})"


def atp_figure(result: AtPResult, component: str | None = None) -> Figure:
    """Returns AtP*, plain AtP and the GradDrop score of ``component`` side by side."""
    comp = result.component(component)
    panels = [
        ("AtP* estimate", result.effect(comp).mean(0), "RdBu"),
        ("plain AtP", result.plain[comp].mean(0), "RdBu"),
        ("GradDrop score (ranking)", result.score(comp).mean(0), "Greys"),
    ]
    drawn = [(name, *_layout(result, comp, v), cmap) for name, v, cmap in panels]
    n_layers, width = drawn[0][1].shape
    lim = max(float(np.nanmax(np.abs(v))) for _, v, *_ in drawn[:2]) or 1.0
    fig = Figure(figsize=(3 * (1.6 + 0.3 * min(width, 20)), 1.4 + 0.2 * n_layers))
    axes = fig.subplots(1, 3, squeeze=False)[0]
    for ax, (name, values, xlabel, xticks, cmap) in zip(axes, drawn, strict=True):
        own = float(np.nanmax(np.abs(values))) or 1.0
        im = _draw(ax, values, xlabel, xticks, lim if cmap == "RdBu" else own, cmap)
        ax.set_title(name, fontsize=8)
        fig.colorbar(im, ax=ax, fraction=0.04)
    axes[0].set_ylabel(f"layer ({comp})")
    fig.suptitle(atp_title(result, comp), fontsize=9)
    fig.tight_layout()
    return fig


def atp_heatmaps(result: AtPResult, component: str | None = None) -> list[Heatmap]:
    """Returns the interactive AtP* and plain AtP heatmaps of ``component`` on one scale."""
    comp = result.component(component)
    maps = []
    for name, values in (("AtP*", result.effect(comp)), ("plain AtP", result.plain[comp])):
        v, _, cols = _layout(result, comp, values.mean(0))
        maps.append(
            Heatmap(
                values=v,
                row_labels=[f"L{i}" for i in range(v.shape[0])],
                col_labels=cols,
                title=f"{name}: {result.direction} {comp} on {result.metric} (n={result.n})",
                value_label=f"mean estimated Δ {result.metric}",
            )
        )
    lim = max(float(np.nanmax(np.abs(m.values))) for m in maps) or 1.0
    return [replace(m, limit=lim) for m in maps]


def _status(result: VerifiedPatchingResult, comp: str) -> np.ndarray:
    """Returns each drawn cell's status: verified or sampled only when all its positions are."""
    status = result.status[comp].astype(np.int64)
    if len(result.axes(comp)) == 4:
        status = status.min(-1)
    return status if status.ndim == 2 else status[:, None]


def verified_title(result: VerifiedPatchingResult, component: str | None = None) -> str:
    comps = ", ".join(result.components) if component is None else result.component(component)
    return (
        f"verified patching: {result.direction} {comps} on {result.metric} (n={result.n}); "
        f"{result.n_exact}/{result.n_cells} cells exact"
    )


def verified_figure(result: VerifiedPatchingResult, component: str | None = None) -> Figure:
    """Returns the mean effects with exact cells outlined and estimated cells hatched."""
    comp = result.component(component)
    values, xlabel, xticks = _layout(result, comp, result.effect(comp).mean(0))
    status = _status(result, comp)
    n_layers, width = values.shape
    lim = float(np.nanmax(np.abs(values))) or 1.0
    fig = Figure(figsize=(2.4 + 0.55 * min(width, 40), 1.6 + 0.22 * n_layers))
    ax = fig.subplots()
    im = _draw(ax, values, xlabel, xticks, lim, "RdBu")
    hatch(ax, status == ESTIMATED)
    for code, style in ((VERIFIED, "-"), (SAMPLED, "--")):
        for li, ci in zip(*np.nonzero(status == code), strict=True):
            ax.add_patch(
                Rectangle(
                    (ci - 0.45, li - 0.45), 0.9, 0.9, fill=False, edgecolor="black",
                    linewidth=1.0, linestyle=style,
                )
            )  # fmt: skip
    ax.set_ylabel(f"layer ({comp})")
    bound = (
        "nothing estimated"
        if result.n_exact == result.n_cells
        else f"hatched cells estimated: |effect| ≤ {result.bound:.3g} ({result.confidence:.0%})"
    )
    ax.set_title(
        f"{verified_title(result, comp)}\nsolid: verified (top of AtP*), dashed: random sample; {bound}",
        fontsize=8,
    )
    fig.colorbar(im, ax=ax, fraction=0.03, label=f"Δ {result.metric}")
    fig.tight_layout()
    return fig


def verified_heatmaps(
    result: VerifiedPatchingResult, component: str | None = None
) -> list[Heatmap]:
    """Returns the interactive heatmap: estimated cells faded, each cell's status on hover."""
    comp = result.component(component)
    values, _, cols = _layout(result, comp, result.effect(comp).mean(0))
    status = _status(result, comp)
    names = {
        ESTIMATED: "AtP* estimate",
        SAMPLED: "exact (random sample)",
        VERIFIED: "exact (verified)",
    }
    hover = [[names[int(s)] for s in row] for row in status]
    return [
        Heatmap(
            values=values,
            row_labels=[f"L{i}" for i in range(values.shape[0])],
            col_labels=cols,
            title=verified_title(result, comp),
            value_label=f"mean Δ {result.metric}",
            hover=hover,
            faded=status == ESTIMATED,
        )
    ]


renders(AtPResult, heatmaps=atp_heatmaps, title=atp_title)(atp_figure)
renders(VerifiedPatchingResult, heatmaps=verified_heatmaps, title=verified_title)(verified_figure)

__all__ = ["atp_figure", "atp_heatmaps", "verified_figure", "verified_heatmaps"]
