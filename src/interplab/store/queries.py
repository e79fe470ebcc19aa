"""Reading a large project a page at a time: filtered, sorted, counted runs and log entries.

`Project.runs` returns every matching run; a viewer of 10,000 runs needs one page of them, the
total, and the values its filters offer. Everything here is a read (plus the stale check that
`Project.runs` also makes), through the project's own connection:

1. `run_page` filters by technique, model, status, hypothesis, sprint and a start-time window,
   sorts by one of `RUN_SORTS`, and returns one page of `RunRecord` (without summaries, as
   listings are) with the total that matched. Sorting and filtering use the columns the
   schema indexes (``started``, ``technique``), so a page costs milliseconds at 10,000 runs.
2. `facets` lists the techniques, models and statuses present, with counts.
3. `run_states` returns the live columns (status, heartbeat, end, error) of chosen runs, for a
   page that follows runs in progress without reloading them whole.
4. `notes_page`, `notes_for_run`, `hypothesis_page`, `finding_page` page the research log.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from interplab.store.db import StoreError
from interplab.store.records import (
    STATUSES,
    Finding,
    Hypothesis,
    Note,
    RunRecord,
    run_columns,
    run_from_row,
)

if TYPE_CHECKING:
    from interplab.store.project import Project

RUN_SORTS: dict[str, str] = {
    "id": "id",
    "started": "started",
    "technique": "technique",
    "model": "model_name",
    "status": "status",
    "duration": "(COALESCE(ended, heartbeat) - started)",
    "tests": "n_tests",
}
"""The columns a run listing sorts by (name shown to the user -> SQL expression)."""

MAX_PAGE = 500
"""The most rows one page returns."""


@dataclass(frozen=True)
class RunFilter:
    """Which runs a listing shows; every field given must match (None: any)."""

    technique: str | None = None
    model: str | None = None
    status: str | None = None
    hypothesis: int | None = None
    sprint: int | None = None
    since: float | None = None  # started at or after (seconds since the epoch)
    until: float | None = None  # started before

    def check(self) -> None:
        """Raises StoreError for a status the store does not know or an empty time window."""
        if self.status is not None and self.status not in STATUSES:
            raise StoreError(f"status {self.status!r} is not one of: {', '.join(STATUSES)}")
        if self.since is not None and self.until is not None and self.until <= self.since:
            raise StoreError("the time window is empty: 'until' must come after 'since'")


@dataclass(frozen=True)
class Page:
    """One page of a listing: its rows, where it starts, its size and the total that matched."""

    rows: tuple[Any, ...]
    offset: int
    limit: int
    total: int

    @property
    def has_next(self) -> bool:
        return self.offset + len(self.rows) < self.total

    @property
    def has_previous(self) -> bool:
        return self.offset > 0


def _window(offset: int, limit: int) -> tuple[int, int]:
    if offset < 0:
        raise StoreError(f"a page starts at row 0 or later, got offset {offset}")
    if not 1 <= limit <= MAX_PAGE:
        raise StoreError(f"a page holds 1 to {MAX_PAGE} rows, got {limit}")
    return int(offset), int(limit)


def _where(f: RunFilter) -> tuple[str, list[Any]]:
    f.check()
    where: list[str] = []
    args: list[Any] = []
    for column, value in (
        ("technique", f.technique),
        ("model_name", f.model),
        ("status", f.status),
        ("sprint_id", f.sprint),
    ):
        if value is not None:
            where.append(f"{column} = ?")
            args.append(value)
    if f.since is not None:
        where.append("started >= ?")
        args.append(float(f.since))
    if f.until is not None:
        where.append("started < ?")
        args.append(float(f.until))
    if f.hypothesis is not None:
        where.append("id IN (SELECT run_id FROM hypothesis_runs WHERE hypothesis_id = ?)")
        args.append(int(f.hypothesis))
    return (" WHERE " + " AND ".join(where)) if where else "", args


def run_page(
    project: Project,
    where: RunFilter | None = None,
    *,
    sort: str = "id",
    descending: bool = True,
    offset: int = 0,
    limit: int = 50,
    stale_check: bool = True,
) -> Page:
    """Returns one page of the runs matching ``where``, sorted by ``sort`` (one of `RUN_SORTS`),
    with the total that matched; rows are `RunRecord` without summaries or artifacts."""
    if sort not in RUN_SORTS:
        raise StoreError(f"cannot sort runs by {sort!r}; sort by one of: {', '.join(RUN_SORTS)}")
    offset, limit = _window(offset, limit)
    clause, args = _where(where or RunFilter())
    if stale_check:
        project.mark_stale()
    order = "DESC" if descending else "ASC"
    sql = (
        f"SELECT {run_columns(summary=False)} FROM runs{clause} "
        f"ORDER BY {RUN_SORTS[sort]} {order}, id {order} LIMIT ? OFFSET ?"
    )
    with project.read() as conn:
        total = int(conn.execute(f"SELECT count(*) FROM runs{clause}", args).fetchone()[0])
        rows = conn.execute(sql, [*args, limit, offset]).fetchall()
    return Page(tuple(run_from_row(r) for r in rows), offset, limit, total)


def facets(project: Project) -> dict[str, list[tuple[str, int]]]:
    """Returns the techniques, models and statuses present, each with its number of runs."""
    out: dict[str, list[tuple[str, int]]] = {}
    with project.read() as conn:
        for name, column in (
            ("technique", "technique"),
            ("model", "model_name"),
            ("status", "status"),
        ):
            rows = conn.execute(
                f"SELECT {column}, count(*) FROM runs WHERE {column} IS NOT NULL "
                f"GROUP BY {column} ORDER BY {column}"
            ).fetchall()
            out[name] = [(str(v), int(n)) for v, n in rows]
    return out


@dataclass(frozen=True)
class RunState:
    """The columns of a run that change while it runs."""

    id: int
    status: str
    started: float
    heartbeat: float
    ended: float | None
    error: str | None
    progress: str | None = None  # JSON [description, done, total] of the run's latest bar

    def to_dict(self, now: float | None = None) -> dict[str, Any]:
        """Returns the state as JSON types, with the seconds elapsed and since the heartbeat."""
        now = time.time() if now is None else now
        return {
            "id": self.id,
            "status": self.status,
            "started": self.started,
            "heartbeat": self.heartbeat,
            "ended": self.ended,
            "error": self.error,
            "elapsed": (self.ended if self.ended is not None else now) - self.started,
            "heartbeat_age": now - self.heartbeat,
            "progress": json.loads(self.progress) if self.progress else None,
        }


def run_states(project: Project, ids: list[int], *, stale_check: bool = True) -> list[RunState]:
    """Returns the live state of the runs with these ids (unknown ids are left out)."""
    ids = [int(i) for i in ids][:MAX_PAGE]
    if not ids:
        return []
    if stale_check:
        project.mark_stale()
    marks = ",".join("?" * len(ids))
    with project.read() as conn:
        rows = conn.execute(
            f"SELECT id, status, started, heartbeat, ended, error, progress FROM runs "
            f"WHERE id IN ({marks}) "
            "ORDER BY id",
            ids,
        ).fetchall()
    return [RunState(*r) for r in rows]


def running_ids(project: Project) -> list[int]:
    """Returns the ids of the runs marked running (after the stale check)."""
    project.mark_stale()
    with project.read() as conn:
        return [int(r[0]) for r in conn.execute("SELECT id FROM runs WHERE status = 'running'")]


def latest_run_id(project: Project) -> int:
    """Returns the highest run id (0 for an empty project)."""
    with project.read() as conn:
        return int(conn.execute("SELECT COALESCE(max(id), 0) FROM runs").fetchone()[0])


_NOTE_COLUMNS = "id, created, kind, text, run_id, artifact_sha256, sprint_id"


def notes_page(
    project: Project, *, kind: str | None = None, offset: int = 0, limit: int = 50
) -> Page:
    """Returns one page of the log's notes, newest first."""
    offset, limit = _window(offset, limit)
    if kind is not None and kind not in ("note", "limitation", "highlight"):
        raise StoreError(f"note kind {kind!r} is not one of: note, limitation, highlight")
    clause, args = (" WHERE kind = ?", [kind]) if kind is not None else ("", [])
    with project.read() as conn:
        total = int(conn.execute(f"SELECT count(*) FROM notes{clause}", args).fetchone()[0])
        rows = conn.execute(
            f"SELECT {_NOTE_COLUMNS} FROM notes{clause} ORDER BY id DESC LIMIT ? OFFSET ?",
            [*args, limit, offset],
        ).fetchall()
    return Page(tuple(Note(*r) for r in rows), offset, limit, total)


