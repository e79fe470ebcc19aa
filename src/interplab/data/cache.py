"""Return the on-disk cache folder and write files into it atomically.

Every parsed corpus and tokenised window file in `interplab.data` lives under one cache root so
that a user can move or wipe it in one place.

1. The root is the `INTERPLAB_CACHE` environment variable, or `~/.cache/interplab` when unset;
   data assets go in its `data/` subfolder, created on first use (never at import).
2. A write goes to a temporary file in the destination folder, is flushed and fsync'd, and only
   then renamed over the destination with `os.replace`. A rename inside one file system is atomic
   on POSIX and Windows, so a reader sees either the old file, the new file, or no file, never a
   half-written one, even when the writer is interrupted by an exception or a kill.
3. Cached files record the sha256 of the source they were derived from (`sha256_file`), so a
   changed source invalidates the cache instead of silently serving stale data.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

CACHE_ENV_VAR = "INTERPLAB_CACHE"


def cache_root() -> Path:
    """Return the interplab cache root (`$INTERPLAB_CACHE` or `~/.cache/interplab`)."""
    configured = os.environ.get(CACHE_ENV_VAR)
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "interplab"


def data_cache_dir() -> Path:
    """Return the folder for cached data assets, creating it if needed."""
    folder = cache_root() / "data"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def sha256_file(path: Path, chunk_bytes: int = 1 << 20) -> str:
    """Return the hex sha256 of a file's bytes, read in chunks so large files stay cheap."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_text(text: str) -> str:
    """Return the hex sha256 of a string's UTF-8 bytes."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def atomic_write(path: Path, write: Callable[[BinaryIO], object]) -> Path:
    """Return `path` after `write` filled it; on any exception the old state is left untouched.

    `write` receives a binary handle on a temporary file next to `path`. The temporary file is
    removed if `write` raises, so an interrupted write leaves neither a partial `path` nor litter.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    # Same folder as the target: os.replace is only atomic within one file system.
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp_path = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        # BaseException so that KeyboardInterrupt also cleans up the temporary file.
        tmp_path.unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: Path, text: str) -> Path:
    """Return `path` after atomically replacing its content with `text` (UTF-8)."""
    return atomic_write(path, lambda handle: handle.write(text.encode("utf-8")))
