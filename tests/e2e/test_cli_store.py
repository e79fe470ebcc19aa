"""The research notebook from the command line: a project, runs recorded by a script inside it,
the log, hypotheses, findings, a sprint, the report, re-runs (through a registered function and
from a stored call), and a refused file."""

from __future__ import annotations

import os
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

CLI = [sys.executable, "-m", "interplab.cli"]
FAKE = Path(__file__).resolve().parents[1] / "unit" / "store"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    e = {**os.environ, "COLUMNS": "200", "INTERPLAB_HOME": str(tmp_path / "home")}
    e.pop("INTERPLAB_PROJECT", None)
    e.pop("INTERPLAB_RECORD", None)
    e["PYTHONPATH"] = os.pathsep.join([str(FAKE), os.environ.get("PYTHONPATH", "")])
    return e


def cli(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=300
    )


def ok(env: dict[str, str], cwd: Path, *args: str) -> str:
    done = cli(env, cwd, *args)
    assert done.returncode == 0, f"{args}: {done.stdout}\n{done.stderr}"
    return done.stdout


_RECORD = """
from fake_technique import PROMPTS, fake_sweep
fake_sweep(PROMPTS, shift=1.0)
fake_sweep(PROMPTS, shift=0.0, seed=1)
from interplab.store import current
for run in current().runs():  # summaries need the result type, which only this script knows
    current().summary(run.id)
"""


def test_a_project_from_init_to_report_and_rerun(tmp_path, env):
    ok(env, tmp_path, "init", "proj")
    proj = tmp_path / "proj"
    assert (proj / "interplab.sqlite").is_file() and (proj / "artifacts").is_dir()
    ok(env, proj, "sprint", "start", "first", "--goal", "does shift move the mean?")
    assert "H1 written" in ok(env, proj, "hypothesis", "add", "shift moves the mean")
    work = proj / "scripts"
    work.mkdir()
    done = subprocess.run(
        [sys.executable, "-c", _RECORD], cwd=work, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr  # recorded into the enclosing project
    listing = ok(env, proj, "runs", "--plain")
    assert [line.split("\t")[:3] for line in listing.splitlines()] == [
        ["2", "fake_sweep", "done"], ["1", "fake_sweep", "done"]]  # fmt: skip
    assert "pre-registered" in ok(env, proj, "hypothesis", "link", "H1", "1", "2")
    shown = ok(env, proj, "runs", "show", "1")
    assert "fake-model" in shown and "pre-registered" in shown and "result.json" in shown
    assert "shift" in ok(env, proj, "runs", "diff", "1", "2")
    ok(env, tmp_path, "--project", str(proj), "log", "the effect looks linear")  # from outside
    ok(env, proj, "log", "one synthetic task only", "--limitation")
    ok(env, proj, "log", "cleanest sweep", "--star", "1")
    ok(env, proj, "finding", "add", "a shift of 1 moves the mean", "--run", "1", "--confidence",
       "0.8", "--change-my-mind", "the same with shift 0", "--family", "H1")  # fmt: skip
    assert "8 tests in the family" in ok(env, proj, "finding", "show", "F1")
    log = ok(env, proj, "log")
    assert "the effect looks linear" in log and "H1 hypothesis" in log and "F1 finding" in log
    ended = ok(env, proj, "sprint", "end", "--tried", "two sweeps", "--worked", "shift 1",
               "--differently", "more seeds", "--decision", "continue")  # fmt: skip
    assert "8 cells tested" in ended and "continue" in ended
    ok(env, proj, "report")
    page = (proj / "report" / "index.html").read_text()
    ids: list[str] = []

    class Sections(HTMLParser):
        def handle_starttag(self, tag, attrs):
            if tag == "section":
                ids.append(dict(attrs).get("id") or "")

    Sections().feed(page)
    assert ids[:2] == ["findings", "F1"] and "appendix-examples" in ids and "reproducibility" in ids
    assert (proj / "report" / "report.md").is_file()
    rerun = ok(env, proj, "rerun", "1", "--import", "fake_technique")
    assert "every number must match exactly" in rerun and rerun.strip().endswith("MATCH")
    assert "ok:" in ok(env, proj, "runs", "check")


_SCALED = """
import numpy as np
from fake_technique import PROMPTS, fake_scaled
fake_scaled(PROMPTS, np.array([1.0, 2.0]), seed=4)
fake_scaled(PROMPTS, np.array([1.0]), transform=lambda v: v)
"""


def test_a_run_reruns_from_its_stored_call_on_the_command_line(tmp_path, env):
    ok(env, tmp_path, "init", "proj")
    proj = tmp_path / "proj"
    done = subprocess.run([sys.executable, "-c", _SCALED], cwd=proj, env=env,
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "calls fake_technique:fake_scaled again" in ok(env, proj, "runs", "show", "1")
    refused = cli(env, proj, "rerun", "1")
    assert refused.returncode == 2 and "--import fake_technique" in refused.stderr
    rerun = ok(env, proj, "rerun", "1", "--import", "fake_technique")
    assert "every number must match exactly" in rerun and rerun.strip().endswith("MATCH")
    assert "no: argument 'transform'" in ok(env, proj, "runs", "show", "2")
    inline = cli(env, proj, "rerun", "2", "--import", "fake_technique")
    assert inline.returncode == 2 and "cannot be re-run" in inline.stderr
    assert "Traceback" not in inline.stderr + refused.stderr


def test_a_file_that_is_not_a_store_is_one_clear_error(tmp_path, env):
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"not a database at all" * 100)
    done = cli(env, tmp_path, "runs", "--project", str(junk))
    assert done.returncode == 2
    assert "not an SQLite database" in done.stderr and "Traceback" not in done.stderr
    missing = cli(env, tmp_path, "runs", "--project", str(tmp_path / "nowhere"))
    assert missing.returncode == 2 and "interplab init" in missing.stderr
