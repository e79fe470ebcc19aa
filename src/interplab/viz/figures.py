"""Drawing helpers the figure modules share: token labels, hatching, side-by-side heatmaps.

Each result type's figure lives in its own module (`viz.lens`, `viz.dla`, `viz.tracing`,
`viz.patching`, ...), registered with `interplab.viz.render.renders`. Everything here uses
matplotlib's object API (``Figure()``, never ``pyplot``), so importing it selects no backend and
notebooks keep their inline figures.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

if TYPE_CHECKING:
    from interplab.viz.interactive import Heatmap


def clean_token(token: str) -> str:
    """Returns a token as a figure label: newlines visible, ``$`` not read as mathtext."""
    return token.replace("\n", "\\n").replace("$", r"\$")


def hatch(ax: Any, cells: np.ndarray) -> None:
    """Fades and hatches the ``[row, col]`` cells marked True (those that do not survive
    correction), so the eye lands on effects the data supports."""
    for li, ci in zip(*np.nonzero(cells), strict=True):
        ax.add_patch(
            Rectangle(
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
    n_rows = len(maps[0].row_labels)
    fig = Figure(figsize=(len(maps) * (1.6 + 0.5 * width), 1.6 + 0.2 * n_rows))
    axes = fig.subplots(1, len(maps), squeeze=False)
    for ax, m in zip(axes[0], maps, strict=True):
        lim = float(np.nanmax(np.abs(m.values))) or 1.0
        im = ax.imshow(m.values, aspect="auto", cmap="RdBu", vmin=-lim, vmax=lim, origin="lower")
        if m.faded is not None:
            hatch(ax, np.asarray(m.faded, dtype=bool))
        ax.set_xticks(
            range(width),
            [clean_token(t) for t in m.col_labels],
            rotation=60,
            ha="right",
            fontsize=7,
        )
        ax.set_yticks(range(n_rows), m.row_labels, fontsize=6)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("layer")
        ax.set_title(m.title, fontsize=9)
        fig.colorbar(im, ax=ax, fraction=0.04, label=m.value_label)
    hatched = "; hatched: not significant after correction" if maps[0].faded is not None else ""
    fig.suptitle(title + hatched, fontsize=9)
    fig.tight_layout()
    return fig


def save(fig: Any, path: str | Path) -> Path:
    """Saves a figure as PNG (150 dpi). For results use `interplab.viz.save`, which also writes
    the interactive page; this stays for callers that draw figures of their own."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(p, dpi=150, bbox_inches="tight")
    _release(fig)
    return p


def figure_to_png_bytes(fig: Any) -> bytes:
    """Returns a figure's PNG bytes (120 dpi), for embedding in self-contained HTML."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    _release(fig)
    return buf.getvalue()


def _release(fig: Any) -> None:
    """Closes ``fig`` if pyplot manages it (a caller drew it with pyplot); never imports pyplot."""
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None:
        pyplot.close(fig)


__all__ = ["clean_token", "figure_to_png_bytes", "hatch", "heatmaps_figure", "save"]
