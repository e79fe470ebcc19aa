"""Interactive heatmaps: every cell is in the page with its label, value and hover text; shapes
are checked; patching results write a PNG and an HTML page side by side."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from interplab import viz
from interplab.techniques.patching import TokenPairs, activation_patching
from interplab.viz.interactive import Heatmap, page

from helpers import tiny_model


def _map(**kw):
    base = dict(
        values=np.array([[1.0, -2.0, 0.0], [0.5, np.nan, 3.0]]),
        row_labels=["L0", "L1"],
        col_labels=["a", "b", "c"],
        title="grid",
        value_label="Δ metric",
    )
    return Heatmap(**{**base, **kw})


def test_page_has_one_cell_per_value_with_its_label_and_value():
    html = page(_map(hover=[["x0", "x1", "x2"], ["y0", "y1", "y2"]]), "title")
    cells = re.findall(
        r"<rect class='(cell[^']*)'[^>]*fill='([^']+)'[^>]*data-info='([^']*)'", html
    )
    assert len(cells) == 6
    infos = [c[2] for c in cells]
    assert any("L0 × b: Δ metric = -2" in i and "x1" in i for i in infos)
    fills = {c[2].split(":")[0]: c[1] for c in cells}
    assert fills["L1 × b"] == "#dddddd"  # NaN is grey, not a colour
    assert fills["L0 × c"] == "#ffffff"  # zero is white on a diverging map
    assert fills["L1 × c"] == "#2166ac"  # the largest |value| gets the full colour


def test_faded_cells_are_marked_and_the_page_offers_to_hide_them():
    faded = np.array([[True, False, False], [False, False, True]])
    html = page(_map(faded=faded), "t")
    assert html.count("class='cell faded'") == 2
    assert "hide cells that do not survive correction" in html


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        (dict(values=np.zeros(3)), r"\[rows, cols\]"),
        (dict(row_labels=["L0"]), "labels must match"),
        (dict(hover=[["x"]]), "hover text must be 2 x 3"),
        (dict(faded=np.zeros((3, 2), bool)), "faded must be"),
    ],
)
def test_bad_shapes_say_what_is_expected(kw, match):
    with pytest.raises(ValueError, match=match):
        _map(**kw)


def test_patching_result_saves_png_and_interactive_html(tmp_path):
    g = torch.Generator().manual_seed(0)
    clean = torch.randint(256, (4, 6), generator=g)
    corrupt = clean.clone()
    corrupt[:, 2] = torch.randint(256, (4,), generator=g)
    pairs = TokenPairs(clean, corrupt, torch.arange(1, 5), torch.arange(11, 15))
    result = activation_patching(tiny_model("llama"), pairs, progress=False)
    png, html = viz.save(result, tmp_path / "grid.png")
    assert png.read_bytes()[:4] == b"\x89PNG" and html.suffix == ".html"
    text = html.read_text()
    n_layers, length = result.effect().shape[1:]
    assert text.count("<rect class='cell") == 2 * n_layers * length  # task and its control
    assert "95% CI [" in text and "n=4" in text


def test_a_shared_limit_sets_the_colour_scale() -> None:
    import re

    from interplab.viz.interactive import Heatmap, page

    small = Heatmap(np.array([[0.5]]), ["L0"], ["p0"], "small", "v")
    alone = page([small], "t")
    shared = page([Heatmap(np.array([[0.5]]), ["L0"], ["p0"], "small", "v", limit=1.0)], "t")
    fill = re.compile(r"fill='(#[0-9a-f]{6})' data-info")
    assert fill.findall(alone) != fill.findall(shared)
