"""A recorded call, stored whole so `rerun` can make it again: no pickle, no torch.

A call is the recorded function's import path and its arguments as given, encoded as a JSON tree;
arrays go to one safetensors file beside it, referred to by key. Every JSON object in the tree
is a tagged node ``{"$": tag, ...}``; other values are themselves.

1. Plain values stay themselves (None, bool, int, str, finite floats, lists). NaN and inf,
   tuples, dicts, sets, ranges, slices, paths, Sites, numpy scalars and arrays are tagged nodes.
2. Objects of a type a higher layer registered (`register`: a model by its name, dtype and
   weights hash; a tokenised corpus by its folder and token hash; a torch tensor as an array and
   its dtype) are encoded and rebuilt by that registration.
3. A module-level function becomes its import path; a dataclass (a `Config`, `TokenPairs`,
   `LabelledDataset`, `SteeringVector`, a `Behaviour` holding a scorer function) its class path
   and its init fields, each encoded the same way.
4. Anything else (a lambda, a function defined inside another, a bound method, an open file, an
   instance of a plain class such as an ``nn.Module``), or arrays over `MAX_ARRAY_BYTES` in
   all, cannot be stored: the call is recorded with the reason instead
   (`EncodedCall.not_stored`), and `rerun` gives that reason rather than guessing.

Decoding imports classes and functions only from interplab's own modules or from modules the
caller allows (``interplab rerun --import MODULE``), and `resolve_function` returns only a
function that `store.recorded` marked with the run's technique.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import json
import math
import sys
import types
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any

import numpy as np

from interplab.sites import Site
from interplab.store.db import StoreError

FORMAT = 1
MARK = "__interplab_recorded__"
"""The attribute `store.recorded` sets on a function: the technique it records."""
MAX_ARRAY_BYTES = 8 << 20
"""The most array bytes a stored call keeps: larger data (a corpus, a dictionary's weights)
belongs in a file the call names, and copying it would cost every run more than recording."""


class NotStorable(Exception):
    """Raised by an encoder for a value that cannot be stored; the message says why."""


@dataclass(frozen=True)
class Codec:
    """How a registered kind of object is stored and rebuilt."""

    kind: str
    types: tuple[type, ...]
    encode: Callable[[Any], Any]  # object -> any value this module can encode
    decode: Callable[[Any, dict[str, Any]], Any]  # (decoded value, context) -> object


_CODECS: dict[str, Codec] = {}


def register(
    kind: str,
    types_: type | tuple[type, ...],
    encode: Callable[[Any], Any],
    decode: Callable[[Any, dict[str, Any]], Any],
) -> None:
    """Registers how objects of ``types_`` are stored (``encode(obj)`` returns a value this module
    can store; raise `NotStorable` to refuse one) and rebuilt (``decode(value, context)``;
    ``context`` holds what the caller of `decode_call` passed, e.g. a model to use)."""
    _CODECS[kind] = Codec(kind, types_ if isinstance(types_, tuple) else (types_,), encode, decode)


@dataclass(frozen=True)
class EncodedCall:
    """A call ready to store: its JSON (always) and its arrays (safetensors bytes, or None)."""

    function: str
    json_bytes: bytes
    tensor_bytes: bytes | None
    not_stored: str | None


@dataclass(frozen=True)
class StoredCall:
    """A stored call read back: the function path, encoded arguments, arrays, or why not stored."""

    function: str
    arguments: dict[str, Any]
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    not_stored: str | None = None


# -- encoding -----------------------------------------------------------------------------------


def function_path(fn: Callable[..., Any]) -> str:
    """Returns ``module:qualname`` of a function."""
    return f"{fn.__module__}:{fn.__qualname__}"


class _Encoder:
    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}
        self.nbytes = 0

    def array(self, a: np.ndarray, where: str) -> dict[str, Any]:
        if a.dtype.kind not in "biuf" or a.dtype.byteorder == ">":
            raise NotStorable(f"{where}: a numpy array of dtype {a.dtype} cannot be stored")
        self.nbytes += a.nbytes
        if self.nbytes > MAX_ARRAY_BYTES:
            raise NotStorable(too_large(where, self.nbytes))
        key = f"a{len(self.arrays)}"
        self.arrays[key] = np.ascontiguousarray(a)
        return {"$": "array", "key": key}

    def encode(self, x: Any, where: str) -> Any:
        if x is None or isinstance(x, bool | int | str):
            return x
        if isinstance(x, float):
            return x if math.isfinite(x) else {"$": "float", "value": repr(x)}
        for codec in _CODECS.values():
            if isinstance(x, codec.types):
                return {"$": codec.kind, "value": self.encode(codec.encode(x), where)}
        if isinstance(x, np.ndarray):
            return self.array(x, where)
        if isinstance(x, np.generic):
            return {"$": "scalar", "dtype": x.dtype.str, "value": self.encode(x.item(), where)}
        if isinstance(x, Site):
            return {"$": "site", "value": str(x)}
        if isinstance(x, PurePath):
            return {"$": "path", "value": str(x)}
        if isinstance(x, list):
            return [self.encode(v, f"{where}[{i}]") for i, v in enumerate(x)]
        if isinstance(x, tuple) and not hasattr(x, "_fields"):
            return {
                "$": "tuple",
                "items": [self.encode(v, f"{where}[{i}]") for i, v in enumerate(x)],
            }
        if isinstance(x, set | frozenset):
            items = sorted(x, key=repr)
            return {"$": "set", "frozen": isinstance(x, frozenset),
                    "items": [self.encode(v, f"{where}{{}}") for v in items]}  # fmt: skip
        if isinstance(x, range):
            return {"$": "range", "value": [x.start, x.stop, x.step]}
        if isinstance(x, slice):
            return {
                "$": "slice",
                "value": [self.encode(v, where) for v in (x.start, x.stop, x.step)],
            }
        if isinstance(x, Mapping):
            return {"$": "dict", "items": [[self.encode(k, f"{where} key"),
                                            self.encode(v, f"{where}[{k!r}]")]
                                           for k, v in x.items()]}  # fmt: skip
        if isinstance(x, types.FunctionType | types.BuiltinFunctionType):
            return {"$": "function", "path": self.function(x, where)}
        if dataclasses.is_dataclass(x) and not isinstance(x, type):
            cls = type(x)
            fields = {
                f.name: self.encode(getattr(x, f.name), f"{where}.{f.name}")
                for f in dataclasses.fields(x)
                if f.init
            }
            return {"$": "dataclass", "type": self.class_path(cls, where), "fields": fields}
        raise NotStorable(
            f"{where} is a {type(x).__module__}.{type(x).__qualname__}, which cannot be stored "
            "(store plain values, arrays, tensors, Sites, dataclasses or module-level functions)"
        )

    def function(self, fn: Callable[..., Any], where: str) -> str:
        qual = getattr(fn, "__qualname__", "")
        if "<lambda>" in qual or "<locals>" in qual:
            raise NotStorable(
                f"{where} is {qual}, a function defined inline; only a module-level function "
                "can be stored (by its import path)"
            )
        if _lookup(fn.__module__, qual) is not fn:
            raise NotStorable(f"{where}: {function_path(fn)} is not importable by its name")
        return function_path(fn)

    def class_path(self, cls: type, where: str) -> str:
        qual = cls.__qualname__
        if "<locals>" in qual or _lookup(cls.__module__, qual) is not cls:
            raise NotStorable(
                f"{where} is a {qual}, a class that is not importable by its name "
                "(define it at module level)"
            )
        return f"{cls.__module__}:{qual}"


def too_large(where: str, nbytes: int) -> str:
    """Returns why a call holding ``nbytes`` of arrays is not stored."""
    return (
        f"{where} brings the call's arrays to {nbytes / 2**20:.1f} MiB; a stored call keeps at "
        f"most {MAX_ARRAY_BYTES >> 20} MiB (pass large data by a path or name, as a tokenised "
        "corpus is)"
    )


def _lookup(module: str, qualname: str) -> Any:
    obj: Any = sys.modules.get(module)
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
    return obj


def encode_call(fn: Callable[..., Any], arguments: Mapping[str, Any]) -> EncodedCall:
    """Returns the call of ``fn`` with ``arguments`` (name -> value, as bound) ready to store;
    a call that cannot be stored is returned with ``not_stored`` saying why (never raises)."""
    path = function_path(fn)
    enc = _Encoder()
    try:
        args = {name: enc.encode(value, f"argument {name!r}") for name, value in arguments.items()}
        tensors = _safetensors(enc.arrays)
        reason = None
    except NotStorable as e:
        args, tensors, reason = {}, None, str(e)
    except Exception as e:  # an encoder's own failure must not fail the user's run
        args, tensors, reason = {}, None, f"storing the call failed: {type(e).__name__}: {e}"
    doc = {"format": FORMAT, "function": path, "arguments": args, "not_stored": reason}
    text = json.dumps(doc, allow_nan=False, separators=(",", ":"))
    return EncodedCall(path, text.encode(), tensors, reason)


def _safetensors(arrays: dict[str, np.ndarray]) -> bytes | None:
    if not arrays:
        return None
    from safetensors.numpy import save

    return save(arrays)


def read_call(json_bytes: bytes, tensor_bytes: bytes | None) -> StoredCall:
    """Returns the stored call from its two artifacts' bytes."""
    doc = json.loads(json_bytes)
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise StoreError(f"the stored call is in a format this interplab cannot read: {doc!r:.80}")
    arrays: dict[str, np.ndarray] = {}
    if tensor_bytes is not None:
        from safetensors.numpy import load

        arrays = dict(load(tensor_bytes))
    return StoredCall(doc["function"], doc["arguments"], arrays, doc.get("not_stored"))


# -- decoding -----------------------------------------------------------------------------------


def _allowed(module: str, allow: Iterable[str]) -> bool:
    top = module.split(".")[0]
    return top == "interplab" or any(module == m or module.startswith(m + ".") for m in allow)


def _import(path: str, allow: Iterable[str], what: str) -> Any:
    module, _, qual = path.partition(":")
    if module == "__main__":
        raise StoreError(
            f"the stored call names {what} {qual} of a script that was run directly (__main__), "
            "which cannot be imported again; move it into a module, or register how to re-run "
            "the technique (interplab.store.rerun.register)"
        )
    if not _allowed(module, allow):
        raise StoreError(
            f"the stored call names {what} {path}, outside interplab; allow its module with "
            f"`interplab rerun --import {module}` (rerun(..., modules=[{module!r}]))"
        )
    try:
        importlib.import_module(module)
    except ImportError as e:
        raise StoreError(f"cannot import {module} for {what} {path}: {e}") from None
    obj = _lookup(module, qual)
    if obj is None:
        raise StoreError(f"{module} has no {qual} ({what} of the stored call)")
    return obj


class _Decoder:
    def __init__(
        self, arrays: dict[str, np.ndarray], context: dict[str, Any], allow: Iterable[str]
    ):
        self.arrays, self.context, self.allow = arrays, context, tuple(allow)

    def decode(self, x: Any) -> Any:
        if isinstance(x, list):
            return [self.decode(v) for v in x]
        if not isinstance(x, dict):
            return x
        tag = x.get("$")
        if tag in _CODECS:
            return _CODECS[tag].decode(self.decode(x["value"]), self.context)
        if tag == "float":
            return float(x["value"])
        if tag == "array":
            return self.arrays[x["key"]]
        if tag == "scalar":
            return np.dtype(x["dtype"]).type(self.decode(x["value"]))
        if tag == "site":
            return Site.parse(x["value"])
        if tag == "path":
            return Path(x["value"])
        if tag == "tuple":
            return tuple(self.decode(v) for v in x["items"])
        if tag == "set":
            items = [self.decode(v) for v in x["items"]]
            return frozenset(items) if x["frozen"] else set(items)
        if tag == "range":
            return range(*x["value"])
        if tag == "slice":
            return slice(*(self.decode(v) for v in x["value"]))
        if tag == "dict":
            return {self.decode(k): self.decode(v) for k, v in x["items"]}
        if tag == "function":
            fn = _import(x["path"], self.allow, "the function")
            if not callable(fn) or isinstance(fn, type):
                raise StoreError(f"{x['path']} is not a function")
            return fn
        if tag == "dataclass":
            cls = _import(x["type"], self.allow, "the class")
            if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
                raise StoreError(f"{x['type']} is not a dataclass")
            return cls(**{k: self.decode(v) for k, v in x["fields"].items()})
        raise StoreError(
            f"the stored call holds a {tag!r} value this process cannot rebuild; import the "
            "module that registers it (interplab.techniques registers models, corpora and tensors)"
        )


def resolve_function(call: StoredCall, technique: str, allow: Iterable[str] = ()) -> Any:
    """Returns the recorded function a stored call names, checked to record ``technique``."""
    fn = _import(call.function, allow, "the function")
    if getattr(fn, MARK, None) != technique:
        raise StoreError(
            f"{call.function} is not the function that recorded {technique!r} runs "
            "(it is not decorated with store.recorded for it)"
        )
    return fn


def decode_call(
    call: StoredCall,
    fn: Callable[..., Any],
    *,
    context: dict[str, Any] | None = None,
    allow: Iterable[str] = (),
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Returns the positional and keyword arguments to call ``fn`` with, rebuilt."""
    if call.not_stored:
        raise StoreError(f"its call was not stored: {call.not_stored}")
    dec = _Decoder(call.arrays, {} if context is None else context, allow)
    arguments = {name: dec.decode(value) for name, value in call.arguments.items()}
    signature = inspect.signature(fn)
    unknown = set(arguments) - set(signature.parameters)
    if unknown:
        raise StoreError(
            f"{function_path(fn)} no longer takes {', '.join(sorted(unknown))}; the run was "
            "recorded by another version of it"
        )
    bound = inspect.BoundArguments(signature, arguments)  # type: ignore[arg-type]
    return bound.args, bound.kwargs


__all__ = [
    "MARK",
    "MAX_ARRAY_BYTES",
    "EncodedCall",
    "NotStorable",
    "StoredCall",
    "decode_call",
    "encode_call",
    "function_path",
    "read_call",
    "register",
    "resolve_function",
    "too_large",
]
