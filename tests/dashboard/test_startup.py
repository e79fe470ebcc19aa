"""The dashboard never imports torch, starts in under 2 s on a store of 10,000 runs, and the
command refuses a non-loopback host unless asked. Each check runs in a fresh interpreter."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import TOKEN

ROOT = Path(__file__).resolve().parents[2]


def _env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "INTERPLAB_HOME": str(tmp_path / "home"), "OMP_NUM_THREADS": "1"}


def test_serving_every_kind_of_page_imports_no_torch(built, tmp_path):
    root, ids = built
    script = textwrap.dedent(
        f"""
        import sys, urllib.request
        from interplab import dashboard
        d = dashboard.start({str(root)!r}, token={TOKEN!r})
        paths = ["/", "/runs", "/runs/{ids["grid"]}", "/runs/{ids["grid"]}/figure.png", "/log",
                 "/runs/compare?a={ids["grid"]}&b={ids["grid2"]}", "/dictionaries",
                 "/dictionaries/index?src=run:{ids["features"]}:result.json",
                 "/dictionaries/feature?src=run:{ids["features"]}:f5.json",
                 "/graphs", "/api/graph?src=file:graphs/mary.json"]
        for p in paths:
            req = urllib.request.Request(d.base + p, headers={{"X-Interplab-Token": {TOKEN!r}}})
            with urllib.request.urlopen(req) as r:
                assert r.status == 200, (p, r.status)
        d.stop()
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "transformers"))
        print("HEAVY:" + ",".join(heavy[:5]))
        print("VIZ:" + str("interplab.viz" in sys.modules))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "HEAVY:\n" in done.stdout + "\n" and "VIZ:True" in done.stdout


def _time_to_first_page(root: Path, tmp_path: Path) -> tuple[float, str]:
    """Starts `interplab dashboard` and returns the seconds until /runs answers, and its page."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "interplab.cli", "dashboard", str(root), "--no-browser"],
        cwd=tmp_path,
        env=_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = ""
        while not url:
            line = proc.stdout.readline()
            assert line, proc.stderr.read() if proc.stderr else "no output"
            if line.startswith("open http"):
                url = line.split()[1].strip()
        base, token = url.split("/?token=")
        assert base.startswith("http://127.0.0.1:")
        req = urllib.request.Request(base + "/runs", headers={"X-Interplab-Token": token})
        with urllib.request.urlopen(req, timeout=30) as r:
            page = r.read().decode()
        return time.perf_counter() - start, page
    finally:
        proc.terminate()
        proc.communicate(timeout=10)


def test_starts_and_lists_a_store_of_10000_runs_in_under_2_seconds(tmp_path, monkeypatch):
    from fixtures import bulk_runs

    from interplab.store import Project

    monkeypatch.setenv("INTERPLAB_HOME", str(tmp_path / "home"))
    project = Project.init(tmp_path / "big")
    bulk_runs(project, 10_000)
    assert project.count_runs() == 10_000
    project.close()
    # The best of three starts: the machine running the suite is shared, and one start can lose
    # a second to another process; three slow starts in a row would be the dashboard's fault.
    times = []
    for _ in range(3):
        seconds, page = _time_to_first_page(tmp_path / "big", tmp_path)
        assert "10000 runs" in page and page.count('class="run-row"') == 50
        times.append(seconds)
        if seconds < 2.0:
            break
    print(f"interplab dashboard: process start to the first runs page in {min(times):.2f} s")
    assert min(times) < 2.0, times


def test_a_network_host_needs_allow_remote(tmp_path):
    from interplab.store import Project

    Project.init(tmp_path / "p").close()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "interplab.cli",
            "dashboard",
            str(tmp_path / "p"),
            "--host",
            "0.0.0.0",
            "--no-browser",
        ],
        cwd=tmp_path,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "--allow-remote" in done.stderr


def test_a_network_host_with_allow_remote_warns(tmp_path):
    from interplab.dashboard.serve import is_loopback

    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4")
    from interplab.store import Project

    Project.init(tmp_path / "p").close()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "interplab.cli",
            "dashboard",
            str(tmp_path / "p"),
            "--host",
            "0.0.0.0",
            "--allow-remote",
            "--no-browser",
        ],
        cwd=tmp_path,
        env=_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("open http"):
                break
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    assert "WARNING" in err and "network" in err


@pytest.mark.parametrize("port", ["-1", "70000"])
def test_a_bad_port_is_one_clear_line(tmp_path, port):
    from interplab.store import Project

    Project.init(tmp_path / "p").close()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "interplab.cli",
            "dashboard",
            str(tmp_path / "p"),
            "--port",
            port,
            "--no-browser",
        ],
        cwd=tmp_path,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "--port is 0" in done.stderr and "Traceback" not in done.stderr
