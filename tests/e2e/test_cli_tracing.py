"""``interplab trace`` driven as a user would: factual prompts, JSON, PNG + HTML, Ctrl-C."""

import json

import pytest
from test_cli import interrupt_after, run

from interplab.results.tracing import TracingResult


def test_trace_prints_cells_with_intervals_and_writes_json_png_and_html(tmp_path):
    out = run(
        "trace",
        "--n",
        "3",
        "--samples",
        "2",
        "--window",
        "6",
        "--budget-mb",
        "64",
        "--json",
        str(tmp_path / "t.json"),
        "--plot",
        str(tmp_path / "t.png"),
    )
    assert out.returncode == 0, out.stderr
    assert "strongest resid cells" in out.stdout and "95% CI" in out.stdout
    assert ".resid_post @ " in out.stdout and "at cell (" not in out.stdout
    data = json.loads((tmp_path / "t.json").read_text())
    assert data["technique"] == "causal_tracing"
    assert data["provenance"]["model"]["name"] == "smollm2-135m"
    assert data["provenance"]["config"]["window"] == 6
    assert data["effects"]["mlp"]["shape"][:2] == [3, 30]
    traced = TracingResult.from_json(tmp_path / "t.json")
    assert traced.corrupted_samples.shape == (3, 2)
    assert traced.clean.sum() > traced.corrupted.sum()
    assert (tmp_path / "t.png").read_bytes()[:4] == b"\x89PNG"
    assert "<svg" in (tmp_path / "t.html").read_text()


def test_trace_of_one_prompt_names_the_strongest_cell(tmp_path):
    out = run(
        "trace",
        "--prompt",
        "The capital of Italy is",
        "--subject",
        "Italy",
        "--samples",
        "1",
        "--window",
        "4",
    )
    assert out.returncode == 0, out.stderr
    assert "answer ' Rome'" in out.stdout
    assert "resid: strongest cell L" in out.stdout and ".resid_post @ " in out.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--n", "0"], "--n must be at least 1"),
        (["--window", "0"], "window"),
        (["--plot", "t.gif"], "cannot write a figure as '.gif'"),
        (["--prompt", "The capital of Italy is"], "--prompt needs --subject"),
    ],
)
def test_trace_rejects_bad_options_before_loading_the_model(args, message):
    out = run("trace", *args, "--model", "no-such-model")
    assert out.returncode == 2 and message in out.stderr, out.stderr
    assert "Traceback" not in out.stderr


def test_ctrl_c_during_a_trace_keeps_the_previous_result_file(tmp_path):
    interrupt_after("tracing", "trace", "--n", "8", target=tmp_path / "t.json")
