"""The CLI as a user drives it: real processes, real model, exit codes, files written."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

CLI = [sys.executable, "-m", "interplab.cli"]


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "160"}
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=900
    )


def interrupt_after(marker: str, *args: str, target: Path) -> None:
    """Starts the CLI writing JSON to ``target`` (which holds a previous result), sends SIGINT 3 s
    after a stdout line containing ``marker``, and checks that the previous file is intact and no
    temp file is left."""
    import signal
    import time

    target.write_text('{"previous": true}')
    env = {**os.environ, "COLUMNS": "160"}
    proc = subprocess.Popen(
        [*CLI, *args, "--json", str(target)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        # A shell starts background jobs with SIGINT ignored, and Python keeps an ignored SIGINT
        # ignored; give the CLI the disposition a terminal user's Ctrl-C meets.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert proc.stdout is not None
    for line in proc.stdout:  # the sweep starts once its inputs are chosen
        if marker in line:
            break
    time.sleep(3)
    assert proc.poll() is None, "the command ended before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert json.loads(target.read_text()) == {"previous": True}
    assert [p.name for p in target.parent.iterdir()] == [target.name]  # no temp file left


def test_models_lists_the_embedded_model():
    out = run("models")
    assert out.returncode == 0, out.stderr
    assert "smollm2-135m" in out.stdout
    assert "Apache-2.0" in out.stdout


def test_lens_prints_a_table_and_writes_json_and_a_figure(tmp_path):
    out = run(
        "lens",
        "The Eiffel Tower is located in the city of",
        "--target",
        " Paris",
        "--json",
        str(tmp_path / "lens.json"),
        "--plot",
        str(tmp_path / "lens.png"),
    )
    assert out.returncode == 0, out.stderr
    assert "L29.resid_post" in out.stdout and "' Paris'" in out.stdout
    assert "top-1 token, per prompt: L2" in out.stdout  # a Site, never a row index
    from interplab.results.lens import LensResult

    lens = LensResult.from_json(tmp_path / "lens.json")
    assert lens.target == " Paris"
    assert lens.at_last(lens.target_rank)[0, -1] == 0
    assert (tmp_path / "lens.png").read_bytes()[:4] == b"\x89PNG"
    assert "<svg" in (tmp_path / "lens.html").read_text()  # the page --plot promises
    assert f"wrote {tmp_path / 'lens.html'}" in out.stdout.replace("\n", "")


def test_dla_attributes_the_ioi_prompt_toward_mary(tmp_path):
    out = run(
        "dla",
        "When Mary and John went to the store, John gave a drink to",
        "--target",
        " Mary",
        "--baseline",
        " John",
        "--json",
        str(tmp_path / "dla.json"),
        "--plot",
        str(tmp_path / "dla"),
    )
    assert out.returncode == 0, out.stderr
    assert "sum of parts" in out.stdout and "head L" in out.stdout and ".attn.z.h" in out.stdout
    data = json.loads((tmp_path / "dla.json").read_text())
    assert data["max_error"] < 1e-3
    from interplab.results.dla import DLAResult

    assert DLAResult.from_json(tmp_path / "dla.json").actual[0] > 2
    assert (tmp_path / "dla.png").read_bytes()[:4] == b"\x89PNG"  # no suffix: PNG
    assert "<svg" in (tmp_path / "dla.html").read_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["lens", "The capital of France is", "--target", " Eiffel"], "is 2 tokens"),
        (["lens", "hello", "--model", "no-such-model"], "Embedded models"),
        (["lens", ""], "empty"),
        (["dla", "hi there", "--target", " Mary", "--baseline", " Mary"], "same token"),
        (["lens", "hi", "--dtype", "float8"], "unknown dtype"),
        (["lens", "hi", "--k", "0"], "k must be > 0"),
        (["dla", "hi", "--target", " Mary", "--model", "no-such-model"], "Embedded models"),
    ],
)
def test_user_errors_exit_2_with_one_clear_line(args, message):
    out = run(*args)
    assert out.returncode == 2
    assert message in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize("command", [["lens", "hi"], ["dla", "hi", "--target", " Mary"]])
def test_lens_and_dla_check_output_paths_before_loading_the_model(tmp_path, command):
    blocker = tmp_path / "file"
    blocker.write_text("")
    for args, message in (
        (["--plot", str(tmp_path / "fig.gif")], "cannot write a figure as '.gif'"),
        (["--json", str(blocker / "r.json")], "is a file, not a folder"),
    ):
        out = run(*command, *args, "--model", "no-such-model")
        assert out.returncode == 2 and message in out.stderr, out.stderr
        assert "Traceback" not in out.stderr


def test_demo_writes_a_self_contained_report(tmp_path):
    out = run("demo", "--out", str(tmp_path / "demo"))
    assert out.returncode == 0, out.stderr
    html = (tmp_path / "demo" / "index.html").read_text()
    assert html.count("data:image/png;base64,") >= 2
    assert "95% CI" in html and "n=32" in html
    assert "Paris" in html and "indirect object" in html
    for name in ("lens.json", "dla.json", "lens.png", "dla.png"):
        assert (tmp_path / "demo" / name).stat().st_size > 1000
    for name in ("patching_control.png", "path_heads_to_logits.json", "tracing.json"):
        assert (tmp_path / "demo" / name).stat().st_size > 1000
    for page in ("patching_resid_pre.html", "path_heads_to_logits.html", "tracing.html"):
        assert f"href='{page}'" in html
        assert "<svg" in (tmp_path / "demo" / page).read_text()
    assert "task-specific" in html and "Causal tracing" in html and "Path patching" in html
