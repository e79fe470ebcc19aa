"""Recording a run: a row written when it starts, finished with its result, never left ambiguous.

1. Start: one transaction inserts the run as ``running`` with the technique, config, model and
   weights hash, seed, data hash, library versions, working directory, command, process id,
   host and a heartbeat; it joins the open sprint and the hypotheses named by `evidence_for`. A
   background ``git status`` starts (`capture.GitProbe`), and a heartbeat thread refreshes the
   row every `HEARTBEAT_S` seconds from its own connection.
2. Finish: the artifacts are written first (the result as JSON by the results codec, tensors as
   safetensors, figures, examples, inputs, and the call itself for `rerun`: `calls`), then one
   transaction marks the run ``done`` with its end time, git state, what the result's
   provenance adds, and the artifact rows.
3. An exception marks the run ``failed`` with the error; Ctrl-C (or any non-``Exception``
   interruption) marks it ``interrupted``; the exception goes on to the caller either way.
4. A process killed outright cannot write anything: its row stays ``running`` until
   `mark_stale` sees that the process is gone (same host: its pid no longer exists; any host:
   no heartbeat for `STALE_AFTER_S` seconds) and marks it ``interrupted``.

The summary (``result.summary()``, a bootstrap that can take seconds) is not computed here:
`Project.summary` computes it from the stored result when first asked and keeps it. Pass
``summary=`` to `RunHandle.finish` when it is already at hand. Recording inside a recorded run
records nothing more (the outer run owns the work).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any

from interplab import progress
from interplab.provenance import data_hash, jsonable
from interplab.store import artifacts as files
from interplab.store import capture
from interplab.store.calls import EncodedCall
from interplab.store.db import StoreError, connect, transaction
from interplab.store.summaries import headline_json

if TYPE_CHECKING:
    from interplab.store.project import Project

HEARTBEAT_S = 30.0
PROGRESS_S = 2.0
"""How often a running run's progress is written while it changes."""
STALE_AFTER_S = 300.0
"""A running run whose heartbeat is older than this is taken as dead, whatever its host."""

_ACTIVE: ContextVar[RunHandle | None] = ContextVar("interplab_store_active", default=None)
_EVIDENCE_FOR: ContextVar[tuple[int, ...]] = ContextVar("interplab_store_evidence_for", default=())


def enabled(record: bool | None = None) -> bool:
    """Returns whether to record: the ``record`` argument if given, else ``INTERPLAB_RECORD``
    (``0``, ``false``, ``no`` or ``off`` switch recording off)."""
    if record is not None:
        return bool(record)
    return os.environ.get("INTERPLAB_RECORD", "1").strip().lower() not in (
        "0",
        "false",
        "no",
        "off",
    )


def active() -> RunHandle | None:
    """Returns the run being recorded in this context, if any."""
    return _ACTIVE.get()


@contextmanager
def evidence_for(*hypotheses: int) -> Iterator[None]:
    """Links every run recorded inside the block to these hypotheses (ids)."""
    token = _EVIDENCE_FOR.set((*_EVIDENCE_FOR.get(), *(int(h) for h in hypotheses)))
    try:
        yield
    finally:
        _EVIDENCE_FOR.reset(token)


@contextmanager
def suppressed() -> Iterator[RunHandle]:
    """Records nothing inside the block, not even a recorded function called in it (a call with
    ``record=False``, a run already being recorded); yields a handle that records nothing."""
    handle = RunHandle(None, None)
    token = _ACTIVE.set(_ACTIVE.get() or handle)  # inside a recorded run, that run stays active
    try:
        yield handle
    finally:
        _ACTIVE.reset(token)


def _model_dict(model_info: Any) -> dict[str, Any]:
    if model_info is None:
        return {}
    if isinstance(model_info, Mapping):
        return dict(jsonable(dict(model_info)))
    to_dict = getattr(model_info, "to_dict", None)
    if callable(to_dict):
        return dict(jsonable(to_dict()))
    return {"name": str(model_info)}


def _config_dict(config: Any) -> dict[str, Any]:
    if config is None:
        return {}
    to_dict = getattr(config, "to_dict", None)
    plain = jsonable(to_dict() if callable(to_dict) else config)
    return plain if isinstance(plain, dict) else {"value": plain}


