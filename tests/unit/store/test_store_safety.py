"""Safety of the data: SIGKILL mid-run, parallel writers, stale runs, and files that are not (or
no longer) a store we may touch."""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from interplab.store import Project, StoreError
from interplab.store.location import DB_NAME

HERE = Path(__file__).resolve().parent


def _python(code: str, *args: str, **kw) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.Popen([sys.executable, "-c", code, *args], env=env, text=True, **kw)


def _integrity(db: Path) -> str:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()


_SLOW_RUN = """
import sys, time
from interplab.store import Project
p = Project.open(sys.argv[1])
with p.recording("slow", config={"k": 1}, seed=7) as run:
    print(run.id, flush=True)
    time.sleep(120)
"""


def test_a_run_killed_with_sigkill_shows_as_interrupted_and_nothing_else_is_lost(project):
    from fake_technique import PROMPTS, fake_sweep

    fake_sweep(PROMPTS)
    proc = _python(_SLOW_RUN, str(project.root), stdout=subprocess.PIPE)
    assert proc.stdout is not None
    killed = int(proc.stdout.readline())
    assert project.run(killed).status == "running"  # alive: the stale check leaves it alone
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    rec = project.run(killed)  # the stale check runs on every read
    assert rec.status == "interrupted"
    assert "process is gone" in (rec.error or "") and rec.config == {"k": 1} and rec.seed == 7
    assert project.run(1).status == "done" and project.result(1) is not None
    assert _integrity(project.location.db) == "ok" and project.check() == []


_LOOP = """
import sys
from fake_technique import PROMPTS, fake_sweep
i = 0
while True:
    fake_sweep(PROMPTS[: 2 + i % 5], seed=i)
    i += 1
    if i == 3:
        print("going", flush=True)
"""


def test_sigkill_at_any_point_of_recording_leaves_the_store_consistent(project):
    for delay in (0.05, 0.3, 0.7):
        env = {**os.environ, "INTERPLAB_PROJECT": str(project.root),
               "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}  # fmt: skip
        proc = subprocess.Popen([sys.executable, "-c", _LOOP], env=env, text=True,
                                stdout=subprocess.PIPE)  # fmt: skip
        assert proc.stdout is not None and proc.stdout.readline().strip() == "going"
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    runs = project.runs()
    assert len(runs) >= 9
    assert {r.status for r in runs} <= {"done", "interrupted"}
    assert sum(r.status == "interrupted" for r in runs) <= 3  # at most the one in flight per kill
    for r in runs:
        if r.status == "done":  # a finished run has every artifact, whole
            assert project.run(r.id).artifact("result") is not None
            assert project.result(r.id).values.shape[0] >= 2
    assert _integrity(project.location.db) == "ok" and project.check() == []


_WRITER = """
import sys
import numpy as np
from fake_technique import FakeResult, PROMPTS, compute
from interplab.provenance import Provenance
from interplab.store import Project
root, worker, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
p = Project.open(root)
for i in range(n):
    with p.recording("parallel", config={"worker": worker, "i": i}, label=f"w{worker}-{i}") as run:
        prov = Provenance("parallel", {"name": "m"}, {"i": i}, "0" * 64, seed=i)
        run.finish(FakeResult(PROMPTS[:3], compute(PROMPTS[:3], shift=0.0, cells=2, seed=i), prov))
    if i % 10 == 0:
        p.hypothesis(f"worker {worker} hypothesis {i}")
        p.note(f"worker {worker} at {i}")
print("done", flush=True)
"""


def test_parallel_writers_lose_nothing_and_keep_the_database_intact(project):
    workers, per_worker = 4, 75
    procs = [_python(_WRITER, str(project.root), str(w), str(per_worker), stdout=subprocess.PIPE)
             for w in range(workers)]  # fmt: skip
    for proc in procs:
        out, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0 and out.strip() == "done"
    runs = project.runs()
    assert len(runs) == workers * per_worker
    assert {r.label for r in runs} == {
        f"w{w}-{i}" for w in range(workers) for i in range(per_worker)
    }
    assert len({r.id for r in runs}) == len(runs) and all(r.status == "done" for r in runs)
    assert len(project.hypotheses()) == workers * 8 and len(project.notes()) == workers * 8
    assert project.verify() == []  # the hypothesis hash chain stayed one chain
    assert _integrity(project.location.db) == "ok" and project.check() == []


def test_stale_runs_are_found_by_dead_pid_or_old_heartbeat(project):
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    dead_pid = int(done.stdout)
    now = time.time()
    rows = [  # (host, pid, heartbeat age)
        ("elsewhere", 1, 3600.0),  # another machine, silent for an hour: dead
        ("elsewhere", 1, 5.0),  # another machine, beating: alive
        (None, dead_pid, 5.0),  # this machine, its process is gone: dead
        (None, os.getpid(), 5.0),  # this process: alive
    ]
    from interplab.store.capture import host

    with project.write() as conn:
        for h, pid, age in rows:
            conn.execute(
                "INSERT INTO runs (technique, status, started, heartbeat, pid, host) "
                "VALUES ('t', 'running', ?, ?, ?, ?)",
                (now - age, now - age, pid, h or host()),
            )
    assert sorted(project.mark_stale()) == [1, 3]
    assert [r.status for r in sorted(project.runs(), key=lambda r: r.id)] == [
        "interrupted", "running", "interrupted", "running"]  # fmt: skip


# -- files that are not a store we may use ------------------------------------------------------


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _refused(path: Path, match: str) -> None:
    before, files = _sha(path), sorted(os.listdir(path.parent))
    with pytest.raises(StoreError, match=match):
        Project.open(path)
    assert _sha(path) == before, "a refused file must never be modified"
    assert sorted(os.listdir(path.parent)) == files, "nothing is written beside it either"


def test_empty_and_non_sqlite_files_are_refused_untouched(tmp_path):
    empty = tmp_path / "empty" / DB_NAME
    empty.parent.mkdir()
    empty.write_bytes(b"")
    with pytest.raises(StoreError, match="empty or truncated"):
        Project.open(empty.parent)
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(os.urandom(8192))
    _refused(junk, "not an SQLite database")


def test_another_programs_sqlite_database_is_refused_untouched(tmp_path):
    foreign = tmp_path / "foreign.sqlite"
    conn = sqlite3.connect(foreign)
    conn.execute("CREATE TABLE runs (id INTEGER)")
    conn.commit()
    conn.close()
    _refused(foreign, "another program")


def test_a_newer_schema_is_refused_untouched(tmp_path):
    p = Project.init(tmp_path / "new")
    p.close()
    conn = sqlite3.connect(p.location.db)
    conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    conn.execute("PRAGMA user_version = 99")
    conn.commit()
    conn.close()
    _refused(p.location.db, "newer than this interplab")


def _filled(tmp_path: Path) -> Path:
    p = Project.init(tmp_path / "filled")
    for i in range(200):
        with p.recording("t", config={"i": i, "pad": "x" * 500}) as run:
            run.finish(None)
    p.close()
    return p.location.db


def test_a_truncated_store_is_refused_untouched(tmp_path):
    db = _filled(tmp_path)
    data = db.read_bytes()
    db.write_bytes(data[: len(data) // 2])
    _refused(db, "damaged")


def test_a_store_with_garbage_pages_is_refused_untouched(tmp_path):
    db = _filled(tmp_path)
    data = bytearray(db.read_bytes())
    page = 4096
    data[page : len(data)] = os.urandom(len(data) - page)  # keep the header page, ruin the rest
    db.write_bytes(bytes(data))
    _refused(db, "damaged")
