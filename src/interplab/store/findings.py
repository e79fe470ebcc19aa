"""Findings and sprints: what I believe and why, and the stretches of work that produced it.

1. A finding is a claim with its evidence runs, a confidence (0 to 1), what would change my
   mind, and the family of tests its p-values are corrected over (`family.py`): by default
   its own evidence runs, or a family the user names, e.g. ``H3`` (every run linked to
   hypothesis 3) or ``S2`` (every run of sprint 2).
2. A sprint is opened with a name and a goal; runs, notes, hypotheses and findings made while it
   is open belong to it. Closing it asks the post-mortem questions (`POSTMORTEM`) and a decision,
   continue or pivot.
3. `sprint_stats` counts what a sprint tested: hypotheses, runs, pre-registered and post hoc
   evidence, and cells tested (the sum of each summary's ``n_tests``), the denominator a reader
   needs to judge how many of a sprint's findings chance alone would produce.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from interplab.store.db import StoreError
from interplab.store.records import Decision, Finding, Sprint

if TYPE_CHECKING:
    from interplab.store.family import FamilyCorrection
    from interplab.store.project import Project

POSTMORTEM: tuple[tuple[str, str], ...] = (
    ("tried", "What did I try?"),
    ("worked", "What worked, and what did I learn?"),
    ("differently", "What would I do differently?"),
    ("decision", "Continue or pivot?"),
)
"""The post-mortem template: each sprint field and the question it answers."""


@dataclass(frozen=True)
class SprintStats:
    """What a sprint tested: the counts behind its findings."""

    sprint: Sprint
    runs: int
    runs_done: int
    runs_failed: int
    runs_interrupted: int
    hypotheses: int
    preregistered_links: int
    post_hoc_links: int
    cells_tested: int
    runs_without_summary: int
    findings: int
    notes: int


def _open_sprint(conn: sqlite3.Connection) -> int | None:
    row = conn.execute(
        "SELECT id FROM sprints WHERE ended IS NULL ORDER BY id DESC LIMIT 1"
    ).fetchone()
    return None if row is None else int(row[0])


def finding(
    project: Project,
    claim: str,
    *,
    evidence: Sequence[int],
    confidence: float,
    change_my_mind: str,
    family: str | None = None,
    correction: Literal["holm", "bh"] = "holm",
) -> Finding:
    """Records something I believe is true, with its evidence runs; returns it."""
    from interplab.store.family import parse_family

    claim, change_my_mind = claim.strip(), change_my_mind.strip()
    if not claim:
        raise StoreError("a finding needs a claim")
    if not change_my_mind:
        raise StoreError("a finding needs what would change my mind (--change-my-mind)")
    if not 0.0 <= float(confidence) <= 1.0:
        raise StoreError(f"confidence is a probability between 0 and 1, got {confidence!r}")
    if correction not in ("holm", "bh"):
        raise StoreError(f"correction {correction!r} is not one of: holm, bh")
    runs = list(dict.fromkeys(int(r) for r in evidence))
    if not runs:
        raise StoreError("a finding needs at least one evidence run (--run)")
    for r in runs:
        project.run(r)
    if family is not None:
        parse_family(family)  # raises for a family that does not parse
    with project.write() as conn:
        now = time.time()
        sprint = _open_sprint(conn)
        cur = conn.execute(
            "INSERT INTO findings (created, claim, confidence, change_my_mind, family, correction, "
            "sprint_id) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (now, claim, float(confidence), change_my_mind, family, correction, sprint),
        )
        fid = int(cur.lastrowid or 0)
        conn.executemany(
            "INSERT INTO finding_runs (finding_id, run_id) VALUES (?, ?)", [(fid, r) for r in runs]
        )
    return Finding(
        fid, now, claim, float(confidence), change_my_mind, family, correction, sprint, tuple(runs)
    )


def findings(project: Project, *, sprint: int | None = None) -> list[Finding]:
    """Returns the findings, oldest first, each with its evidence runs."""
    sql = (
        "SELECT id, created, claim, confidence, change_my_mind, family, correction, sprint_id "
        "FROM findings"
    )
    args: list[int] = []
    if sprint is not None:
        sql += " WHERE sprint_id = ?"
        args.append(int(sprint))
    with project.read() as conn:
        rows = conn.execute(sql + " ORDER BY id", args).fetchall()
        evidence: dict[int, list[int]] = {}
        for fid, rid in conn.execute("SELECT finding_id, run_id FROM finding_runs ORDER BY run_id"):
            evidence.setdefault(fid, []).append(rid)
    return [Finding(*r, evidence=tuple(evidence.get(r[0], ()))) for r in rows]


def get_finding(project: Project, finding_id: int) -> Finding:
    """Returns one finding."""
    found = [f for f in findings(project) if f.id == int(finding_id)]
    if not found:
        raise StoreError(f"no finding F{finding_id}; `interplab finding list` lists them")
    return found[0]


def add_evidence(project: Project, finding_id: int, runs: Sequence[int]) -> Finding:
    """Adds evidence runs to a finding; returns it."""
    get_finding(project, finding_id)
    for r in runs:
        project.run(r)
    with project.write() as conn:
        conn.executemany(
            "INSERT OR IGNORE INTO finding_runs (finding_id, run_id) VALUES (?, ?)",
            [(int(finding_id), int(r)) for r in runs],
        )
    return get_finding(project, finding_id)


def correct(project: Project, finding_id: int, *, alpha: float = 0.05) -> FamilyCorrection:
    """Returns the finding's evidence corrected over its family (its own runs by default)."""
    from interplab.store.family import correct_family

    f = get_finding(project, finding_id)
    family = f.family or "runs:" + ",".join(str(r) for r in f.evidence)
    return correct_family(project, family, method=f.correction, alpha=alpha, runs=f.evidence)


