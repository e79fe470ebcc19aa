"""The project database's schema: numbered migrations, each applied once, in order.

A store records its version twice: ``PRAGMA user_version`` (in the file header, readable without
SQLite) and the ``schema_version`` row of ``meta``. Both move together inside the migration's
transaction, so a crash mid-migration leaves the previous version intact.

1. A new store is built in a temporary file (application id, every migration, WAL mode) and
   linked into place, so two processes creating the same project never see half a database.
2. An older store is migrated on open: ``BEGIN IMMEDIATE`` takes the write lock, the version is
   read again inside it (another process may have migrated meanwhile), then each missing
   migration runs and the version is written.
3. A newer store is refused (`db.open_checked`): this library cannot know what it would break.

Migrations only add (tables, columns, indexes, backfills); they never drop a user's data.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass

APPLICATION_ID = 0x49504C42
"""``PRAGMA application_id`` of an interplab store ('IPLB'): tells our files from foreign ones."""


@dataclass(frozen=True)
class Migration:
    """One step of the schema: its version, what it adds, and the statements that add it."""

    version: int
    title: str
    statements: tuple[str, ...]
    backfill: Callable[[sqlite3.Connection], None] | None = None  # runs after, same transaction


_V1 = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        technique TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('running', 'done', 'failed', 'interrupted')),
        started REAL NOT NULL,
        ended REAL,
        heartbeat REAL NOT NULL,
        pid INTEGER NOT NULL,
        host TEXT NOT NULL,
        config TEXT NOT NULL DEFAULT '{}',
        model_name TEXT,
        model_sha256 TEXT,
        model TEXT NOT NULL DEFAULT '{}',
        versions TEXT NOT NULL DEFAULT '{}',
        git_commit TEXT,
        git_dirty INTEGER,
        cwd TEXT,
        command TEXT,
        seed INTEGER,
        data_sha256 TEXT,
        summary TEXT,
        error TEXT
    )""",
    """CREATE TABLE artifacts (
        run_id INTEGER NOT NULL REFERENCES runs(id),
        name TEXT NOT NULL,
        kind TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        bytes INTEGER NOT NULL,
        PRIMARY KEY (run_id, name)
    )""",
)

_V2 = (
    """CREATE TABLE sprints (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL,
        goal TEXT NOT NULL DEFAULT '',
        started REAL NOT NULL,
        ended REAL,
        tried TEXT,
        worked TEXT,
        differently TEXT,
        decision TEXT CHECK (decision IN ('continue', 'pivot'))
    )""",
    "ALTER TABLE runs ADD COLUMN sprint_id INTEGER REFERENCES sprints(id)",
    "ALTER TABLE runs ADD COLUMN rerun_of INTEGER REFERENCES runs(id)",
    "ALTER TABLE runs ADD COLUMN label TEXT",
    """CREATE TABLE notes (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        created REAL NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('note', 'limitation', 'highlight')),
        text TEXT NOT NULL,
        run_id INTEGER REFERENCES runs(id),
        artifact_sha256 TEXT,
        sprint_id INTEGER REFERENCES sprints(id)
    )""",
    """CREATE TABLE hypotheses (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        created REAL NOT NULL,
        created_iso TEXT NOT NULL,
        text TEXT NOT NULL,
        previous TEXT NOT NULL,
        sha256 TEXT NOT NULL UNIQUE,
        sprint_id INTEGER REFERENCES sprints(id),
        status TEXT NOT NULL DEFAULT 'open'
            CHECK (status IN ('open', 'supported', 'refuted', 'abandoned')),
        status_note TEXT
    )""",
    """CREATE TABLE hypothesis_runs (
        hypothesis_id INTEGER NOT NULL REFERENCES hypotheses(id),
        run_id INTEGER NOT NULL REFERENCES runs(id),
        linked REAL NOT NULL,
        preregistered INTEGER NOT NULL,
        PRIMARY KEY (hypothesis_id, run_id)
    )""",
    """CREATE TABLE findings (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        created REAL NOT NULL,
        claim TEXT NOT NULL,
        confidence REAL NOT NULL CHECK (confidence >= 0 AND confidence <= 1),
        change_my_mind TEXT NOT NULL,
        family TEXT,
        correction TEXT NOT NULL DEFAULT 'holm' CHECK (correction IN ('holm', 'bh')),
        sprint_id INTEGER REFERENCES sprints(id)
    )""",
    """CREATE TABLE finding_runs (
        finding_id INTEGER NOT NULL REFERENCES findings(id),
        run_id INTEGER NOT NULL REFERENCES runs(id),
        PRIMARY KEY (finding_id, run_id)
    )""",
)

_V3 = (
    "ALTER TABLE runs ADD COLUMN n_tests INTEGER",
    "ALTER TABLE runs ADD COLUMN summary_error TEXT",
    "UPDATE runs SET n_tests = json_extract(summary, '$.n_tests') WHERE summary IS NOT NULL",
    "CREATE INDEX runs_by_start ON runs (started)",
    "CREATE INDEX runs_by_technique ON runs (technique, started)",
    "CREATE INDEX runs_running ON runs (status) WHERE status = 'running'",
    "CREATE INDEX runs_by_sprint ON runs (sprint_id)",
    "CREATE INDEX artifacts_by_sha ON artifacts (sha256)",
    "CREATE INDEX hypothesis_runs_by_run ON hypothesis_runs (run_id)",
)


def _backfill_headlines(conn: sqlite3.Connection) -> None:
    from interplab.store.summaries import headline_json

    rows = conn.execute("SELECT id, summary FROM runs WHERE summary IS NOT NULL").fetchall()
    conn.executemany(
        "UPDATE runs SET headline = ? WHERE id = ?",
        [(headline_json(json.loads(text)), run_id) for run_id, text in rows],
    )


_V4 = ("ALTER TABLE runs ADD COLUMN headline TEXT",)

_V5 = ("ALTER TABLE runs ADD COLUMN progress TEXT",)

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "runs and their artifacts", _V1),
    Migration(2, "the research log: sprints, notes, hypotheses, findings", _V2),
    Migration(3, "tested-cell counts and indexes for listing large projects", _V3),
    Migration(
        4,
        "each summary's headline cell, so listings need not parse summaries",
        _V4,
        _backfill_headlines,
    ),
    Migration(5, "a running run's progress (its current progress bar)", _V5),
)

SCHEMA_VERSION = MIGRATIONS[-1].version
"""The version this library writes and reads."""


def version(conn: sqlite3.Connection) -> int:
    """Returns the schema version a connection's database records (0 for an empty database)."""
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection, target: int = SCHEMA_VERSION) -> int:
    """Applies the missing migrations up to ``target`` and returns the version reached.

    ``conn`` is in autocommit mode (``isolation_level=None``); each migration is one transaction
    that re-reads the version under the write lock, so concurrent openers migrate once.
    """
    for step in MIGRATIONS:
        if step.version > target:
            break
        conn.execute("BEGIN IMMEDIATE")
        try:
            if version(conn) >= step.version:
                conn.execute("COMMIT")
                continue
            for statement in step.statements:
                conn.execute(statement)
            if step.backfill is not None:
                step.backfill(conn)
            conn.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)",
                (str(step.version),),
            )
            conn.execute(f"PRAGMA user_version = {int(step.version)}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return version(conn)


__all__ = ["APPLICATION_ID", "MIGRATIONS", "SCHEMA_VERSION", "Migration", "migrate", "version"]
