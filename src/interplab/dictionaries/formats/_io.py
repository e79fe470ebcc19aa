"""Reading and writing the files dictionaries live in, with errors that name the file.

Every format stores tensors in safetensors and settings in JSON or YAML. A missing file, a
truncated safetensors file (its header promises more bytes than the file holds), a tensor of the
wrong shape and a settings file that does not parse each raise `DictionaryFileError` naming the
file and the problem. Writes go through a temporary file renamed into place.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save
from torch import Tensor

from interplab.data.cache import atomic_write
from interplab.dictionaries.config import DictionaryFileError
from interplab.provenance import write_text


def read_tensors(path: Path) -> dict[str, Tensor]:
    """Returns every tensor in a safetensors file (float32), or a clear error naming the file."""
    if not path.is_file():
        raise DictionaryFileError(f"{path} is missing")
    try:
        tensors = load_file(str(path))
    except Exception as e:  # safetensors raises its own SafetensorError, or OSError
        raise DictionaryFileError(
            f"{path} is not a readable safetensors file ({e}); it may be truncated: copy it again"
        ) from None
    return {k: v.float() if v.is_floating_point() else v for k, v in tensors.items()}


def write_tensors(
    path: Path, tensors: Mapping[str, Tensor], metadata: dict[str, str] | None = None
) -> Path:
    """Writes tensors as safetensors atomically and returns the path."""
    data = save({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, metadata=metadata)
    return atomic_write(path, lambda f: f.write(data))


def read_json(path: Path) -> dict[str, Any]:
    """Returns a JSON object from a file, or a clear error naming the file."""
    if not path.is_file():
        raise DictionaryFileError(f"{path} is missing")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DictionaryFileError(f"{path} is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise DictionaryFileError(f"{path} holds a JSON {type(data).__name__}, not an object")
    return data


def write_json(path: Path, data: dict[str, Any]) -> Path:
    """Writes a JSON object atomically."""
    return write_text(path, json.dumps(data, indent=1))


def need(
    tensors: Mapping[str, Tensor], path: Path, name: str, shape: tuple[int, ...] | None = None
) -> Tensor:
    """Returns ``tensors[name]``, checked for presence and (optionally) shape."""
    if name not in tensors:
        raise DictionaryFileError(
            f"{path} has no tensor {name!r}; it holds: {', '.join(sorted(tensors)) or 'nothing'}"
        )
    t = tensors[name]
    if shape is not None and tuple(t.shape) != shape:
        raise DictionaryFileError(
            f"{path}: tensor {name!r} has shape {tuple(t.shape)}, expected {shape}"
        )
    return t


def number(data: Mapping[str, Any], key: str, path: Path) -> int:
    """Returns an integer setting, or a clear error naming the file."""
    value = data.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise DictionaryFileError(f"{path}: {key!r} must be an integer, got {value!r}")
    return value


__all__ = ["need", "number", "read_json", "read_tensors", "write_json", "write_tensors"]
