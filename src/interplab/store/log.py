"""The research log: timestamped notes, highlights, and hypotheses written before the evidence.

1. A note is a line of thought with its time; a limitation is a note the report lists under
   Limitations; a highlight stars a run (or one of its artifacts, e.g. a figure) with a comment.
2. A hypothesis is stored with its creation time to the microsecond and a hash over the
   previous hypothesis's hash, that time and its text: a chain, so editing a text or moving a
   time afterwards shows (`verify`). Hypotheses are never edited; their status changes
   (open, supported, refuted, abandoned) with a note saying why.
3. Linking a run to a hypothesis marks it pre-registered when the hypothesis was created before
   the run started, post hoc otherwise, by the stored times alone. Runs recorded inside
   ``evidence_for(h)`` are linked as they start.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import sqlite3
import time
from typing import TYPE_CHECKING, Any

from interplab.store.db import StoreError
from interplab.store.records import (
    HYPOTHESIS_STATUSES,
    Hypothesis,
    HypothesisStatus,
    Link,
    Note,
    NoteKind,
)

if TYPE_CHECKING:
    from interplab.store.project import Project

GENESIS = "0" * 64
"""The ``previous`` hash of the first hypothesis of a project."""


def hypothesis_hash(previous: str, created_iso: str, text: str) -> str:
    """Returns the chained hash of a hypothesis: sha256 over previous hash, time and text."""
    return hashlib.sha256(f"{previous}\n{created_iso}\n{text}".encode()).hexdigest()


def _open_sprint(conn: sqlite3.Connection) -> int | None:
    row = conn.execute(
        "SELECT id FROM sprints WHERE ended IS NULL ORDER BY id DESC LIMIT 1"
    ).fetchone()
    return None if row is None else int(row[0])


# -- notes ----------------------------------------------------------------------------------


def note(
    project: Project,
    text: str,
    *,
    kind: NoteKind = "note",
    run: int | None = None,
    artifact: str | None = None,
) -> Note:
    """Adds a timestamped note (``kind='limitation'`` for the report's limitations)."""
    text = text.strip()
    if not text:
        raise StoreError("a note needs some text")
    if kind not in ("note", "limitation", "highlight"):
        raise StoreError(f"note kind {kind!r} is not one of: note, limitation, highlight")
    if run is not None:
        project.run(run)  # raises for an unknown run
    with project.write() as conn:
        sprint = _open_sprint(conn)
        now = time.time()
        cur = conn.execute(
            "INSERT INTO notes (created, kind, text, run_id, artifact_sha256, sprint_id) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (now, kind, text, run, artifact, sprint),
        )
        return Note(int(cur.lastrowid or 0), now, kind, text, run, artifact, sprint)


def highlight(project: Project, run: int, comment: str, *, artifact: str | None = None) -> Note:
    """Stars a run (or one of its artifacts, by name or sha256) with a comment."""
    rec = project.run(run)
    sha = None
    if artifact is not None:
        match = [a for a in rec.artifacts if artifact in (a.name, a.sha256)]
        if not match:
            names = ", ".join(a.name for a in rec.artifacts) or "none"
            raise StoreError(f"run {run} has no artifact {artifact!r}; it has: {names}")
        sha = match[0].sha256
    return project.note(comment, kind="highlight", run=run, artifact=sha)


def notes(
    project: Project, *, kind: NoteKind | None = None, sprint: int | None = None
) -> list[Note]:
    """Returns the log's notes, oldest first."""
    sql, args = "SELECT id, created, kind, text, run_id, artifact_sha256, sprint_id FROM notes", []
    where = []
    if kind is not None:
        where.append("kind = ?")
        args.append(kind)
    if sprint is not None:
        where.append("sprint_id = ?")
        args.append(sprint)
    if where:
        sql += " WHERE " + " AND ".join(where)
    with project.read() as conn:
        return [Note(*r) for r in conn.execute(sql + " ORDER BY id", args)]


# -- hypotheses -----------------------------------------------------------------------------


def hypothesis(project: Project, text: str) -> Hypothesis:
    """Writes down a hypothesis now, chained by hash to the previous one; returns it."""
    text = text.strip()
    if not text:
        raise StoreError("a hypothesis needs some text")
    with project.write() as conn:
        row = conn.execute("SELECT sha256 FROM hypotheses ORDER BY id DESC LIMIT 1").fetchone()
        previous = GENESIS if row is None else row[0]
        now = time.time()
        created_iso = dt.datetime.fromtimestamp(now, dt.UTC).isoformat(timespec="microseconds")
        sha = hypothesis_hash(previous, created_iso, text)
        sprint = _open_sprint(conn)
        cur = conn.execute(
            "INSERT INTO hypotheses (created, created_iso, text, previous, sha256, sprint_id) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (now, created_iso, text, previous, sha, sprint),
        )
        return Hypothesis(
            int(cur.lastrowid or 0), now, created_iso, text, previous, sha, sprint, "open", None
        )


def hypotheses(project: Project, *, sprint: int | None = None) -> list[Hypothesis]:
    """Returns the hypotheses, oldest first."""
    sql = (
        "SELECT id, created, created_iso, text, previous, sha256, sprint_id, status, "
        "status_note FROM hypotheses"
    )
    args: list[Any] = []
    if sprint is not None:
        sql += " WHERE sprint_id = ?"
        args.append(sprint)
    with project.read() as conn:
        return [Hypothesis(*r) for r in conn.execute(sql + " ORDER BY id", args)]


def get_hypothesis(project: Project, hypothesis_id: int) -> Hypothesis:
    """Returns one hypothesis."""
    found = [h for h in project.hypotheses() if h.id == int(hypothesis_id)]
    if not found:
        raise StoreError(f"no hypothesis H{hypothesis_id}; `interplab hypothesis list` lists them")
    return found[0]


def set_status(
    project: Project, hypothesis_id: int, status: HypothesisStatus, note: str = ""
) -> Hypothesis:
    """Marks a hypothesis supported, refuted, abandoned or open again, saying why."""
    if status not in HYPOTHESIS_STATUSES:
        raise StoreError(f"status {status!r} is not one of: {', '.join(HYPOTHESIS_STATUSES)}")
    project.get_hypothesis(hypothesis_id)
    with project.write() as conn:
        conn.execute(
            "UPDATE hypotheses SET status = ?, status_note = ? WHERE id = ?",
            (status, note.strip() or None, int(hypothesis_id)),
        )
    return project.get_hypothesis(hypothesis_id)


def link_in(
    project: Project, conn: sqlite3.Connection, hypothesis_id: int, run_id: int, *, started: float
) -> Link:
    """Links inside an open write transaction (used when a run starts)."""
    row = conn.execute(
        "SELECT created FROM hypotheses WHERE id = ?", (int(hypothesis_id),)
    ).fetchone()
    if row is None:
        raise StoreError(f"no hypothesis H{hypothesis_id}; `interplab hypothesis list` lists them")
    prereg = float(row[0]) < float(started)
    now = time.time()
    conn.execute(
        "INSERT OR REPLACE INTO hypothesis_runs (hypothesis_id, run_id, linked, preregistered) "
        "VALUES (?, ?, ?, ?)",
        (int(hypothesis_id), int(run_id), now, int(prereg)),
    )
    return Link(int(hypothesis_id), int(run_id), now, prereg)


def link(project: Project, hypothesis_id: int, run_id: int) -> Link:
    """Counts a run as evidence on a hypothesis; pre-registered if the hypothesis is older
    than the run's start, post hoc otherwise."""
    rec = project.run(run_id)
    with project.write() as conn:
        return project.link_in(conn, hypothesis_id, run_id, started=rec.started)


def links(project: Project, *, hypothesis: int | None = None, run: int | None = None) -> list[Link]:
    """Returns the hypothesis-run links, filtered by either side."""
    sql, args, where = (
        "SELECT hypothesis_id, run_id, linked, preregistered FROM hypothesis_runs",
        [],
        [],
    )
    if hypothesis is not None:
        where.append("hypothesis_id = ?")
        args.append(int(hypothesis))
    if run is not None:
        where.append("run_id = ?")
        args.append(int(run))
    if where:
        sql += " WHERE " + " AND ".join(where)
    with project.read() as conn:
        rows = conn.execute(sql + " ORDER BY hypothesis_id, run_id", args).fetchall()
    return [Link(h, r, t, bool(p)) for h, r, t, p in rows]


def verify(project: Project) -> list[str]:
    """Returns the hypotheses whose hash chain is broken (text, time or order edited)."""
    problems, previous = [], GENESIS
    for h in project.hypotheses():
        if h.previous != previous:
            problems.append(f"H{h.id}: its chain link does not match the hypothesis before it")
        elif hypothesis_hash(h.previous, h.created_iso, h.text) != h.sha256:
            problems.append(f"H{h.id}: its text or time no longer matches its hash")
        created = dt.datetime.fromisoformat(h.created_iso).timestamp()
        if abs(created - h.created) > 1e-3:
            problems.append(f"H{h.id}: its stored time differs from the hashed time")
        previous = h.sha256
    return problems


__all__ = [
    "GENESIS",
    "get_hypothesis",
    "highlight",
    "hypotheses",
    "hypothesis",
    "hypothesis_hash",
    "link",
    "link_in",
    "links",
    "note",
    "notes",
    "set_status",
    "verify",
]
