"""Reading a stored summary back: the `Summary` its dict came from, and its headline cell.

A run's summary is stored as ``Summary.to_dict()`` (arrays as nested lists, NaN as null). The
report and the CLI need its sentences (``describe``) and one row per run for a table:

1. `summary_from_dict` rebuilds the `interplab.stats.Summary` (null back to NaN, lists back to
   arrays of the stored cell shape), so ``describe()`` prints what the live summary printed.
2. `headline` picks the cell with the largest absolute mean, as ``describe`` names it, and
   returns its mean, CI and adjusted p-value with n and the number of tests. The store keeps it
   in its own small column, so listing thousands of runs never parses their summaries.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from interplab.stats import Summary

_DECODE = json.JSONDecoder().raw_decode
_ARRAYS = ("mean", "ci_low", "ci_high", "p_value", "p_adjusted", "effect_size")
_MASKS = ("significant", "weak_evidence")


def _array(value: Any, shape: tuple[int, ...], dtype: type) -> np.ndarray:
    if dtype is bool:
        return np.asarray(value, dtype=bool).reshape(shape)
    flat = np.asarray(value if isinstance(value, list) else [value], dtype=object).ravel()
    return np.array([np.nan if v is None else float(v) for v in flat], dtype=float).reshape(shape)


def summary_from_dict(d: dict[str, Any]) -> Summary:
    """Returns the `Summary` whose ``to_dict()`` gave ``d``."""
    from interplab.stats import Summary

    shape = tuple(d.get("cell_shape") or ())
    names = {f.name for f in fields(Summary)}
    kwargs: dict[str, Any] = {k: v for k, v in d.items() if k in names}
    for k in _ARRAYS:
        kwargs[k] = _array(d[k], shape, float)
    for k in _MASKS:
        kwargs[k] = _array(d[k], shape, bool)
    mde = d.get("min_detectable_effect")
    kwargs["min_detectable_effect"] = float("nan") if mde is None else float(mde)
    kwargs["notes"] = tuple(d.get("notes") or ())
    return Summary(**kwargs)


@dataclass(frozen=True)
class Headline:
    """A summary's most extreme cell, as a table row states it."""

    cell: tuple[int, ...]
    mean: float
    ci_low: float
    ci_high: float
    p_adjusted: float
    significant: bool
    n: int
    n_tests: int
    confidence: float
    correction: str


def headline(d: dict[str, Any]) -> Headline:
    """Returns the cell with the largest absolute mean (the one ``describe`` names)."""
    shape = tuple(d.get("cell_shape") or ())
    mean = _array(d["mean"], shape, float)
    magnitude = np.where(np.isnan(mean), -np.inf, np.abs(mean))
    top = np.unravel_index(int(np.argmax(magnitude)), shape) if shape else ()

    def at(key: str, dtype: type = float) -> Any:
        return _array(d[key], shape, dtype)[top].item()

    return Headline(
        cell=tuple(int(i) for i in top),
        mean=float(mean[top]),
        ci_low=at("ci_low"),
        ci_high=at("ci_high"),
        p_adjusted=at("p_adjusted"),
        significant=bool(at("significant", bool)),
        n=int(d["n"]),
        n_tests=int(d["n_tests"]),
        confidence=float(d["confidence"]),
        correction=str(d["correction"]),
    )


def headline_json(d: dict[str, Any] | None) -> str | None:
    """Returns the headline of a stored summary as the JSON the ``headline`` column keeps."""
    if d is None:
        return None
    try:
        h = asdict(headline(d))
    except (KeyError, TypeError, ValueError):
        return None  # not a summary this version can read: listings show no headline
    return json.dumps(
        {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in h.items()}
    )


def headline_from_json(text: str | None) -> Headline | None:
    """Returns the `Headline` kept in the ``headline`` column (None when there is none)."""
    if text is None:
        return None
    d = _DECODE(text)[0]
    for k in ("mean", "ci_low", "ci_high", "p_adjusted"):
        d[k] = float("nan") if d[k] is None else float(d[k])
    d["cell"] = tuple(d["cell"])
    return Headline(**d)


__all__ = ["Headline", "headline", "headline_from_json", "headline_json", "summary_from_dict"]
