"""Running a sweep's tasks on a backend, with each finished task checkpointed.

1. The caller cuts the work into tasks and names them by a fingerprint (model weights, config,
   data hash and the task list): the checkpoint folder is ``<checkpoint>/<hash>/``.
2. Tasks already there (``task-00012.pt``, written atomically when it finished) are loaded, and
   only the missing ones go to the backend; a sweep stopped by Ctrl-C, a kill or a lost cluster
   computes on restart what it had not yet done.
3. Each result is written the moment it arrives, then counted on the progress bar.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from interplab.data.cache import atomic_write, atomic_write_text
from interplab.distributed.backend import Backend
from interplab.progress import progress_bar


@dataclass(frozen=True)
class TaskRun:
    """Every task's result in task order, and which tasks ran now or came from the checkpoint."""

    results: list[Any]
    computed: list[int]
    loaded: list[int]
    folder: Path | None


def fingerprint_hash(fingerprint: dict[str, Any]) -> str:
    """Returns a short stable hash of a JSON-able fingerprint."""
    text = json.dumps(fingerprint, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def run_tasks(
    backend: Backend,
    job: str,
    shared: Any,
    tasks: Sequence[Any],
    *,
    fingerprint: dict[str, Any],
    checkpoint: str | Path | None = None,
    label: str = "tasks",
    progress: bool = True,
) -> TaskRun:
    """Returns every task's result, loading finished ones from ``checkpoint`` and saving each new
    one there as it arrives (results are tensors, or lists and dicts of tensors and numbers)."""
    folder = None if checkpoint is None else Path(checkpoint) / fingerprint_hash(fingerprint)
    results: list[Any] = [None] * len(tasks)
    loaded: list[int] = []
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        manifest = folder / "fingerprint.json"
        if not manifest.exists():
            atomic_write_text(manifest, json.dumps(fingerprint, indent=1, default=str))
        for i in range(len(tasks)):
            path = _task_path(folder, i)
            if path.exists():
                results[i] = torch.load(path, weights_only=True)
                loaded.append(i)
    missing = [i for i in range(len(tasks)) if i not in set(loaded)]
    with progress_bar(len(tasks), label, progress) as advance:
        advance(len(loaded))

        def done(j: int, result: Any) -> None:
            i = missing[j]
            if folder is not None:
                atomic_write(_task_path(folder, i), lambda f: torch.save(result, f))
            results[i] = result
            advance(1)

        if missing:
            backend.map(job, shared, [tasks[i] for i in missing], done)
    return TaskRun(results, missing, loaded, folder)


def _task_path(folder: Path, i: int) -> Path:
    return folder / f"task-{i:05d}.pt"


__all__ = ["TaskRun", "fingerprint_hash", "run_tasks"]
