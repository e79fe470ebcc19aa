"""Figures and pages drawn from results: `figure`, `save` and `html` choose the drawing by type.

    from interplab import viz
    viz.figure(result)                 # a matplotlib Figure
    viz.save(result, "patch.png")      # patch.png and, for grids, the interactive patch.html
    viz.html(result)                   # what a notebook shows

viz reads results (plain data) and never imports techniques, core or torch.
"""

from interplab.viz.render import (
    PLOT_SUFFIXES,
    VizError,
    check_plot_path,
    figure,
    heatmaps,
    html,
    png_bytes,
    renders,
    save,
)

__all__ = [
    "PLOT_SUFFIXES",
    "VizError",
    "check_plot_path",
    "figure",
    "heatmaps",
    "html",
    "png_bytes",
    "renders",
    "save",
]