class _Heartbeat(threading.Thread):
    """Writes the run's heartbeat every `HEARTBEAT_S` and its progress (the latest progress bar
    any code in the run drew, heard through `interplab.progress.listen`) at most every
    `PROGRESS_S` while it changes."""

    def __init__(self, project: Project, run_id: int) -> None:
        super().__init__(name=f"interplab-heartbeat-{run_id}", daemon=True)
        self._db, self._run, self._stop = project.location.db, run_id, threading.Event()
        self._progress: tuple[str, int, int] | None = None
        self._remove = progress.listen(self._heard)

    def _heard(self, description: str, done: int, total: int) -> None:
        self._progress = (description, done, total)

    def run(self) -> None:
        conn = None
        written: tuple[str, int, int] | None = None
        beat = time.monotonic()
        try:
            while not self._stop.wait(PROGRESS_S):
                now = time.monotonic()
                latest = self._progress
                due = now - beat >= HEARTBEAT_S
                if latest == written and not due:
                    continue
                conn = conn or connect(self._db)
                with transaction(conn, self._db):
                    if latest != written and latest is not None:
                        conn.execute(
                            "UPDATE runs SET progress = ?, heartbeat = ? WHERE id = ? AND "
                            "status = 'running'",
                            (json.dumps(list(latest)), time.time(), self._run),
                        )
                        written = latest
                    else:
                        conn.execute(
                            "UPDATE runs SET heartbeat = ? WHERE id = ? AND status = 'running'",
                            (time.time(), self._run),
                        )
                beat = now
        except StoreError:
            pass  # a busy or vanished store: the run's own writes will say so
        finally:
            if conn is not None:
                conn.close()

    def stop(self) -> None:
        self._remove()
        self._stop.set()


class RunHandle:
    """The run being recorded: `finish` it with its result; `add` stores extra files."""

    def __init__(self, project: Project | None, run_id: int | None) -> None:
        self.project, self.id = project, run_id
        self.result: Any = None
        self._pending: list[tuple[str, str, files.Stored]] = []
        self._update: dict[str, Any] = {}
        self._finished = False

    @property
    def recording(self) -> bool:
        """Whether this run is being written to a store (False when recording is off)."""
        return self.project is not None

    def add(self, name: str, data: bytes | str | Path, kind: str = "file") -> None:
        """Stores bytes or a file as an artifact of this run under ``name``."""
        if self.project is None:
            return
        folder = self.project.location.artifacts
        stored = (
            files.put_bytes(folder, data)
            if isinstance(data, bytes)
            else files.put_file(folder, data)
        )
        self._pending.append((name, kind, stored))

    def finish(
        self,
        result: Any,
        *,
        summary: Any = None,
        tensors: Mapping[str, Any] | None = None,
        figures: Sequence[str | Path] | Mapping[str, str | Path | bytes] | None = None,
        examples: Sequence[Any] | None = None,
    ) -> Any:
        """Stores the result (JSON), its summary if given, tensors, figures and examples;
        returns ``result``. The run is marked done when the block ends."""
        self.result = result
        self._finished = True
        if self.project is None:
            return result
        folder = self.project.location.artifacts
        if result is not None and callable(getattr(result, "to_json", None)):
            self._pending.append(("result.json", "result", files.put_result(folder, result)))
            self._update.update(_from_provenance(getattr(result, "provenance", None)))
        if summary is not None:
            d = summary.to_dict() if callable(getattr(summary, "to_dict", None)) else summary
            self._update["summary"] = json.dumps(jsonable(d))
            self._update["n_tests"] = d.get("n_tests")
            self._update["headline"] = headline_json(d)
        if tensors:
            self._pending.append(
                ("tensors.safetensors", "tensors", files.put_tensors(folder, dict(tensors)))
            )
        if figures:
            items = (
                figures.items()
                if isinstance(figures, Mapping)
                else ((Path(p).name, p) for p in figures)
            )
            for name, fig in items:
                data = fig if isinstance(fig, bytes) else Path(fig)
                self.add(str(name), data, "figure")
        if examples is not None:
            text = json.dumps(jsonable(list(examples)), indent=1).encode()
            self._pending.append(("examples.json", "examples", files.put_bytes(folder, text)))
        return result


def _from_provenance(prov: Any) -> dict[str, Any]:
    """Returns the run columns a result's provenance fills (those not given at start)."""
    if prov is None:
        return {}
    d = prov.to_dict() if callable(getattr(prov, "to_dict", None)) else dict(prov)
    model = d.get("model") or {}
    return {
        "config": json.dumps(jsonable(d.get("config") or {})),
        "model": json.dumps(jsonable(model)),
        "model_name": model.get("name"),
        "model_sha256": model.get("weights_sha256"),
        "seed": d.get("seed"),
        "data_sha256": d.get("data_sha256"),
        "versions": json.dumps(d.get("versions") or capture.versions()),
        "command": d.get("command"),
    }


def _start(project: Project, technique: str, given: dict[str, Any]) -> int:
    now = time.time()
    with project.write() as conn:
        cur = conn.execute(
            "INSERT INTO runs (technique, status, started, heartbeat, pid, host, config, "
            "model_name, model_sha256, model, versions, cwd, command, seed, data_sha256, label, "
            "sprint_id) VALUES (?, 'running', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
            "(SELECT id FROM sprints WHERE ended IS NULL ORDER BY id DESC LIMIT 1))",
            (
                technique,
                now,
                now,
                os.getpid(),
                capture.host(),
                given["config"],
                given["model_name"],
                given["model_sha256"],
                given["model"],
                json.dumps(capture.versions()),
                capture.cwd(),
                capture.command(),
                given["seed"],
                given["data_sha256"],
                given["label"],
            ),
        )
        run_id = int(cur.lastrowid or 0)
        for h in dict.fromkeys(_EVIDENCE_FOR.get()):
            project.link_in(conn, h, run_id, started=now)
    return run_id


