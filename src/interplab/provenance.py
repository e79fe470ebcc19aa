"""Provenance: what a result needs to be re-run and trusted, and the JSON it is saved as."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import math
import os
import platform
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

_PACKAGES = ("interplab", "torch", "transformers", "numpy", "scipy")


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def data_hash(obj: Any) -> str:
    """Returns the sha256 of the canonical JSON of ``obj`` (prompts, a dataset, a config)."""
    return hashlib.sha256(json.dumps(jsonable(obj), sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class Provenance:
    """Model and weights hash, library versions, seed, data hash, config, time, command."""

    technique: str
    model: dict[str, Any]
    config: dict[str, Any]
    data_sha256: str
    seed: int | None = None
    versions: dict[str, str] = field(
        default_factory=lambda: (
            {p: _version(p) for p in _PACKAGES} | {"python": sys.version.split()[0]}
        )
    )
    machine: str = field(default_factory=lambda: f"{platform.system()} {platform.machine()}")
    created: str = field(
        default_factory=lambda: dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    )
    command: str | None = field(default_factory=lambda: " ".join(sys.argv) if sys.argv else None)

    def to_dict(self) -> dict[str, Any]:
        return jsonable(dataclasses.asdict(self))


def jsonable(obj: Any) -> Any:
    """Returns ``obj`` as plain JSON types: arrays to lists, NaN/inf to None, dataclasses to dicts."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        if hasattr(obj, "to_dict"):
            return jsonable(obj.to_dict())  # type: ignore[union-attr]
        # Field by field, not dataclasses.asdict: asdict deep-copies, which fails on read-only
        # mappings and costs time on large inputs.
        return {f.name: jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return jsonable(obj.item())
    detach = getattr(obj, "detach", None)  # a torch tensor, recognised without importing torch
    if callable(detach) and hasattr(obj, "tolist"):
        return jsonable(detach().cpu().tolist())  # pyright: ignore[reportAttributeAccessIssue]
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if obj is None or isinstance(obj, str | int | bool):
        return obj
    return str(obj)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(path: str | Path, text: str) -> Path:
    """Writes text atomically (temp file + rename), so an interrupt never leaves half a file."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; results are shared like figures
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def write_json(path: str | Path, payload: Any) -> Path:
    """Writes JSON atomically (temp file + rename), so an interrupt never leaves half a file."""
    return write_text(path, json.dumps(jsonable(payload), indent=1))