def notes_for_run(project: Project, run_id: int) -> list[Note]:
    """Returns the notes and highlights attached to one run, oldest first."""
    with project.read() as conn:
        rows = conn.execute(
            f"SELECT {_NOTE_COLUMNS} FROM notes WHERE run_id = ? ORDER BY id", (int(run_id),)
        ).fetchall()
    return [Note(*r) for r in rows]


def hypothesis_page(project: Project, *, offset: int = 0, limit: int = 50) -> Page:
    """Returns one page of hypotheses, newest first, each as (hypothesis, pre-registered
    links, post hoc links)."""
    offset, limit = _window(offset, limit)
    with project.read() as conn:
        total = int(conn.execute("SELECT count(*) FROM hypotheses").fetchone()[0])
        rows = conn.execute(
            "SELECT id, created, created_iso, text, previous, sha256, sprint_id, status, "
            "status_note, "
            "(SELECT count(*) FROM hypothesis_runs l WHERE l.hypothesis_id = h.id "
            "AND preregistered = 1), "
            "(SELECT count(*) FROM hypothesis_runs l WHERE l.hypothesis_id = h.id "
            "AND preregistered = 0) "
            "FROM hypotheses h ORDER BY id DESC LIMIT ? OFFSET ?",
            (limit, offset),
        ).fetchall()
    return Page(
        tuple((Hypothesis(*r[:9]), int(r[9]), int(r[10])) for r in rows), offset, limit, total
    )