@contextmanager
def record(
    project: Project | None,
    technique: str,
    *,
    config: Any = None,
    model_info: Any = None,
    seed: int | None = None,
    data_sha256: str | None = None,
    inputs: Any = None,
    label: str | None = None,
    call: EncodedCall | None = None,
) -> Iterator[RunHandle]:
    """Records the block as one run of ``technique`` in ``project`` (None or a nested call:
    a handle that records nothing); ``call`` is the function call to store for `rerun`."""
    if project is None or _ACTIVE.get() is not None:
        with suppressed() as handle:
            yield handle
        return
    model = _model_dict(model_info)
    derived = data_sha256 is None and inputs is not None
    if derived:
        data_sha256 = data_hash(inputs)
    given = {
        "config": json.dumps(_config_dict(config)),
        "model": json.dumps(model),
        "model_name": model.get("name"),
        "model_sha256": model.get("weights_sha256"),
        "seed": seed,
        "data_sha256": data_sha256,
        "label": label,
    }
    run_id = _start(project, technique, given)
    # What the caller left out, the result's provenance fills (it knows best what ran).
    fillable = {k for k, v in given.items() if v in (None, "{}")} | (
        {"data_sha256"} if derived else set()
    )
    cwd = capture.cwd()
    git = capture.GitProbe(Path(cwd) if cwd else None)
    beat = _Heartbeat(project, run_id)
    beat.start()
    handle = RunHandle(project, run_id)
    token = _ACTIVE.set(handle)
    status, error = "done", None
    try:
        yield handle
    except Exception as e:
        status, error = "failed", f"{type(e).__name__}: {e}"
        raise
    except BaseException as e:
        status, error = "interrupted", f"{type(e).__name__}: {e}".rstrip(": ")
        raise
    finally:
        _ACTIVE.reset(token)
        beat.stop()
        folder = project.location.artifacts
        if inputs is not None:
            text = json.dumps(jsonable(inputs)).encode()
            handle._pending.append(("inputs.json", "inputs", files.put_bytes(folder, text)))
        if call is not None:
            handle._pending.append(("call.json", "call", files.put_bytes(folder, call.json_bytes)))
            if call.tensor_bytes is not None:
                stored = files.put_bytes(folder, call.tensor_bytes)
                handle._pending.append(("call.safetensors", "call-arrays", stored))
        if status == "done" and not handle._finished:
            error = "the block ended without run.finish(result): no result stored"
        _end(project, handle, status, error, git.result(), fillable)


def _end(
    project: Project,
    handle: RunHandle,
    status: str,
    error: str | None,
    git: capture.GitState,
    fillable: set[str],
) -> None:
    columns: dict[str, Any] = {
        "status": status,
        "ended": time.time(),
        "error": error,
        "git_commit": git.commit,
        "git_dirty": None if git.dirty is None else int(git.dirty),
    }
    for key, value in handle._update.items():
        if key in ("summary", "n_tests", "headline", "versions", "command") or (
            key in fillable and value is not None
        ):
            columns[key] = value
    sets = ", ".join(f"{k} = ?" for k in columns)
    with project.write() as conn:
        conn.execute(f"UPDATE runs SET {sets} WHERE id = ?", (*columns.values(), handle.id))
        conn.executemany(
            "INSERT OR REPLACE INTO artifacts (run_id, name, kind, sha256, bytes) VALUES (?, ?, ?, ?, ?)",
            [(handle.id, n, k, s.sha256, s.bytes) for n, k, s in handle._pending],
        )


def mark_stale(project: Project, stale_after: float = STALE_AFTER_S) -> list[int]:
    """Marks as interrupted every running run whose process is gone; returns their ids."""
    with project.read() as conn:
        rows = conn.execute(
            "SELECT id, pid, host, heartbeat FROM runs WHERE status = 'running'"
        ).fetchall()
    now, here, stale = time.time(), capture.host(), []
    for run_id, pid, host, heartbeat in rows:
        gone = host == here and pid != os.getpid() and not capture.pid_alive(pid)
        if gone or now - heartbeat > stale_after:
            why = "its process is gone" if gone else f"no heartbeat for {now - heartbeat:.0f} s"
            stale.append((run_id, heartbeat, f"interrupted: {why} (pid {pid} on {host})"))
    if stale:
        with project.write() as conn:
            conn.executemany(
                "UPDATE runs SET status = 'interrupted', ended = ?, error = ? "
                "WHERE id = ? AND status = 'running'",
                [(beat, why, run_id) for run_id, beat, why in stale],
            )
    return [run_id for run_id, _, _ in stale]


__all__ = [
    "HEARTBEAT_S",
    "STALE_AFTER_S",
    "RunHandle",
    "active",
    "enabled",
    "evidence_for",
    "mark_stale",
    "record",
    "suppressed",
]
