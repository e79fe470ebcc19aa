"""The example notebook runs top to bottom (nbclient, a fresh kernel) and shows a result inline
through ``_repr_html_``; it loads the embedded model, hence slow."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_example_notebook_runs_and_shows_a_result_inline(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat", reason="nbformat is in the dev extra")
    nbclient = pytest.importorskip("nbclient", reason="nbclient is in the dev extra")
    pytest.importorskip("ipykernel", reason="ipykernel is in the dev extra")
    monkeypatch.setenv("INTERPLAB_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    nb = nbformat.read(ROOT / "examples" / "dashboard.ipynb", as_version=4)
    nbclient.NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    inline = [o["data"]["text/html"] for o in outputs if "text/html" in o.get("data", {})]
    # (a first run also shows the model's conversion progress as HTML: look past it)
    results = [h for h in inline if "class='cell" in h]
    assert results and "<img" in results[0]
    text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    assert "heatmap cells with hover text" in text and "recorded as run 1 done" in text
    assert "200 run page: True True" in text
