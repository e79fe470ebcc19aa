"""Opening the project database: refuse what is not ours, migrate what is older, touch nothing else.

1. Read the file's first 100 bytes: an SQLite file whose application id is interplab's. A file
   that is empty, not SQLite, or another program's database is refused before SQLite opens it.
2. Open it read-only and read the schema version and the table list. A newer version, missing
   tables or a damaged page is refused; a read-only connection cannot change the file, and
   it writes nothing beside it (no -wal or -shm files) unless the store is already open.
3. Only then open it for writing: WAL journal (readers never block the writer; a killed process
   never leaves a half transaction), ``synchronous=NORMAL``, a busy timeout so parallel writers
   wait for each other, foreign keys on; migrate an older schema (`schema.migrate`).

Every SQLite error surfaces as a `StoreError` (a `UserError`) naming the file and what to do.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

from interplab.errors import UserError
from interplab.store import schema

BUSY_TIMEOUT_S = 60.0
"""How long a writer waits for another process's transaction before giving up."""

_MAGIC = b"SQLite format 3\x00"


class StoreError(UserError):
    """A project store that cannot be used: missing, foreign, damaged, newer, or busy."""


def check_header(path: Path) -> None:
    """Raises StoreError unless ``path`` starts like an interplab store (read, never written)."""
    try:
        with path.open("rb") as f:
            head = f.read(100)
    except FileNotFoundError:
        raise StoreError(f"no project store at {path}; create one with `interplab init`") from None
    except OSError as e:
        raise StoreError(f"cannot read the project store {path}: {e.strerror or e}") from None
    if len(head) < 100:
        raise StoreError(f"{path} is not an interplab store: the file is empty or truncated")
    if head[:16] != _MAGIC:
        raise StoreError(f"{path} is not an interplab store: it is not an SQLite database")
    (app_id,) = struct.unpack(">I", head[68:72])
    if app_id != schema.APPLICATION_ID:
        raise StoreError(
            f"{path} is an SQLite database of another program (application id {app_id:#x}), "
            "not an interplab store; it was left untouched"
        )


def _read_only(path: Path) -> sqlite3.Connection:
    # With no -wal file beside it, nobody has the store open and it holds no uncommitted pages:
    # ``immutable`` then reads it without creating the -wal and -shm files a WAL database
    # otherwise gets even from a read-only connection, so a refused file is left as it was.
    # With a -wal file, it is read the ordinary way (the WAL may hold committed pages).
    wal = path.with_name(path.name + "-wal")
    flags = "mode=ro" + ("" if wal.exists() else "&immutable=1")
    uri = f"file:{quote(str(path.resolve()))}?{flags}"
    return sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_S, isolation_level=None)


def check_readable(path: Path) -> int:
    """Returns the schema version of the store at ``path`` after a read-only check; raises
    StoreError for a damaged file or a schema newer than this library's."""
    try:
        conn = _read_only(path)
    except sqlite3.Error as e:
        raise StoreError(f"cannot open the project store {path}: {e}") from None
    try:
        found = schema.version(conn)
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if found > schema.SCHEMA_VERSION:
            raise StoreError(
                f"{path} has schema version {found}, newer than this interplab's "
                f"{schema.SCHEMA_VERSION}; upgrade interplab to use it (the file was left untouched)"
            )
        if found < 1 or not {"meta", "runs", "artifacts"} <= tables:
            raise StoreError(f"{path} is not an interplab store: its tables are missing")
        recorded = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if recorded is None or int(recorded[0]) != found:
            raise StoreError(f"{path} is damaged: its two schema version records disagree")
        conn.execute("SELECT count(*) FROM runs").fetchone()
        return found
    except sqlite3.DatabaseError as e:
        raise StoreError(
            f"{path} is damaged ({e}); it was left untouched. Restore it from a copy, or "
            "recover what SQLite can read with `sqlite3 FILE .recover`"
        ) from None
    finally:
        conn.close()


def connect(path: Path) -> sqlite3.Connection:
    """Returns a read-write connection to a checked store (WAL, busy timeout, foreign keys)."""
    try:
        conn = sqlite3.connect(
            str(path), timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
        )
        conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            conn.close()
            raise StoreError(f"{path}: SQLite cannot use WAL mode here (got {mode!r})")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
    except sqlite3.Error as e:
        raise StoreError(f"cannot open the project store {path}: {e}") from None
    return conn


def open_checked(path: Path) -> sqlite3.Connection:
    """Returns a read-write connection to the store at ``path``, migrated to this version."""
    check_header(path)
    found = check_readable(path)
    conn = connect(path)
    if found < schema.SCHEMA_VERSION:
        with translated(path):
            schema.migrate(conn)
    return conn


def create(path: Path) -> None:
    """Creates a store at ``path`` (nothing happens if one is there already, even half-made by
    another process at this moment: the file appears whole or not at all)."""
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    try:
        conn = sqlite3.connect(str(tmp), isolation_level=None)
        try:
            conn.execute(f"PRAGMA application_id = {schema.APPLICATION_ID}")
            schema.migrate(conn)
            conn.execute("PRAGMA journal_mode = WAL")  # recorded in the header from now on
        finally:
            conn.close()
        # Another process may have created it first; theirs is as good as ours.
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        for leftover in (tmp, tmp.with_name(tmp.name + "-wal"), tmp.with_name(tmp.name + "-shm")):
            leftover.unlink(missing_ok=True)


@contextmanager
def translated(path: Path) -> Iterator[None]:
    """Turns SQLite errors inside the block into StoreErrors that name the file."""
    try:
        yield
    except sqlite3.OperationalError as e:
        if "locked" in str(e) or "busy" in str(e):
            raise StoreError(
                f"the project store {path} stayed busy for {BUSY_TIMEOUT_S:g} s "
                "(another process holds a long write); try again"
            ) from None
        raise StoreError(f"the project store {path} refused an operation: {e}") from None
    except sqlite3.DatabaseError as e:
        raise StoreError(
            f"the project store {path} is damaged ({e}); check it with `interplab runs check`"
        ) from None


@contextmanager
def transaction(conn: sqlite3.Connection, path: Path) -> Iterator[sqlite3.Connection]:
    """Runs the block as one write transaction (``BEGIN IMMEDIATE``: the write lock is taken
    first, so two writers queue instead of failing on upgrade)."""
    with translated(path):
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")


__all__ = [
    "BUSY_TIMEOUT_S",
    "StoreError",
    "check_header",
    "check_readable",
    "connect",
    "create",
    "open_checked",
    "transaction",
    "translated",
]