# -- sprints ------------------------------------------------------------------------------------

_SPRINT_COLUMNS = "id, name, goal, started, ended, tried, worked, differently, decision"


def sprints(project: Project) -> list[Sprint]:
    """Returns every sprint, oldest first."""
    with project.read() as conn:
        return [
            Sprint(*r) for r in conn.execute(f"SELECT {_SPRINT_COLUMNS} FROM sprints ORDER BY id")
        ]


def current_sprint(project: Project) -> Sprint | None:
    """Returns the open sprint, if one is open."""
    open_ = [s for s in sprints(project) if s.ended is None]
    return open_[-1] if open_ else None


def get_sprint(project: Project, sprint_id: int | None = None) -> Sprint:
    """Returns a sprint by id (the open one, or else the latest, when None)."""
    all_ = sprints(project)
    if sprint_id is None:
        if not all_:
            raise StoreError("no sprint yet; start one with `interplab sprint start NAME`")
        return current_sprint(project) or all_[-1]
    found = [s for s in all_ if s.id == int(sprint_id)]
    if not found:
        raise StoreError(f"no sprint S{sprint_id}; `interplab sprint list` lists them")
    return found[0]


def sprint_start(project: Project, name: str, goal: str = "") -> Sprint:
    """Opens a sprint (one at a time): what follows belongs to it until it ends."""
    name = name.strip()
    if not name:
        raise StoreError("a sprint needs a name")
    with project.write() as conn:
        open_id = _open_sprint(conn)
        if open_id is not None:
            raise StoreError(f"sprint S{open_id} is still open; end it with `interplab sprint end`")
        now = time.time()
        cur = conn.execute(
            "INSERT INTO sprints (name, goal, started) VALUES (?, ?, ?)", (name, goal.strip(), now)
        )
    return Sprint(int(cur.lastrowid or 0), name, goal.strip(), now, None, None, None, None, None)


def sprint_end(
    project: Project, *, tried: str, worked: str, differently: str, decision: Decision
) -> Sprint:
    """Closes the open sprint with its post-mortem (`POSTMORTEM`) and the decision."""
    if decision not in ("continue", "pivot"):
        raise StoreError(f"decision {decision!r} is not one of: continue, pivot")
    answers = {"tried": tried.strip(), "worked": worked.strip(), "differently": differently.strip()}
    missing = [q for key, q in POSTMORTEM if key in answers and not answers[key]]
    if missing:
        raise StoreError("the post-mortem needs every answer; missing: " + "; ".join(missing))
    with project.write() as conn:
        open_id = _open_sprint(conn)
        if open_id is None:
            raise StoreError("no sprint is open; start one with `interplab sprint start NAME`")
        conn.execute(
            "UPDATE sprints SET ended = ?, tried = ?, worked = ?, differently = ?, decision = ? "
            "WHERE id = ?",
            (
                time.time(),
                answers["tried"],
                answers["worked"],
                answers["differently"],
                decision,
                open_id,
            ),
        )
    return get_sprint(project, open_id)


def sprint_stats(
    project: Project, sprint_id: int | None = None, *, compute: bool = True
) -> SprintStats:
    """Returns what a sprint tested; ``compute`` first summarises runs not yet summarised, so
    ``cells_tested`` counts every finished run."""
    sprint = get_sprint(project, sprint_id)
    runs = project.runs(sprint=sprint.id)
    tested, unsummarised = 0, 0
    for r in runs:
        n = r.n_tests
        if n is None and compute and r.status == "done" and r.summary_error is None:
            s = project.summary(r.id)
            n = None if s is None else s.get("n_tests")
        if n is None:
            unsummarised += 1
        else:
            tested += int(n)
    with project.read() as conn:

        def count(sql: str) -> int:
            return int(conn.execute(sql, (sprint.id,)).fetchone()[0])

        hyps = count("SELECT count(*) FROM hypotheses WHERE sprint_id = ?")
        pre = count(
            "SELECT count(*) FROM hypothesis_runs JOIN runs ON runs.id = run_id "
            "WHERE runs.sprint_id = ? AND preregistered = 1"
        )
        post = count(
            "SELECT count(*) FROM hypothesis_runs JOIN runs ON runs.id = run_id "
            "WHERE runs.sprint_id = ? AND preregistered = 0"
        )
        n_findings = count("SELECT count(*) FROM findings WHERE sprint_id = ?")
        n_notes = count("SELECT count(*) FROM notes WHERE sprint_id = ?")
    by_status = {s: sum(r.status == s for r in runs) for s in ("done", "failed", "interrupted")}
    return SprintStats(
        sprint=sprint,
        runs=len(runs),
        runs_done=by_status["done"],
        runs_failed=by_status["failed"],
        runs_interrupted=by_status["interrupted"],
        hypotheses=hyps,
        preregistered_links=pre,
        post_hoc_links=post,
        cells_tested=tested,
        runs_without_summary=unsummarised,
        findings=n_findings,
        notes=n_notes,
    )


__all__ = [
    "POSTMORTEM",
    "SprintStats",
    "add_evidence",
    "correct",
    "current_sprint",
    "finding",
    "findings",
    "get_finding",
    "get_sprint",
    "sprint_end",
    "sprint_start",
    "sprint_stats",
    "sprints",
]
