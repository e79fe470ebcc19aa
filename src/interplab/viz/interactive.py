"""Interactive figures: self-contained HTML heatmaps that name every cell on hover.

A PNG shows the pattern; a sweep of 420 cells also needs "what exactly is this cell?". The page
written here is one HTML file with an inline SVG per heatmap and a few lines of JavaScript: hover
(or tap) a cell to read its row, column, value and the extra text the result supplies (its CI and
adjusted p-value); a checkbox hides the cells that do not survive correction. Nothing is fetched
from the network, so the file opens offline and can be attached to a write-up.

Colours follow the PNGs: a diverging map is red below zero, white at zero, blue above, symmetric
around zero; a sequential map runs white to blue.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    pass

_CELL_W, _CELL_H = 34, 14
_LEFT, _TOP, _BOTTOM = 70, 30, 110


@dataclass(frozen=True)
class Heatmap:
    """One grid of values with its labels; row 0 is drawn at the bottom (layer 0 low)."""

    values: np.ndarray  # [rows, cols]
    row_labels: list[str]
    col_labels: list[str]
    title: str
    value_label: str
    hover: list[list[str]] | None = None  # extra text per cell
    faded: np.ndarray | None = None  # bool [rows, cols]: does not survive correction
    diverging: bool = True
    limit: float | None = None  # the colour scale's end (None: this map's largest |value|)

    def __post_init__(self) -> None:
        v = np.asarray(self.values)
        if v.ndim != 2:
            raise ValueError(f"a heatmap needs a [rows, cols] array, got shape {v.shape}")
        rows, cols = v.shape
        if len(self.row_labels) != rows or len(self.col_labels) != cols:
            raise ValueError(
                f"labels must match the {rows} x {cols} values, got {len(self.row_labels)} row "
                f"and {len(self.col_labels)} column labels"
            )
        if self.hover is not None and (
            len(self.hover) != rows or any(len(r) != cols for r in self.hover)
        ):
            raise ValueError(f"hover text must be {rows} x {cols}, one string per cell")
        if self.faded is not None and np.asarray(self.faded).shape != v.shape:
            raise ValueError(f"faded must be a bool array of shape {v.shape}")


def _colour(value: float, lim: float, diverging: bool) -> str:
    if not np.isfinite(value):
        return "#dddddd"
    if diverging:
        t = max(-1.0, min(1.0, value / lim))
        target = (33, 102, 172) if t > 0 else (178, 24, 43)
        t = abs(t)
    else:
        t = max(0.0, min(1.0, value / lim))
        target = (33, 102, 172)
    r, g, b = (round(255 + (c - 255) * t) for c in target)
    return f"#{r:02x}{g:02x}{b:02x}"


def _svg(m: Heatmap, index: int) -> str:
    v = np.asarray(m.values, dtype=float)
    rows, cols = v.shape
    finite = np.abs(v[np.isfinite(v)]) if m.diverging else v[np.isfinite(v)]
    lim = float(finite.max()) if finite.size and float(finite.max()) > 0 else 1.0
    if m.limit is not None and m.limit > 0:
        lim = float(m.limit)
    faded = np.zeros_like(v, dtype=bool) if m.faded is None else np.asarray(m.faded, dtype=bool)
    scale = f"colour scale: ±{lim:.3g}" if m.diverging else f"colour scale: 0 to {lim:.3g}"
    legend = (
        f"{m.value_label} ({scale}; red < 0 < blue)"
        if m.diverging
        else f"{m.value_label} ({scale})"
    )
    width = max(_LEFT + cols * _CELL_W + 20, _LEFT + 6 * len(legend) + 10)  # ~6 px a character
    height = _TOP + rows * _CELL_H + _BOTTOM
    out = [
        f"<svg class='hm' id='hm{index}' width='{width}' height='{height}' "
        f"xmlns='http://www.w3.org/2000/svg' font-family='sans-serif' font-size='10'>"
    ]
    for r in range(rows):
        y = _TOP + (rows - 1 - r) * _CELL_H
        out.append(
            f"<text x='{_LEFT - 4}' y='{y + _CELL_H - 3}' text-anchor='end'>"
            f"{html.escape(m.row_labels[r])}</text>"
        )
        for c in range(cols):
            x = _LEFT + c * _CELL_W
            extra = m.hover[r][c] if m.hover is not None else ""
            info = (
                f"{m.row_labels[r]} × {m.col_labels[c]}: {m.value_label} = {v[r, c]:+.4g}"
                + (f"; {extra}" if extra else "")
                + ("; not significant after correction" if faded[r, c] else "")
            )
            cls = "cell faded" if faded[r, c] else "cell"
            out.append(
                f"<rect class='{cls}' x='{x}' y='{y}' width='{_CELL_W}' height='{_CELL_H}' "
                f"fill='{_colour(v[r, c], lim, m.diverging)}' data-info='{html.escape(info)}'>"
                f"<title>{html.escape(info)}</title></rect>"
            )
    base = _TOP + rows * _CELL_H + 4
    for c in range(cols):
        x = _LEFT + c * _CELL_W + _CELL_W / 2
        out.append(
            f"<text x='{x}' y='{base}' transform='rotate(60 {x} {base})' text-anchor='start'>"
            f"{html.escape(m.col_labels[c][:18])}</text>"
        )
    out.append(f"<text x='{_LEFT}' y='{_TOP - 10}'>{html.escape(legend)}</text>")
    out.append("</svg>")
    return "".join(out)


_SCRIPT = """
document.querySelectorAll('.cell').forEach(function (el) {
  var show = function () { document.getElementById('info').textContent = el.dataset.info; };
  el.addEventListener('mouseenter', show); el.addEventListener('click', show);
});
document.getElementById('hide').addEventListener('change', function (e) {
  document.body.classList.toggle('hide-faded', e.target.checked);
});
"""

_CSS = """
body { font-family: sans-serif; margin: 1.5em; color: #222; }
#info { position: sticky; top: 0; background: #f6f6f6; padding: .5em; min-height: 1.2em;
        border: 1px solid #ddd; font-family: monospace; }
.cell:hover { stroke: #000; stroke-width: 1.5; }
.faded { opacity: .35; }
.hide-faded .faded { opacity: .05; }
"""


def page(maps: Heatmap | Sequence[Heatmap], title: str) -> str:
    """Returns a self-contained HTML page with one interactive heatmap per map."""
    items = [maps] if isinstance(maps, Heatmap) else list(maps)
    if not items:
        raise ValueError("no heatmaps to draw")
    body = []
    for i, m in enumerate(items):
        body.append(f"<h2>{html.escape(m.title)}</h2>{_svg(m, i)}")
    any_faded = any(m.faded is not None for m in items)
    toggle = (
        "<label><input type='checkbox' id='hide'> hide cells that do not survive correction</label>"
        if any_faded
        else "<input type='checkbox' id='hide' hidden>"
    )
    data = json.dumps({"title": title, "maps": [m.title for m in items]})
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>{toggle}"
        "<div id='info'>hover or tap a cell</div>" + "".join(body) + f"<script>{_SCRIPT}</script>"
        f"<script type='application/json' id='meta'>{html.escape(data)}</script></body></html>"
    )


def fragment(maps: Sequence[Heatmap]) -> str:
    """Returns the heatmaps as an HTML fragment (SVG with hover text in each cell's title), for
    a notebook cell or a page that already has its own scripts."""
    parts = []
    for i, m in enumerate(maps):
        svg = _svg(m, 1000 + i)
        parts.append(f"<h4>{html.escape(m.title)}</h4>{svg}")
    return "<div class='interplab-heatmaps'>" + "".join(parts) + "</div>"


__all__ = ["Heatmap", "fragment", "page"]
