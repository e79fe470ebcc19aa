"""Files the dashboard may read: a run's artifacts by name, and JSON files inside the project.

A viewer that takes file names from URLs must never serve a file outside the project. So:

1. A run's artifact is looked up by its name in the store's own rows (``run:12:graph.json``);
   the name in the URL only selects a row, and the file served is the content-addressed path
   the store computes from the row's sha256 (64 hex digits, checked).
2. A project file (``file:graphs/ioi.json``) is resolved (symlinks followed) and must lie inside
   the project folder and outside ``artifacts/``; anything else is refused as not found.
3. JSON is read with a size limit (`MAX_JSON_BYTES`) and parsed by ``json``; nothing from the
   store is ever executed (no pickle).
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from interplab.errors import UserError
from interplab.store import Artifact, Project, StoreError

MAX_JSON_BYTES = 64 * 1024 * 1024
"""The largest JSON file (result, graph, feature page) the dashboard parses."""

_SHA = re.compile(r"^[0-9a-f]{64}$")
_SKIP_DIRS = {"artifacts", ".git", "__pycache__", "node_modules", ".venv"}
_SCAN_DEPTH = 4
_SCAN_FILES = 5000
_SNIFF = 4096


class DashboardError(UserError):
    """A request the dashboard cannot answer: what was asked for, why not, and what is valid."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def not_found(message: str) -> DashboardError:
    return DashboardError(message, 404)


def run_artifact(project: Project, run_id: int, name: str) -> tuple[Artifact, Path]:
    """Returns a run's artifact by name and its file (which must exist)."""
    try:
        rec = project.run(run_id)
    except StoreError:
        raise not_found(f"no run {run_id} in this project") from None
    match = [a for a in rec.artifacts if a.name == name]
    if not match:
        names = ", ".join(a.name for a in rec.artifacts) or "none"
        raise not_found(f"run {run_id} has no artifact {name!r}; it has: {names}")
    art = match[0]
    if not _SHA.match(art.sha256):
        raise DashboardError(f"run {run_id}'s artifact {name!r} has a malformed hash", 500)
    path = project.artifact_path(art.sha256)
    if not path.is_file():
        raise not_found(
            f"the file of run {run_id}'s artifact {name!r} is missing from the artifacts folder "
            f"({art.sha256[:12]}…); `interplab runs check` lists every missing file"
        )
    return art, path


def project_file(project: Project, relative: str) -> Path:
    """Returns a file inside the project folder (not under ``artifacts/``), or raises 404."""
    root = project.root.resolve()
    if not relative or relative.startswith(("/", "\\")) or "\x00" in relative:
        raise not_found(f"no project file {relative!r}")
    try:
        path = (root / relative).resolve(strict=True)
    except (OSError, RuntimeError):
        raise not_found(f"no project file {relative!r}") from None
    if not path.is_relative_to(root) or path.is_relative_to(root / "artifacts"):
        raise not_found(f"no project file {relative!r}")
    if not path.is_file():
        raise not_found(f"no project file {relative!r}")
    return path


@dataclass(frozen=True)
class Source:
    """A JSON document the dashboard reads: where it is and how a URL names it."""

    key: str  # 'run:12:graph.json' or 'file:graphs/ioi.json'
    path: Path
    run_id: int | None
    name: str


def resolve(project: Project, key: str) -> Source:
    """Returns the source a URL names (``run:ID:NAME`` or ``file:RELATIVE``), checked."""
    kind, _, rest = key.partition(":")
    if kind == "run":
        run_text, _, name = rest.partition(":")
        if not run_text.isdigit() or not name:
            raise DashboardError(f"a run source is run:ID:ARTIFACT, got {key!r}")
        _, path = run_artifact(project, int(run_text), name)
        return Source(key, path, int(run_text), name)
    if kind == "file":
        path = project_file(project, rest)
        return Source(key, path, None, rest)
    raise DashboardError(f"a source is run:ID:ARTIFACT or file:PATH, got {key!r}")


def read_json(path: Path, what: str) -> Any:
    """Returns the parsed JSON at ``path``; a clear DashboardError when too large or malformed."""
    try:
        size = path.stat().st_size
        if size > MAX_JSON_BYTES:
            raise DashboardError(
                f"{what} is {size / 1e6:.0f} MB, over the dashboard's limit of "
                f"{MAX_JSON_BYTES / 1e6:.0f} MB",
                413,
            )
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise not_found(f"{what} is missing") from None
    except UnicodeDecodeError:
        raise DashboardError(f"{what} is not UTF-8 text", 422) from None
    except OSError as e:
        raise DashboardError(f"cannot read {what}: {e.strerror or e}", 500) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise DashboardError(
            f"{what} is not valid JSON ({e.msg} at line {e.lineno})", 422
        ) from None


@dataclass(frozen=True)
class ProjectFile:
    """A JSON file inside the project folder and what it looks like: 'graph' or 'features'."""

    relative: str
    kind: str
    bytes: int


_SCAN_LOCK = threading.Lock()
_SCANS: dict[Path, tuple[float, list[ProjectFile]]] = {}
SCAN_TTL_S = 10.0


def _sniff(path: Path) -> str | None:
    try:
        with path.open("rb") as f:
            head = f.read(_SNIFF).decode("utf-8", errors="ignore")
    except OSError:
        return None
    if '"dictionary_features"' in head:
        return "features"
    if '"nodes"' in head and ('"links"' in head or '"metadata"' in head):
        return "graph"
    return None


def scan(project: Project) -> list[ProjectFile]:
    """Returns the graph and feature-index JSON files inside the project folder (a few levels
    deep, ``artifacts/`` and hidden folders left out), rescanned at most every `SCAN_TTL_S`."""
    root = project.root.resolve()
    with _SCAN_LOCK:
        hit = _SCANS.get(root)
        if hit is not None and time.monotonic() - hit[0] < SCAN_TTL_S:
            return hit[1]
    found: list[ProjectFile] = []
    seen = 0
    for folder, dirs, names in os.walk(root):
        here = Path(folder)
        depth = len(here.relative_to(root).parts)
        dirs[:] = sorted(
            d for d in dirs if d not in _SKIP_DIRS and not d.startswith(".") and depth < _SCAN_DEPTH
        )
        for name in sorted(names):
            if not name.endswith(".json"):
                continue
            seen += 1
            if seen > _SCAN_FILES:
                break
            path = here / name
            kind = _sniff(path)
            if kind is not None:
                found.append(ProjectFile(str(path.relative_to(root)), kind, path.stat().st_size))
    with _SCAN_LOCK:
        _SCANS[root] = (time.monotonic(), found)
    return found


__all__ = [
    "MAX_JSON_BYTES",
    "DashboardError",
    "ProjectFile",
    "Source",
    "not_found",
    "project_file",
    "read_json",
    "resolve",
    "run_artifact",
    "scan",
]
