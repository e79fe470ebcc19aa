"""Choosing a figure by result type: the one place that maps a result class to its drawings.

Each viz module registers a `Renderer` for the result classes it draws (``@renders(DLAResult)``).
`figure`, `save` and `html` look the renderer up by the result's type (its class, then its
bases), so the report, the store and a dashboard draw a result read back from JSON exactly as
they draw the live one. Figures are built with matplotlib's object API (``Figure()``, never
``pyplot``), so importing viz selects no backend and notebooks keep their inline figures.
"""

from __future__ import annotations

import base64
import html as html_lib
import importlib
import io
import pkgutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from interplab.errors import UserError
from interplab.provenance import write_text
from interplab.results.base import Result

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from interplab.viz.interactive import Heatmap

PLOT_SUFFIXES = (".png", ".svg", ".pdf")
"""The figure formats `save` writes (matplotlib's); an interactive ``.html`` page goes beside."""


class VizError(UserError):
    """A result no renderer draws, or a figure path with a format we do not write."""


@dataclass(frozen=True)
class Renderer:
    """How to draw one result type: a static figure and, for grids, interactive heatmaps."""

    figure: Callable[..., Figure]
    heatmaps: Callable[..., Sequence[Heatmap]] | None = None
    title: Callable[[Any], str] | None = None
    text: Callable[[Any], str] | None = None  # the summary under the figure (default: summary())


_RENDERERS: dict[type, Renderer] = {}


def renders(
    *types: type,
    heatmaps: Callable[..., Sequence[Heatmap]] | None = None,
    title: Callable[[Any], str] | None = None,
    text: Callable[[Any], str] | None = None,
) -> Callable[[Callable[..., Figure]], Callable[..., Figure]]:
    """Registers the decorated figure function (and optional heatmaps, title and summary text)
    for these result types."""

    def register(fn: Callable[..., Figure]) -> Callable[..., Figure]:
        for t in types:
            _RENDERERS[t] = Renderer(fn, heatmaps, title, text)
        return fn

    return register


def renderer(result: Any) -> Renderer:
    """Returns the renderer registered for ``result``'s type (or its nearest base)."""
    _import_renderers()
    for t in type(result).__mro__:
        if t in _RENDERERS:
            return _RENDERERS[t]
    known = sorted(t.__name__ for t in _RENDERERS)
    raise VizError(f"no figure for a {type(result).__name__}; viz draws: {', '.join(known)}")


def figure(result: Any, **options: Any) -> Figure:
    """Returns the matplotlib Figure for ``result`` (options go to its figure function)."""
    return renderer(result).figure(result, **options)


def heatmaps(result: Any, **options: Any) -> list[Heatmap]:
    """Returns the interactive heatmaps of a grid result (empty for results without a grid)."""
    r = renderer(result)
    return [] if r.heatmaps is None else list(r.heatmaps(result, **options))


def check_plot_path(path: str | Path) -> Path:
    """Returns the figure path, with ``.png`` added when it has no suffix; raises VizError for a
    format we do not write or a folder we cannot write into (checked before any compute)."""
    p = Path(path)
    if not p.suffix:
        p = p.with_suffix(".png")
    if p.suffix.lower() not in PLOT_SUFFIXES:
        raise VizError(
            f"cannot write a figure as {p.suffix!r} ({p}); use one of: {', '.join(PLOT_SUFFIXES)}"
        )
    return p


def save(result: Any, path: str | Path, **options: Any) -> list[Path]:
    """Writes the figure of ``result`` at ``path`` (PNG unless the suffix says SVG or PDF) and,
    for grid results, the interactive page beside it (same name, ``.html``); returns the paths."""
    p = check_plot_path(path)
    r = renderer(result)
    fig = r.figure(result, **options)
    p.parent.mkdir(parents=True, exist_ok=True)
    written = [_save_figure(fig, p)]
    if r.heatmaps is not None:
        from interplab.viz.interactive import page

        maps = list(r.heatmaps(result, **options))
        if maps:
            written.append(write_text(p.with_suffix(".html"), page(maps, _title(r, result))))
    return written


def _save_figure(fig: Figure, path: Path) -> Path:
    """Writes a figure atomically (temp file + rename)."""
    tmp = path.with_name(f".{path.name}.tmp{path.suffix}")
    try:
        fig.savefig(tmp, dpi=150, bbox_inches="tight", format=path.suffix[1:].lower())
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    path.chmod(0o644)
    return path


def png_bytes(fig: Figure) -> bytes:
    """Returns the figure as PNG bytes (150 dpi), for inlining in a page."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=150, bbox_inches="tight")
    return buf.getvalue()


def html(result: Any, **options: Any) -> str:
    """Returns an HTML fragment for ``result``: its figure inline, its summary, and, for grid
    results, the interactive heatmaps (what a notebook shows for ``_repr_html_``)."""
    r = renderer(result)
    img = base64.b64encode(png_bytes(r.figure(result, **options))).decode()
    parts = [f"<div class='interplab-result'><h3>{html_lib.escape(_title(r, result))}</h3>"]
    parts.append(f"<img style='max-width:100%' src='data:image/png;base64,{img}'>")
    summary = r.text(result) if r.text is not None else _summary_text(result)
    if summary:
        parts.append(f"<pre>{html_lib.escape(summary)}</pre>")
    if r.heatmaps is not None:
        from interplab.viz.interactive import fragment

        maps = list(r.heatmaps(result, **options))
        if maps:
            parts.append(fragment(maps))
    parts.append("</div>")
    return "".join(parts)


def _title(r: Renderer, result: Any) -> str:
    if r.title is not None:
        return r.title(result)
    return str(getattr(result, "technique", "") or type(result).__name__).replace("_", " ")


def _summary_text(result: Any) -> str:
    if not isinstance(result, Result):
        return ""
    try:
        return result.summary().describe()
    except ValueError:  # a summary the data cannot support (a UserError) is left out
        return ""


def _import_renderers() -> None:
    """Imports every viz module once, so each registers the result types it draws."""
    package = importlib.import_module("interplab.viz")
    for info in pkgutil.iter_modules(package.__path__):
        if info.name not in ("render",):
            importlib.import_module(f"interplab.viz.{info.name}")


__all__ = [
    "PLOT_SUFFIXES",
    "Renderer",
    "VizError",
    "check_plot_path",
    "figure",
    "heatmaps",
    "html",
    "png_bytes",
    "renderer",
    "renders",
    "save",
]
