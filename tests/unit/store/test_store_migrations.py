"""Schema migrations: a store made by the first schema version opens, migrates once, keeps its
data; concurrent openers of an old store migrate it once."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np

from interplab.stats import summarize
from interplab.store import SCHEMA_VERSION, Project, schema
from interplab.store.location import ARTIFACTS, DB_NAME


def _first_version_store(root: Path) -> Path:
    """Returns a project made as the first schema version made it, with one run recorded."""
    root.mkdir()
    (root / ARTIFACTS).mkdir()
    db = root / DB_NAME
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute(f"PRAGMA application_id = {schema.APPLICATION_ID}")
    assert schema.migrate(conn, target=1) == 1
    conn.execute("PRAGMA journal_mode = WAL")
    values = np.random.default_rng(0).normal(1.0, 1.0, size=(10, 7))
    summary = summarize(values, n_resamples=500).to_dict()
    conn.execute(
        "INSERT INTO runs (technique, status, started, ended, heartbeat, pid, host, config, "
        "model_name, summary) VALUES ('lens', 'done', 1.0, 2.0, 2.0, 1, 'h', ?, 'm', ?)",
        (json.dumps({"k": 3}), json.dumps(summary)),
    )
    conn.execute(
        "INSERT INTO artifacts (run_id, name, kind, sha256, bytes) VALUES (1, 'r.json', 'result', ?, 3)",
        ("a" * 64,),
    )
    conn.close()
    return db


def test_the_migrations_are_numbered_one_by_one():
    assert [m.version for m in schema.MIGRATIONS] == list(range(1, SCHEMA_VERSION + 1))


def test_a_first_version_store_migrates_and_keeps_its_runs(tmp_path):
    db = _first_version_store(tmp_path / "old")
    with Project.open(db.parent) as p:
        run = p.run(1)
        assert (run.technique, run.config, run.model_name) == ("lens", {"k": 3}, "m")
        assert run.n_tests == 7  # backfilled from the stored summary by migration 3
        assert run.headline is not None and run.headline.n == 10  # and its headline by 4
        assert p.runs()[0].headline == run.headline
        assert run.artifacts[0].name == "r.json"
        h = p.hypothesis("works after migrating")  # tables of migration 2
        assert p.link(h.id, 1).preregistered is False
        p.sprint_start("s")
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    meta = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0]
    assert int(meta) == SCHEMA_VERSION
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    with Project.open(db.parent) as again:  # migrated once; opening again changes nothing
        assert again.count_runs() == 1


def test_concurrent_openers_of_an_old_store_migrate_it_once(tmp_path):
    db = _first_version_store(tmp_path / "old")
    code = "import sys; from interplab.store import Project; print(Project.open(sys.argv[1]).count_runs())"
    procs = [subprocess.Popen([sys.executable, "-c", code, str(db.parent)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=dict(os.environ))
             for _ in range(3)]  # fmt: skip
    for proc in procs:
        out, errors = proc.communicate(timeout=120)
        assert proc.returncode == 0, errors
        assert out.strip() == "1"
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    conn.close()
