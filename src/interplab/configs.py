"""Technique configs: small frozen dataclasses whose ``Literal`` fields are checked on construction.

A technique takes its options as keyword arguments for convenience and builds one config from
them; the provenance records ``config.to_dict()``, so a result says exactly how it was made, and
`interplab.results` can read the config back. Subclass `Config`, declare fields with types, and
add a ``check`` method for rules beyond the ``Literal`` choices (ranges, combinations).
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any, Literal, get_args, get_origin, get_type_hints

from interplab.errors import UserError
from interplab.sites import Site


class ConfigError(UserError):
    """An option value that is not valid; the message lists what is."""


class Config:
    """Base of technique configs: validates ``Literal`` fields; ``to_dict`` for provenance."""

    def __post_init__(self) -> None:
        hints = get_type_hints(type(self))
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            choices = _literal_choices(hints.get(f.name))
            if choices is not None and value not in choices and not _optional_none(hints, f, value):
                raise ConfigError(
                    f"{f.name}={value!r} is not valid; choose one of: "
                    f"{', '.join(repr(c) for c in choices)}"
                )
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"{f.name} must be a finite number, got {value!r}")
        self.check()

    def check(self) -> None:
        """Raises ConfigError for combinations or ranges that are not valid (override)."""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Any:
        """Returns the config ``to_dict`` wrote (lists back to tuples, Site strings to Sites);
        unknown keys are an error that lists the valid ones."""
        hints = get_type_hints(cls)
        names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
        unknown = sorted(set(data) - set(names))
        if unknown:
            raise ConfigError(
                f"{cls.__name__} has no option {', '.join(unknown)}; valid: {', '.join(names)}"
            )
        return cls(**{k: _typed(hints[k], v) for k, v in data.items()})

    def to_dict(self) -> dict[str, Any]:
        """Returns the config as JSON types (Sites as their string form)."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}  # type: ignore[arg-type]


def _typed(tp: Any, value: Any) -> Any:
    """Returns a JSON value as type ``tp``: Sites parsed, lists to tuples where declared."""
    if value is None:
        return None
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        for option in get_args(tp):
            if option is type(None):
                continue
            try:
                out = _typed(option, value)
            except (TypeError, ValueError):
                continue
            if get_origin(option) is Literal:
                if out in get_args(option):
                    return out
                continue
            kind = get_origin(option) or option
            if isinstance(kind, type) and isinstance(out, kind):
                return out
        return value
    if tp is Site:
        return Site.parse(value)
    if origin is tuple and isinstance(value, list):
        args = get_args(tp)
        item = args[0] if args else Any
        return tuple(_typed(item, v) for v in value)
    if origin is list and isinstance(value, list):
        args = get_args(tp)
        return [_typed(args[0] if args else Any, v) for v in value]
    if tp is float and isinstance(value, int):
        return float(value)
    return value


def _literal_choices(tp: Any) -> tuple[Any, ...] | None:
    if tp is None:
        return None
    if get_origin(tp) is Literal:
        return get_args(tp)
    if get_origin(tp) in (typing.Union, types.UnionType):
        lits = [a for a in get_args(tp) if get_origin(a) is Literal]
        others = [a for a in get_args(tp) if get_origin(a) is not Literal and a is not type(None)]
        if len(lits) == 1 and not others:  # `float | Literal["auto"]`: check() validates
            return get_args(lits[0])
    return None


def _optional_none(hints: dict[str, Any], f: dataclasses.Field[Any], value: Any) -> bool:
    return value is None and type(None) in get_args(hints.get(f.name))


def _plain(value: Any) -> Any:
    if isinstance(value, Site):
        return str(value)
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return value


AUTO = "auto"
"""A memory budget read from the device's free memory (`interplab.core.memory`)."""


def budget(name: str, value: float | str) -> None:
    """Raises ConfigError unless ``value`` is a positive number of MiB or ``"auto"``."""
    if isinstance(value, str):
        if value != AUTO:
            raise ConfigError(f"{name} is a number of MiB or {AUTO!r}, got {value!r}")
        return
    positive(name, value)


def positive(name: str, value: float | int, *, allow_zero: bool = False) -> None:
    """Raises ConfigError unless ``value`` is positive (or zero, with ``allow_zero``)."""
    if value < 0 or (value == 0 and not allow_zero):
        bound = "≥ 0" if allow_zero else "> 0"
        raise ConfigError(f"{name} must be {bound}, got {value!r}")


__all__ = ["AUTO", "Config", "ConfigError", "budget", "positive"]
