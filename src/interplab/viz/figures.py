"""Figures for result objects: each function takes a result and returns a matplotlib Figure.

Figures show uncertainty where the result has it (CI error bars over prompts) and label tokens
and layers with the same names the result uses.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib

matplotlib.use("Agg")  # headless: figures are saved, never shown
import matplotlib.pyplot as plt
import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from interplab.techniques.dla import DLAResult
    from interplab.techniques.lens import LensResult
    from interplab.viz.interactive import Heatmap


def save(fig: Figure, path: str | Path) -> Path:
    """Saves a figure as PNG (150 dpi) and closes it."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(p, dpi=150, bbox_inches="tight")
    plt.close(fig)
    return p


def _clean(token: str) -> str:
    return token.replace("\n", "\\n").replace("$", r"\$")


def lens_figure(result: LensResult, example: int = 0) -> Figure:
    """Returns a layer × position heatmap of one prompt: colour = the target's probability (or the
    top-1 probability without a target), text = the top-1 token."""
    length = int(result.lengths[example])
    tokens = [_clean(t) for t in result.tokens[example]]
    if result.target_id is not None:
        values = result.target_prob[example, :, :length]
        title = f"logit lens: p({result.target!r}) by layer and position"
    else:
        values = result.top_probs[example, :, :length, 0]
        title = "logit lens: top-1 probability by layer and position"
    n_layers = values.shape[0]
    fig, ax = plt.subplots(figsize=(1.0 + 0.85 * length, 1.0 + 0.28 * n_layers))
    im = ax.imshow(values, aspect="auto", cmap="Blues", vmin=0.0, vmax=1.0, origin="lower")
    for li in range(n_layers):
        for p in range(length):
            top = _clean(result.top_tokens[example][li][p][0])[:8]
            colour = "white" if values[li, p] > 0.6 else "black"
            ax.text(p, li, top, ha="center", va="center", fontsize=6, color=colour)
    ax.set_xticks(range(length), tokens, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(n_layers), result.layers, fontsize=6)
    ax.set_xlabel("position (input token)")
    ax.set_ylabel("layer (resid_post)")
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.03, label="probability")
    return fig


def _mean_ci(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from interplab.stats import summarize

    if values.shape[0] < 2:
        m = values.mean(0)
        return m, m, m
    s = summarize(values, null=0.0, n_resamples=2000, method="percentile", correction="none")
    return np.asarray(s.mean), np.asarray(s.ci_low), np.asarray(s.ci_high)


def dla_figure(result: DLAResult) -> Figure:
    """Returns two panels: per-layer attention and MLP contributions (mean, 95% CI over prompts),
    and the per-head grid of mean contributions."""
    same_t = len(set(result.target)) == 1
    t = repr(result.target[0]) if same_t else "target"
    b = (
        (repr(result.baseline[0]) if len(set(result.baseline)) == 1 else "baseline")
        if result.baseline
        else None
    )
    direction = f"logit({t})" + (f" − logit({b})" if b else "")
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4.2), gridspec_kw={"width_ratios": [1.4, 1]})
    n_layers = result.heads.shape[1]
    x = np.arange(n_layers)
    for kind, colour, shift in (("attn_out", "tab:blue", -0.2), ("mlp_out", "tab:orange", 0.2)):
        m, lo, hi = _mean_ci(result.by_layer(kind))
        ax1.bar(x + shift, m, width=0.4, color=colour, label=kind)
        ax1.errorbar(
            x + shift, m, yerr=[m - lo, hi - m], fmt="none", ecolor="black", lw=0.7, capsize=1.5
        )
    ax1.axhline(0, color="grey", lw=0.6)
    ax1.set_xlabel("layer")
    ax1.set_ylabel(f"direct contribution to {direction}")
    ax1.set_title(f"direct logit attribution (n={result.n} prompts, 95% CI)", fontsize=9)
    ax1.legend(fontsize=8)
    heads = result.heads.mean(0)
    lim = float(np.abs(heads).max()) or 1.0
    im = ax2.imshow(heads, aspect="auto", cmap="RdBu", vmin=-lim, vmax=lim, origin="lower")
    ax2.set_xlabel("head")
    ax2.set_ylabel("layer")
    ax2.set_title("per-head direct contribution (mean over prompts)", fontsize=9)
    fig.colorbar(im, ax=ax2, fraction=0.04)
    fig.tight_layout()
    return fig


def figure_to_png_bytes(fig: Any) -> bytes:
    """Returns a figure's PNG bytes (for embedding in self-contained HTML) and closes it."""
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def hatch(ax: Any, cells: np.ndarray) -> None:
    """Fades and hatches the ``[row, col]`` cells marked True (those that do not survive
    correction), so the eye lands on effects the data supports."""
    for li, ci in zip(*np.nonzero(cells), strict=True):
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


def heatmaps_figure(maps: Sequence[Heatmap], title: str, xlabel: str) -> Figure:
    """Returns the heatmaps side by side, each on its own symmetric scale (blue > 0 > red, as the
    other figures), with the cells that do not survive correction hatched."""
    width = len(maps[0].col_labels)
    n_layers = len(maps[0].row_labels)
    fig, axes = plt.subplots(
        1, len(maps), figsize=(len(maps) * (1.6 + 0.5 * width), 1.6 + 0.2 * n_layers), squeeze=False
    )
    for ax, m in zip(axes[0], maps, strict=True):
        lim = float(np.nanmax(np.abs(m.values))) or 1.0
        im = ax.imshow(m.values, aspect="auto", cmap="RdBu", vmin=-lim, vmax=lim, origin="lower")
        if m.faded is not None:
            hatch(ax, np.asarray(m.faded, dtype=bool))
        ax.set_xticks(
            range(width), [_clean(t) for t in m.col_labels], rotation=60, ha="right", fontsize=7
        )
        ax.set_yticks(range(n_layers), m.row_labels, fontsize=6)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("layer")
        ax.set_title(m.title, fontsize=9)
        fig.colorbar(im, ax=ax, fraction=0.04, label=m.value_label)
    hatched = "; hatched: not significant after correction" if maps[0].faded is not None else ""
    fig.suptitle(title + hatched, fontsize=9)
    fig.tight_layout()
    return fig
