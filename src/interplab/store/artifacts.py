"""The artifacts folder: files named by the sha256 of their bytes, written temp + rename.

1. Bytes (a file's, or a result's JSON from the results codec) go to a temporary file inside
   ``artifacts/tmp/``, hashed as they are written.
2. The file is renamed to ``artifacts/<first two hex digits>/<sha256>``. The rename is atomic, so a
   reader sees the whole file or none; two processes storing the same bytes rename the same
   content onto the same name, which is harmless.
3. The database row that points at the file is written after it, so a process killed between
   the two leaves at worst an unreferenced file (never a row without its file).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from interplab.store.db import StoreError

if TYPE_CHECKING:
    from interplab.results.base import Result

_CHUNK = 1 << 20


@dataclass(frozen=True)
class Stored:
    """A file in the artifacts folder: its content hash and size."""

    sha256: str
    bytes: int


def path_of(folder: Path, sha256: str) -> Path:
    """Returns where the artifact with this hash lives."""
    return folder / sha256[:2] / sha256


def _tmp(folder: Path, suffix: str = "") -> Path:
    tmp = folder / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    return tmp / f"{os.getpid()}-{os.urandom(6).hex()}{suffix}"


def _place(folder: Path, tmp: Path, sha256: str) -> Stored:
    target = path_of(folder, sha256)
    size = tmp.stat().st_size
    target.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(tmp, 0o444)  # content-addressed files never change
    os.replace(tmp, target)
    return Stored(sha256, size)


def put_bytes(folder: Path, data: bytes) -> Stored:
    """Stores ``data`` and returns its hash and size."""
    sha = hashlib.sha256(data).hexdigest()
    if path_of(folder, sha).is_file():
        return Stored(sha, len(data))
    tmp = _tmp(folder)
    try:
        tmp.write_bytes(data)
        return _place(folder, tmp, sha)
    finally:
        tmp.unlink(missing_ok=True)


def put_file(folder: Path, source: str | Path) -> Stored:
    """Stores a copy of the file at ``source`` and returns its hash and size."""
    src = Path(source)
    if not src.is_file():
        raise StoreError(f"cannot store {src} as an artifact: no such file")
    tmp = _tmp(folder)
    try:
        h = hashlib.sha256()
        with src.open("rb") as fin, tmp.open("wb") as fout:
            while chunk := fin.read(_CHUNK):
                h.update(chunk)
                fout.write(chunk)
        return _place(folder, tmp, h.hexdigest())
    finally:
        tmp.unlink(missing_ok=True)


def result_dict(result: Any) -> dict[str, Any]:
    """Returns a result's fields as the results codec writes them (`interplab.results.base.encode`,
    field by field, as the base class's ``to_dict``), nested results included: keys a subclass
    derives in its own ``to_dict``, such as a summary that needs a bootstrap (a patching grid's
    control sweep computes one), are left out; `interplab.results.load` ignores them anyway and
    they are recomputed on demand. Float arrays without NaN or inf skip the codec's per-number
    loop (the JSON is the same)."""
    from interplab.results.base import Result

    if not isinstance(result, Result):
        return result.to_dict()
    out: dict[str, Any] = {"technique": result.technique}
    for f in dataclasses.fields(result):  # type: ignore[arg-type]
        out[f.name] = _field(getattr(result, f.name))
    return out


def _plain(x: Any) -> bool:
    """Whether ``x`` is already what the codec would make of it: strings, ints, bools, None
    and finite floats, in lists and tuples (JSON writes a tuple as a list, as the codec does)."""
    t = type(x)
    if t is str or t is int or t is bool or x is None:
        return True
    if t is float:
        return math.isfinite(x)
    if t is list or t is tuple:
        return all(_plain(v) for v in x)
    return False


def _field(value: Any) -> Any:
    from interplab.provenance import Provenance
    from interplab.results.base import Result, encode
    from interplab.sites import Site

    if _plain(value):  # token strings, prompts, labels: nothing for the codec to change
        return value
    if isinstance(value, Result):
        return result_dict(value)
    if isinstance(value, np.ndarray) and value.dtype.kind == "f":
        flat = value.ravel()
        if bool(np.isfinite(flat).all()):  # the codec's per-number check would change nothing
            return {"__array__": value.dtype.str, "shape": list(value.shape), "data": flat.tolist()}
    if (
        dataclasses.is_dataclass(value)
        and not isinstance(value, type)
        and not isinstance(value, Provenance | Site)
    ):  # a plain dataclass (probe directions): field by field, as the codec does
        return {f.name: _field(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list | tuple) and any(isinstance(v, Result) for v in value):
        return [_field(v) for v in value]
    if isinstance(value, dict) and any(isinstance(v, Result) for v in value.values()):
        return {str(k): _field(v) for k, v in value.items()}
    return encode(value)


def put_result(folder: Path, result: Result) -> Stored:
    """Stores ``result`` as the JSON of `result_dict`, without indentation, which would make
    ``json`` fall back to its pure-Python encoder (about 8x slower on a demo-size grid)."""
    text = json.dumps(result_dict(result), allow_nan=False, separators=(",", ":"))
    return put_bytes(folder, text.encode())


def put_tensors(folder: Path, tensors: dict[str, Any]) -> Stored:
    """Stores named arrays (numpy, or anything with ``.numpy()`` / ``__array__``) as one
    safetensors file."""
    from safetensors.numpy import save

    arrays: dict[str, np.ndarray] = {}
    for name, value in tensors.items():
        detach = getattr(value, "detach", None)
        if callable(detach):  # a torch tensor, recognised without importing torch
            value = detach().cpu().numpy()  # pyright: ignore[reportAttributeAccessIssue]
        arrays[str(name)] = np.ascontiguousarray(np.asarray(value))
    return put_bytes(folder, save(arrays))


def _hash_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def verify(folder: Path, sha256: str) -> str | None:
    """Returns None when the artifact's bytes still hash to its name, else what is wrong."""
    p = path_of(folder, sha256)
    if not p.is_file():
        return f"missing: {p}"
    actual = _hash_file(p)
    return None if actual == sha256 else f"damaged: {p} hashes to {actual[:12]}"


def copy_out(folder: Path, sha256: str, target: Path) -> Path:
    """Copies an artifact to ``target`` (e.g. a figure beside a report) and returns the path."""
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path_of(folder, sha256), target)
    return target


__all__ = [
    "Stored",
    "copy_out",
    "path_of",
    "put_bytes",
    "put_file",
    "put_result",
    "put_tensors",
    "result_dict",
    "verify",
]
