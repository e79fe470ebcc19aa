"""Where the project store is: a folder holding ``interplab.sqlite`` and ``artifacts/``.

Resolution, first match wins:

1. the ``project`` argument (``--project`` on the command line): a project folder, or the
   database file itself;
2. the ``INTERPLAB_PROJECT`` environment variable, read the same way;
3. the nearest folder at or above the current directory that holds ``interplab.sqlite``;
4. the per-user default project, ``$INTERPLAB_HOME/default`` or, without that variable,
   ``$XDG_DATA_HOME/interplab/default`` (``~/.local/share/interplab/default``), made on first use.

A named project (1, 2) must exist: a typo should not start a new, empty notebook. Everything is
plain files, so copying the folder (rsync, with no writer running) moves a project.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from interplab.store.db import StoreError, create

DB_NAME = "interplab.sqlite"
ARTIFACTS = "artifacts"


@dataclass(frozen=True)
class Location:
    """A project's folder, its database file and its artifacts folder, and how it was chosen."""

    root: Path
    db: Path
    artifacts: Path
    chosen_by: str  # 'argument', 'INTERPLAB_PROJECT', 'folder', 'default'


def default_root() -> Path:
    """Returns the per-user default project folder (not created here)."""
    home = os.environ.get("INTERPLAB_HOME")
    if home:
        return Path(home).expanduser() / "default"
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data).expanduser() / "interplab" / "default"


def _named(path: str | Path, chosen_by: str) -> Location:
    p = Path(path).expanduser()
    if p.is_file():
        return Location(p.parent.resolve(), p.resolve(), p.parent.resolve() / ARTIFACTS, chosen_by)
    if (p / DB_NAME).is_file():
        root = p.resolve()
        return Location(root, root / DB_NAME, root / ARTIFACTS, chosen_by)
    how = "--project" if chosen_by == "argument" else chosen_by
    raise StoreError(
        f"no interplab project at {p} (from {how}); create it with `interplab init {p}`"
    )


def enclosing(start: Path) -> Path | None:
    """Returns the nearest folder at or above ``start`` that holds a project database."""
    here = start.resolve()
    for folder in (here, *here.parents):
        if (folder / DB_NAME).is_file():
            return folder
    return None


def resolve(project: str | Path | None = None, *, cwd: Path | None = None) -> Location:
    """Returns the project location chosen by argument, environment, folder or default."""
    if project is not None and str(project) != "":
        return _named(project, "argument")
    env = os.environ.get("INTERPLAB_PROJECT")
    if env:
        return _named(env, "INTERPLAB_PROJECT")
    found = enclosing(cwd or Path.cwd())
    if found is not None:
        return Location(found, found / DB_NAME, found / ARTIFACTS, "folder")
    root = default_root()
    init(root)
    root = root.resolve()
    return Location(root, root / DB_NAME, root / ARTIFACTS, "default")


def init(folder: str | Path) -> Location:
    """Makes ``folder`` a project (database and artifacts folder); an existing project is kept
    as it is. Returns its location."""
    root = Path(folder).expanduser()
    if root.exists() and not root.is_dir():
        raise StoreError(f"cannot make a project at {root}: it is a file, not a folder")
    try:
        (root / ARTIFACTS).mkdir(parents=True, exist_ok=True)
        create(root / DB_NAME)
    except PermissionError as e:
        raise StoreError(f"cannot make a project at {root}: {e.strerror}") from None
    root = root.resolve()
    return Location(root, root / DB_NAME, root / ARTIFACTS, "argument")


__all__ = ["ARTIFACTS", "DB_NAME", "Location", "default_root", "enclosing", "init", "resolve"]
