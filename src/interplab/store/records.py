"""What the store returns: frozen records of runs, artifacts and the research log.

Times are seconds since the epoch (UTC) in the database and in these records; ``iso`` prints
them. Ids are small integers, shown with a letter where a kind needs telling apart: run 12,
hypothesis H3, finding F2, sprint S1, note N7.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from dataclasses import dataclass
from typing import Any, Literal

from interplab.store.summaries import Headline, headline_from_json

Status = Literal["running", "done", "failed", "interrupted"]
STATUSES: tuple[str, ...] = ("running", "done", "failed", "interrupted")
HypothesisStatus = Literal["open", "supported", "refuted", "abandoned"]
HYPOTHESIS_STATUSES: tuple[str, ...] = ("open", "supported", "refuted", "abandoned")
NoteKind = Literal["note", "limitation", "highlight"]
Decision = Literal["continue", "pivot"]


def iso(t: float | None) -> str:
    """Returns a UTC time as ISO 8601 to the second ('' for None)."""
    if t is None:
        return ""
    return dt.datetime.fromtimestamp(t, dt.UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Artifact:
    """A file a run stored: its name within the run, kind, content hash and size."""

    run_id: int
    name: str
    kind: str  # 'result', 'tensors', 'figure', 'inputs', 'examples', 'file'
    sha256: str
    bytes: int


@dataclass(frozen=True)
class RunRecord:
    """One recorded run: what ran, on what, with which code, when, how it ended, what it found."""

    id: int
    technique: str
    status: Status
    started: float
    ended: float | None
    heartbeat: float
    pid: int
    host: str
    config: dict[str, Any]
    model_name: str | None
    model_sha256: str | None
    model: dict[str, Any]
    versions: dict[str, str]
    git_commit: str | None
    git_dirty: bool | None
    cwd: str | None
    command: str | None
    seed: int | None
    data_sha256: str | None
    summary: dict[str, Any] | None  # filled by `Project.run`; listings leave it None
    summary_error: str | None
    n_tests: int | None
    error: str | None
    sprint_id: int | None
    rerun_of: int | None
    label: str | None
    headline: Headline | None  # the summary's most extreme cell, also in listings
    artifacts: tuple[Artifact, ...] = ()  # filled by `Project.run`; listings leave it empty

    @property
    def duration(self) -> float | None:
        """Seconds from start to end (None while running)."""
        return None if self.ended is None else self.ended - self.started

    def artifact(self, kind: str) -> Artifact | None:
        """Returns the run's first artifact of this kind, or None."""
        return next((a for a in self.artifacts if a.kind == kind), None)


_COLUMNS = (
    "id, technique, status, started, ended, heartbeat, pid, host, config, model_name, "
    "model_sha256, model, versions, git_commit, git_dirty, cwd, command, seed, data_sha256, "
    "{summary}, summary_error, n_tests, error, sprint_id, rerun_of, label, headline"
)


def run_columns(*, summary: bool) -> str:
    """Returns the SELECT list `run_from_row` reads; without the summary for listings."""
    return _COLUMNS.format(summary="summary" if summary else "NULL")


_DECODE = json.JSONDecoder().raw_decode  # skips loads' whitespace checks: the store wrote it


def _json(text: str | None) -> Any:
    return None if text is None else _DECODE(text)[0]


def run_from_row(
    row: sqlite3.Row | tuple[Any, ...], artifacts: tuple[Artifact, ...] = ()
) -> RunRecord:
    """Returns the record of a row selected with `run_columns`."""
    r = tuple(row)
    return RunRecord(
        id=r[0],
        technique=r[1],
        status=r[2],
        started=r[3],
        ended=r[4],
        heartbeat=r[5],
        pid=r[6],
        host=r[7],
        config=_json(r[8]) or {},
        model_name=r[9],
        model_sha256=r[10],
        model=_json(r[11]) or {},
        versions=_json(r[12]) or {},
        git_commit=r[13],
        git_dirty=None if r[14] is None else bool(r[14]),
        cwd=r[15],
        command=r[16],
        seed=r[17],
        data_sha256=r[18],
        summary=_json(r[19]),
        summary_error=r[20],
        n_tests=r[21],
        error=r[22],
        sprint_id=r[23],
        rerun_of=r[24],
        label=r[25],
        headline=headline_from_json(r[26]),
        artifacts=artifacts,
    )


@dataclass(frozen=True)
class Note:
    """A timestamped entry of the log: a note, a limitation, or a highlight (a starred run or
    artifact with a comment)."""

    id: int
    created: float
    kind: NoteKind
    text: str
    run_id: int | None
    artifact_sha256: str | None
    sprint_id: int | None


@dataclass(frozen=True)
class Hypothesis:
    """A claim written before the evidence, chained by hash to the one before it.

    ``sha256`` hashes the previous hypothesis's hash, the creation time (``created_iso``, to the
    microsecond) and the text, so an edited text or time breaks the chain (`Project.verify`)."""

    id: int
    created: float
    created_iso: str
    text: str
    previous: str
    sha256: str
    sprint_id: int | None
    status: HypothesisStatus
    status_note: str | None


@dataclass(frozen=True)
class Link:
    """A run counted as evidence on a hypothesis; pre-registered when the hypothesis is older
    than the run's start, post hoc otherwise."""

    hypothesis_id: int
    run_id: int
    linked: float
    preregistered: bool


@dataclass(frozen=True)
class Finding:
    """Something I believe is true: the claim, its evidence runs, how confident, what would
    change my mind, and the family its p-values are corrected over."""

    id: int
    created: float
    claim: str
    confidence: float
    change_my_mind: str
    family: str | None
    correction: Literal["holm", "bh"]
    sprint_id: int | None
    evidence: tuple[int, ...]


@dataclass(frozen=True)
class Sprint:
    """A one- to two-week stretch of work and its post-mortem."""

    id: int
    name: str
    goal: str
    started: float
    ended: float | None
    tried: str | None
    worked: str | None
    differently: str | None
    decision: Decision | None


__all__ = [
    "HYPOTHESIS_STATUSES",
    "STATUSES",
    "Artifact",
    "Decision",
    "Finding",
    "Hypothesis",
    "HypothesisStatus",
    "Link",
    "Note",
    "NoteKind",
    "RunRecord",
    "Sprint",
    "Status",
    "iso",
    "run_columns",
    "run_from_row",
]
