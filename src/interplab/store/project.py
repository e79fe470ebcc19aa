"""A research project: its recorded runs and its log, from Python (`Project`).

    from interplab.store import Project
    project = Project.open()                        # --project / INTERPLAB_PROJECT / folder / default
    with project.recording("my_sweep", config=cfg, model_info=model.info, seed=0) as run:
        run.finish(my_sweep(model, prompts, cfg))
    project.runs(technique="my_sweep")              # newest first
    h = project.hypothesis("L9 heads move the name")
    project.link(h.id, run.id)                      # pre-registered: H was older than the run

1. Opening checks the file and migrates an older schema (`db.open_checked`).
2. Every read and write goes through one connection guarded by a lock, writes as ``BEGIN
   IMMEDIATE`` transactions; other processes write the same file concurrently (WAL).
3. The research log (notes, hypotheses, findings, sprints, family corrections) lives in
   `log.py`, `findings.py` and `family.py` as functions of a project; `Project` binds them as
   methods, so one object answers everything.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

from interplab.store import artifacts as files
from interplab.store import db
from interplab.store import family as _family
from interplab.store import findings as _findings
from interplab.store import log as _log
from interplab.store import recording as _recording
from interplab.store import rerun as _rerun
from interplab.store.calls import EncodedCall, StoredCall, read_call
from interplab.store.compare import RunDiff, diff_runs
from interplab.store.location import Location, init, resolve
from interplab.store.records import (
    STATUSES,
    Artifact,
    RunRecord,
    run_columns,
    run_from_row,
)
from interplab.store.summaries import headline_json


class Project:
    """An open project store: runs, artifacts and the research log of one folder."""

    def __init__(self, location: Location) -> None:
        self.location = location
        self._conn = db.open_checked(location.db)
        self._lock = threading.RLock()
        location.artifacts.mkdir(parents=True, exist_ok=True)

    @classmethod
    def open(cls, project: str | Path | None = None, *, cwd: Path | None = None) -> Project:
        """Returns the project chosen by argument, ``INTERPLAB_PROJECT``, folder or default."""
        return cls(resolve(project, cwd=cwd))

    @classmethod
    def init(cls, folder: str | Path) -> Project:
        """Makes ``folder`` a project (kept as it is if it is one) and returns it open."""
        return cls(init(folder))

    @property
    def root(self) -> Path:
        return self.location.root

    def close(self) -> None:
        """Closes the connection (the last one closing folds the WAL into the database)."""
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Project:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Project({str(self.root)!r})"

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction on this project's database."""
        with self._lock, db.transaction(self._conn, self.location.db) as conn:
            yield conn

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """Reads on this project's database (SQLite errors become StoreErrors)."""
        with self._lock, db.translated(self.location.db):
            yield self._conn

    # -- recording ------------------------------------------------------------------------------

    def recording(
        self,
        technique: str,
        *,
        config: Any = None,
        model_info: Any = None,
        seed: int | None = None,
        data_sha256: str | None = None,
        inputs: Any = None,
        label: str | None = None,
        record: bool | None = None,
        call: EncodedCall | None = None,
    ) -> AbstractContextManager[_recording.RunHandle]:
        """Records the block as one run: ``with project.recording(...) as run: run.finish(r)``.

        ``config`` is a `Config` or dict; ``model_info`` a `ModelInfo` or dict (name,
        weights_sha256, ...); ``inputs`` (prompts, pairs) are stored so `rerun` can feed them
        again; ``call`` is a stored function call (`calls`). ``record=False`` (or
        ``INTERPLAB_RECORD=0``) records nothing."""
        return _recording.record(
            self if _recording.enabled(record) else None,
            technique,
            config=config,
            model_info=model_info,
            seed=seed,
            data_sha256=data_sha256,
            inputs=inputs,
            label=label,
            call=call,
        )

    # -- runs -----------------------------------------------------------------------------------

    def run(self, run_id: int) -> RunRecord:
        """Returns one run with its artifacts (after the stale check)."""
        _recording.mark_stale(self)
        with self.read() as conn:
            row = conn.execute(
                f"SELECT {run_columns(summary=True)} FROM runs WHERE id = ?", (int(run_id),)
            ).fetchone()
            if row is None:
                raise db.StoreError(f"no run {run_id} in {self.root}; `interplab runs` lists them")
            arts = conn.execute(
                "SELECT run_id, name, kind, sha256, bytes FROM artifacts WHERE run_id = ? ORDER BY rowid",
                (int(run_id),),
            ).fetchall()
        return run_from_row(row, tuple(Artifact(*a) for a in arts))

    def runs(
        self,
        *,
        technique: str | None = None,
        status: str | None = None,
        model: str | None = None,
        sprint: int | None = None,
        hypothesis: int | None = None,
        label: str | None = None,
        since: float | None = None,
        limit: int | None = None,
    ) -> list[RunRecord]:
        """Returns the runs matching every filter given, newest first (after the stale check)."""
        if status is not None and status not in STATUSES:
            raise db.StoreError(f"status {status!r} is not one of: {', '.join(STATUSES)}")
        _recording.mark_stale(self)
        where, args = [], []
        for column, value in (
            ("technique", technique),
            ("status", status),
            ("model_name", model),
            ("sprint_id", sprint),
            ("label", label),
        ):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        if since is not None:
            where.append("started >= ?")
            args.append(since)
        if hypothesis is not None:
            where.append("id IN (SELECT run_id FROM hypothesis_runs WHERE hypothesis_id = ?)")
            args.append(int(hypothesis))
        sql = f"SELECT {run_columns(summary=False)} FROM runs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with self.read() as conn:
            rows = conn.execute(sql, args).fetchall()
        return [run_from_row(r) for r in rows]

    def count_runs(self) -> int:
        """Returns how many runs the project holds."""
        with self.read() as conn:
            return int(conn.execute("SELECT count(*) FROM runs").fetchone()[0])

    def artifact_path(self, sha256: str) -> Path:
        """Returns the file of an artifact (read it, never write it)."""
        return files.path_of(self.location.artifacts, sha256)

    def result(self, run_id: int) -> Any:
        """Returns a run's result, read back from its stored JSON into its class."""
        from interplab.results import load

        art = self.run(run_id).artifact("result")
        if art is None:
            raise db.StoreError(f"run {run_id} stored no result")
        return load(self.artifact_path(art.sha256))

    def tensors(self, run_id: int) -> dict[str, Any]:
        """Returns a run's stored tensors as numpy arrays by name."""
        from safetensors.numpy import load_file

        art = self.run(run_id).artifact("tensors")
        return {} if art is None else load_file(str(self.artifact_path(art.sha256)))

    def stored_json(self, run_id: int, kind: str) -> Any:
        """Returns a run's JSON artifact of this kind ('result', 'inputs', 'examples'), or None."""
        art = self.run(run_id).artifact(kind)
        if art is None:
            return None
        return json.loads(self.artifact_path(art.sha256).read_text(encoding="utf-8"))

    def stored_call(self, run_id: int) -> StoredCall | None:
        """Returns the call a recorded function stored for `rerun`, or None (a run recorded with
        `recording`, or before calls were stored)."""
        rec = self.run(run_id)
        art, arrays = rec.artifact("call"), rec.artifact("call-arrays")
        if art is None:
            return None
        return read_call(
            self.artifact_path(art.sha256).read_bytes(),
            None if arrays is None else self.artifact_path(arrays.sha256).read_bytes(),
        )

    def summary(self, run_id: int) -> dict[str, Any] | None:
        """Returns a run's summary (``result.summary().to_dict()``), computing it from the stored
        result the first time and keeping it; None when the result has none (``summary_error``
        says why) or its result type cannot be read in this process."""
        rec = self.run(run_id)
        if rec.summary is not None or rec.summary_error is not None:
            return rec.summary
        if rec.artifact("result") is None:
            return None
        from interplab.results import ResultError

        try:
            result = self.result(run_id)
        except ResultError:
            return None  # its result type is not importable in this process: nothing to keep
        try:
            summary, error = result.summary().to_dict(), None
        except (ValueError, TypeError) as e:
            summary, error = None, f"{type(e).__name__}: {e}"
        with self.write() as conn:
            conn.execute(
                "UPDATE runs SET summary = ?, n_tests = ?, summary_error = ?, headline = ? "
                "WHERE id = ?",
                (
                    None if summary is None else json.dumps(summary),
                    None if summary is None else summary.get("n_tests"),
                    error,
                    headline_json(summary),
                    int(run_id),
                ),
            )
        return summary

    def diff(self, a: int, b: int) -> RunDiff:
        """Returns two runs' differences: setup, config, and summary numbers."""
        ra, rb = self.run(a), self.run(b)
        return diff_runs(ra, rb, self.summary(a), self.summary(b))

    rerun = _rerun.rerun

    def mark_stale(self, stale_after: float = _recording.STALE_AFTER_S) -> list[int]:
        """Marks runs whose process died as interrupted; returns their ids."""
        return _recording.mark_stale(self, stale_after)

    def check(self) -> list[str]:
        """Returns the problems found: SQLite's integrity check and every artifact's hash."""
        with self.read() as conn:
            problems = [r[0] for r in conn.execute("PRAGMA integrity_check") if r[0] != "ok"]
            shas = [r[0] for r in conn.execute("SELECT DISTINCT sha256 FROM artifacts")]
        problems += [p for p in (files.verify(self.location.artifacts, s) for s in shas) if p]
        return problems + self.verify()

    # -- the research log (log.py, findings.py, family.py) ---------------------------------------

    note = _log.note
    highlight = _log.highlight
    notes = _log.notes
    hypothesis = _log.hypothesis
    hypotheses = _log.hypotheses
    get_hypothesis = _log.get_hypothesis
    set_status = _log.set_status
    link = _log.link
    link_in = _log.link_in
    links = _log.links
    verify = _log.verify
    finding = _findings.finding
    findings = _findings.findings
    get_finding = _findings.get_finding
    add_evidence = _findings.add_evidence
    correct = _findings.correct
    correct_family = _family.correct_family
    sprint_start = _findings.sprint_start
    sprint_end = _findings.sprint_end
    sprints = _findings.sprints
    current_sprint = _findings.current_sprint
    get_sprint = _findings.get_sprint
    sprint_stats = _findings.sprint_stats


__all__ = ["Project"]
