"""The result base: every technique's result is plain data (numpy, Sites, strings, provenance).

A result is a frozen dataclass whose fields are JSON-able through one codec:

1. ``to_dict`` walks the fields: numpy arrays become ``{"__array__": dtype, "shape", "data"}``
   (NaN and inf kept as strings, so a round trip is exact), Sites their string form (printed by
   `interplab.sites` alone), nested dataclasses their own dicts, tuples lists.
2. ``from_dict`` reads the field types back from the class annotations, so a result written by
   ``to_json`` and read by ``load`` is equal field by field to the one that was written.
3. ``technique`` names the result type; `load` picks the class from the registry that
   ``Result.__init_subclass__`` fills, so a viewer can read a folder of results without knowing
   their types in advance.

Results never draw themselves: `interplab.viz` chooses a figure by result type. ``_repr_html_``
asks viz for the page when a notebook displays a result (a look-up by name at call time, so this
module imports neither viz nor matplotlib nor torch).
"""

from __future__ import annotations

import abc
import dataclasses
import importlib
import json
import math
import types
import typing
from pathlib import Path
from typing import Any, ClassVar, TypeVar, get_args, get_origin, get_type_hints

import numpy as np

from interplab.errors import UserError
from interplab.provenance import Provenance, write_text
from interplab.sites import FeatureSite, Site

R = TypeVar("R", bound="Result")

_REGISTRY: dict[str, type[Result]] = {}


class ResultError(UserError):
    """A result file or dict that cannot be read: wrong technique, missing or malformed fields."""


class Result(abc.ABC):
    """Base of every result: ``to_dict``/``from_dict``, ``to_json``/``from_json``, ``summary``.

    Subclasses are frozen dataclasses that set ``technique`` and implement ``summary()``, which
    always returns a `interplab.stats.Summary`.
    """

    technique: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        name = cls.__dict__.get("technique")
        if name:
            _REGISTRY[name] = cls

    # -- serialisation ------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Returns every field as JSON types (arrays tagged with dtype and shape), plus technique."""
        out: dict[str, Any] = {"technique": self.technique}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            out[f.name] = encode(getattr(self, f.name))
        return out

    @classmethod
    def from_dict(cls: type[R], data: dict[str, Any]) -> R:
        """Returns the result a ``to_dict`` wrote (the class is checked against ``technique``)."""
        if not isinstance(data, dict):
            raise ResultError(f"a result is a JSON object, got {type(data).__name__}")
        tech = data.get("technique")
        if cls.technique and tech != cls.technique:
            raise ResultError(f"this is a {tech!r} result, not {cls.technique!r}")
        return decode_dataclass(cls, data)  # type: ignore[return-value]

    def to_json(self, path: str | Path) -> Path:
        """Writes the result as JSON atomically (temp file + rename) and returns the path."""
        return write_text(path, json.dumps(self.to_dict(), indent=1, allow_nan=False))

    @classmethod
    def from_json(cls: type[R], path: str | Path) -> R:
        """Returns the result stored in a JSON file written by ``to_json``."""
        return cls.from_dict(_read(path))

    @abc.abstractmethod
    def summary(self) -> Any:
        """Returns the result's `interplab.stats.Summary` (every result type defines it)."""

    # -- display ------------------------------------------------------------------------------

    def _repr_html_(self) -> str:
        """Returns the result's HTML view (figure and summary), drawn by `interplab.viz`."""
        viz = importlib.import_module("interplab.viz")
        return viz.html(self)


def load(path: str | Path) -> Result:
    """Returns the result in a JSON file, of whatever type its ``technique`` names."""
    data = _read(path)
    tech = data.get("technique") if isinstance(data, dict) else None
    cls = result_type(str(tech))
    return cls.from_dict(data)


def result_type(technique: str) -> type[Result]:
    """Returns the result class registered for ``technique``."""
    _import_schemas()
    if technique not in _REGISTRY:
        raise ResultError(
            f"unknown technique {technique!r}; known result types: {', '.join(sorted(_REGISTRY))}"
        )
    return _REGISTRY[technique]


def _import_schemas() -> None:
    """Imports every schema module of this package, so each registers its result types."""
    import pkgutil

    package = importlib.import_module("interplab.results")
    for info in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"interplab.results.{info.name}")