def finding_page(project: Project, *, offset: int = 0, limit: int = 50) -> Page:
    """Returns one page of findings, newest first, each with its evidence runs."""
    offset, limit = _window(offset, limit)
    with project.read() as conn:
        total = int(conn.execute("SELECT count(*) FROM findings").fetchone()[0])
        rows = conn.execute(
            "SELECT id, created, claim, confidence, change_my_mind, family, correction, "
            "sprint_id FROM findings ORDER BY id DESC LIMIT ? OFFSET ?",
            (limit, offset),
        ).fetchall()
        evidence: dict[int, list[int]] = {}
        ids = [r[0] for r in rows]
        if ids:
            marks = ",".join("?" * len(ids))
            for fid, rid in conn.execute(
                f"SELECT finding_id, run_id FROM finding_runs WHERE finding_id IN ({marks}) "
                "ORDER BY run_id",
                ids,
            ):
                evidence.setdefault(int(fid), []).append(int(rid))
    return Page(
        tuple(Finding(*r, evidence=tuple(evidence.get(r[0], ()))) for r in rows),
        offset,
        limit,
        total,
    )


def evidence_states(project: Project, run_ids: list[int]) -> dict[int, str]:
    """Returns the status of each of these runs by id (the evidence behind findings)."""
    ids = sorted({int(i) for i in run_ids})
    if not ids:
        return {}
    out: dict[int, str] = {}
    with project.read() as conn:
        for i in range(0, len(ids), MAX_PAGE):
            chunk = ids[i : i + MAX_PAGE]
            marks = ",".join("?" * len(chunk))
            for rid, status in conn.execute(
                f"SELECT id, status FROM runs WHERE id IN ({marks})", chunk
            ):
                out[int(rid)] = str(status)
    return out


def runs_by_techniques(
    project: Project, techniques: list[str], *, limit: int = 200
) -> list[RunRecord]:
    """Returns the newest finished runs of these techniques, with their artifacts."""
    if not techniques:
        return []
    marks = ",".join("?" * len(techniques))
    with project.read() as conn:
        ids = [
            int(r[0])
            for r in conn.execute(
                f"SELECT id FROM runs WHERE technique IN ({marks}) AND status = 'done' "
                "ORDER BY id DESC LIMIT ?",
                [*techniques, int(limit)],
            )
        ]
    return [project.run(i) for i in ids]


def runs_with_artifacts(
    project: Project, *, kinds: tuple[str, ...] = (), name_like: str | None = None, limit: int = 200
) -> list[tuple[int, str, str, str, int]]:
    """Returns (run id, technique, artifact name, sha256, bytes) of stored artifacts whose kind
    is one of ``kinds`` or whose name matches the SQL LIKE pattern ``name_like``, newest first."""
    where, args = [], []
    if kinds:
        where.append(f"a.kind IN ({','.join('?' * len(kinds))})")
        args.extend(kinds)
    if name_like is not None:
        where.append("a.name LIKE ?")
        args.append(name_like)
    if not where:
        return []
    with project.read() as conn:
        rows = conn.execute(
            "SELECT a.run_id, r.technique, a.name, a.sha256, a.bytes FROM artifacts a "
            "JOIN runs r ON r.id = a.run_id WHERE " + " OR ".join(where) + " "
            "ORDER BY a.run_id DESC, a.name LIMIT ?",
            [*args, int(limit)],
        ).fetchall()
    return [(int(a), str(b), str(c), str(d), int(e)) for a, b, c, d, e in rows]


__all__ = [
    "MAX_PAGE",
    "RUN_SORTS",
    "Page",
    "RunFilter",
    "RunState",
    "evidence_states",
    "facets",
    "finding_page",
    "hypothesis_page",
    "latest_run_id",
    "notes_for_run",
    "notes_page",
    "run_page",
    "run_states",
    "running_ids",
    "runs_by_techniques",
    "runs_with_artifacts",
]
