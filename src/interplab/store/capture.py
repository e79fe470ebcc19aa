"""What a run records about its surroundings: git state, library versions, host, process.

1. Git: the nearest ``.git`` at or above the working directory is found by ``stat`` calls; only
   inside a repository does one ``git status --porcelain=v2 --branch`` start, in the background
   when the run starts, and it is read when the run ends, so the run's own compute hides its
   cost. It gives the commit (``branch.oid``) and whether any tracked or untracked file
   differs (dirty). The answer is reused for `GIT_TTL_S` seconds within a process.
2. Versions: the same packages `interplab.provenance` records, read once per process.
3. Host and process id, which the stale-run check compares (`recording.mark_stale`).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from functools import cache
from importlib import metadata
from pathlib import Path

GIT_TTL_S = 30.0
_GIT_TIMEOUT_S = 10.0
_PACKAGES = ("interplab", "torch", "transformers", "numpy", "scipy")


@dataclass(frozen=True)
class GitState:
    """The commit checked out and whether the work tree differs from it."""

    commit: str | None
    dirty: bool | None


NOT_A_REPO = GitState(None, None)

_cache: dict[Path, tuple[float, GitState]] = {}
_lock = threading.Lock()


def repo_root(start: Path) -> Path | None:
    """Returns the folder holding ``.git`` at or above ``start``, or None."""
    here = start.resolve()
    for folder in (here, *here.parents):
        if (folder / ".git").exists():
            return folder
    return None


class GitProbe:
    """A ``git status`` started now and read later (`result`), or a cached answer."""

    def __init__(self, cwd: Path | None) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        self._root = None if cwd is None else repo_root(cwd)
        self._state: GitState | None = None
        if self._root is None:
            self._state = NOT_A_REPO
            return
        with _lock:
            cached = _cache.get(self._root)
        if cached is not None and time.monotonic() - cached[0] < GIT_TTL_S:
            self._state = cached[1]
            return
        try:
            self._proc = subprocess.Popen(
                ["git", "status", "--porcelain=v2", "--branch"],
                cwd=self._root,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                stdin=subprocess.DEVNULL,
            )
        except OSError:  # no git on this machine
            self._state = NOT_A_REPO

    def result(self) -> GitState:
        """Returns the git state (waits for the background ``git status`` if still running)."""
        if self._state is not None:
            return self._state
        assert self._proc is not None and self._root is not None
        try:
            out, _ = self._proc.communicate(timeout=_GIT_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.communicate()
            self._state = NOT_A_REPO
            return self._state
        self._state = _parse(out.decode(errors="replace")) if self._proc.returncode == 0 else None
        if self._state is None:
            self._state = NOT_A_REPO
        with _lock:
            _cache[self._root] = (time.monotonic(), self._state)
        return self._state


def _parse(text: str) -> GitState:
    commit = None
    dirty = False
    for line in text.splitlines():
        if line.startswith("# branch.oid "):
            oid = line.removeprefix("# branch.oid ").strip()
            commit = None if oid == "(initial)" else oid
        elif line and not line.startswith("#"):
            dirty = True
    return GitState(commit, dirty)


@cache
def versions() -> dict[str, str]:
    """Returns the versions of the packages a result depends on, and Python's (read once)."""
    out: dict[str, str] = {}
    for package in _PACKAGES:
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            out[package] = "not installed"
    out["python"] = sys.version.split()[0]
    return out


@cache
def host() -> str:
    """Returns this machine's name as the stale-run check compares it."""
    return socket.gethostname()


def pid_alive(pid: int) -> bool:
    """Returns whether a process with this id exists on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True


def cwd() -> str | None:
    """Returns the working directory (None when it was deleted under the process)."""
    try:
        return os.getcwd()
    except OSError:
        return None


def command() -> str:
    """Returns the command line of this process."""
    return " ".join(sys.argv) if sys.argv else ""


__all__ = [
    "GIT_TTL_S",
    "NOT_A_REPO",
    "GitProbe",
    "GitState",
    "command",
    "cwd",
    "host",
    "pid_alive",
    "repo_root",
    "versions",
]