def _read(path: str | Path) -> Any:
    p = Path(path)
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ResultError(f"no result file at {p}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ResultError(f"{p} is not a result JSON file: {e}") from None


# -- the codec ----------------------------------------------------------------------------------


def encode(value: Any) -> Any:
    """Returns ``value`` as JSON types; arrays keep dtype and shape, floats keep NaN and inf."""
    if isinstance(value, Result):
        return value.to_dict()
    if isinstance(value, Site | FeatureSite):
        return str(value)
    if isinstance(value, Provenance):
        return encode(dataclasses.asdict(value))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "fc":
            data = [_float(x) for x in value.ravel().tolist()]
        else:
            data = value.ravel().tolist()
        return {"__array__": value.dtype.str, "shape": list(value.shape), "data": data}
    if isinstance(value, np.generic):
        return encode(value.item())
    if isinstance(value, dict):
        return {str(k): encode(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [encode(v) for v in value]
    if isinstance(value, float):
        return _float(value)
    if value is None or isinstance(value, str | int | bool):
        return value
    raise TypeError(f"cannot store a {type(value).__name__} in a result: {value!r}")


def _float(x: float) -> float | str:
    return x if math.isfinite(x) else repr(x)  # 'nan', 'inf', '-inf'


def _unfloat(x: Any) -> Any:
    return float(x) if x in ("nan", "inf", "-inf") else x


def decode_dataclass(cls: type, data: dict[str, Any]) -> Any:
    """Returns an instance of dataclass ``cls`` from its encoded dict."""
    hints = get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name in data:
            try:
                kwargs[f.name] = decode(hints[f.name], data[f.name])
            except (TypeError, ValueError, KeyError) as e:
                raise ResultError(f"field {f.name!r} of {cls.__name__}: {e}") from None
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ResultError(f"{cls.__name__} needs field {f.name!r}, which the data lacks")
    return cls(**kwargs)


def decode(tp: Any, value: Any) -> Any:
    """Returns ``value`` decoded as type ``tp`` (the inverse of `encode`)."""
    if value is None:
        return None
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in get_args(tp) if a is not type(None)]
        if len(options) == 1:
            return decode(options[0], value)
        if isinstance(value, dict) and "__array__" in value:
            return decode(np.ndarray, value)
        for a in options:  # the first type that reads the value without error
            try:
                out = decode(a, value)
            except (TypeError, ValueError, ResultError):
                continue
            if _fits(a, out):
                return out
        return _plain(value)
    if tp is Any:
        return _plain(value)
    if tp is np.ndarray or origin is np.ndarray:
        return _array(value)
    if tp is Site:
        return Site.parse(value)
    if tp is FeatureSite:
        return FeatureSite.parse(value)
    if tp is Provenance:
        return Provenance(**value)
    if tp is float:
        return float(_unfloat(value))
    if tp in (int, str, bool):
        return tp(value)
    if origin in (list, tuple, typing.Sequence):
        args = get_args(tp)
        if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
            return tuple(decode(args[0], v) for v in value)
        if origin is tuple and args:
            return tuple(decode(a, v) for a, v in zip(args, value, strict=True))
        item = args[0] if args else Any
        out = [decode(item, v) for v in value]
        return tuple(out) if origin is tuple else out
    if origin is dict:
        kt, vt = get_args(tp) or (Any, Any)
        return {decode(kt, k): decode(vt, v) for k, v in value.items()}
    if origin is typing.Literal:
        return value
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if issubclass(tp, Result):
            return tp.from_dict(value)
        if hasattr(tp, "from_dict"):
            return tp.from_dict(value)  # type: ignore[attr-defined]
        return decode_dataclass(tp, value)
    return _plain(value)


def _fits(tp: Any, value: Any) -> bool:
    origin = get_origin(tp) or tp
    return not isinstance(origin, type) or isinstance(value, origin)


def _array(value: Any) -> np.ndarray:
    if isinstance(value, dict) and "__array__" in value:
        dtype = np.dtype(value["__array__"])
        data = value["data"]
        if dtype.kind in "fc":
            data = [_unfloat(x) for x in data]
        return np.asarray(data, dtype=dtype).reshape(value["shape"])
    return np.asarray(value)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        if "__array__" in value:
            return _array(value)
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return _unfloat(value)


__all__ = ["Result", "ResultError", "decode", "encode", "load", "result_type"]
