"""Comparing two runs number by number: results for `rerun`, configs and summaries for diffs.

1. Walk two JSON trees (results as ``Result.to_dict`` encodes them, configs, summaries) side by
   side; arrays (``{"__array__": dtype, "shape", "data"}``) are compared element by element,
   with NaN equal to NaN and ``'inf'`` strings read back as numbers.
2. A number matches exactly when the two are equal, or within tolerance when
   ``|a - b| <= atol + rtol * |b|`` (numpy's ``isclose`` rule, ``b`` the stored value).
3. Anything else that differs (a string, a shape, a missing key) is a difference too. Every
   difference is counted; the first `MAX_LISTED` are listed by path (``heads[3, 5]``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from interplab.store.records import RunRecord

MAX_LISTED = 200


@dataclass(frozen=True)
class Difference:
    """One value that differs: where, the two values, and the absolute difference of numbers."""

    path: str
    stored: Any
    new: Any
    abs_diff: float | None


@dataclass(frozen=True)
class Comparison:
    """Two trees compared: how many numbers, how many equal, within tolerance, and what differs."""

    n_numbers: int
    n_equal: int
    n_within: int
    n_differences: int
    differences: tuple[Difference, ...]
    rtol: float
    atol: float
    max_abs_diff: float

    @property
    def exact(self) -> bool:
        """Whether every number (and every other value) is identical."""
        return self.n_differences == 0 and self.n_equal == self.n_numbers

    @property
    def matches(self) -> bool:
        """Whether every value is equal or, for numbers, within tolerance."""
        return self.n_differences == 0


def _num(x: Any) -> float | None:
    if isinstance(x, bool):
        return None
    if isinstance(x, int | float):
        return float(x)
    if x in ("nan", "inf", "-inf"):
        return float(x)
    return None


class _Walker:
    def __init__(self, rtol: float, atol: float, skip: tuple[str, ...] = ()) -> None:
        self.rtol, self.atol, self.skip = rtol, atol, skip
        self.n_numbers = self.n_equal = self.n_within = self.n_diff = 0
        self.max_abs = 0.0
        self.listed: list[Difference] = []

    def differ(self, path: str, a: Any, b: Any, d: float | None = None) -> None:
        self.n_diff += 1
        if len(self.listed) < MAX_LISTED:
            self.listed.append(Difference(path, a, b, d))

    def walk(self, path: str, a: Any, b: Any) -> None:
        """Compares stored value ``a`` with new value ``b``."""
        if isinstance(a, dict) and isinstance(b, dict):
            if "__array__" in a and "__array__" in b:
                self.arrays(path, a, b)
                return
            for key in sorted((set(a) | set(b)) - set(self.skip), key=str):
                sub = f"{path}.{key}" if path else str(key)
                if key not in a or key not in b:
                    self.differ(sub, a.get(key, "<absent>"), b.get(key, "<absent>"))
                else:
                    self.walk(sub, a[key], b[key])
            return
        if isinstance(a, list) and isinstance(b, list):
            if len(a) != len(b):
                self.differ(f"{path} (length)", len(a), len(b))
                return
            fa, fb = _floats(a), _floats(b)
            if a and fa is not None and fb is not None:
                self.numbers(path, fa, fb, (len(a),))
                return
            for i, (x, y) in enumerate(zip(a, b, strict=True)):
                self.walk(f"{path}[{i}]", x, y)
            return
        na, nb = _num(a), _num(b)
        if na is not None and nb is not None:
            self.numbers(path, np.array([na]), np.array([nb]), ())
        elif a != b:
            self.differ(path, a, b)

    def arrays(self, path: str, a: dict[str, Any], b: dict[str, Any]) -> None:
        if list(a["shape"]) != list(b["shape"]):
            self.differ(f"{path} (shape)", a["shape"], b["shape"])
            return
        fa, fb = _floats(a["data"]), _floats(b["data"])
        if fa is not None and fb is not None:
            self.numbers(path, fa, fb, tuple(a["shape"]))
            return
        for i, (x, y) in enumerate(zip(a["data"], b["data"], strict=True)):
            if x != y:
                self.differ(f"{path}[{i}]", x, y)

    def numbers(
        self, path: str, stored: np.ndarray, new: np.ndarray, shape: tuple[int, ...]
    ) -> None:
        equal = (new == stored) | (np.isnan(new) & np.isnan(stored))
        with np.errstate(invalid="ignore"):
            diff = np.abs(new - stored)
            close = equal | (diff <= self.atol + self.rtol * np.abs(stored))
        self.n_numbers += new.size
        self.n_equal += int(equal.sum())
        self.n_within += int((close & ~equal).sum())
        finite = diff[~equal & np.isfinite(diff)]
        if finite.size:
            self.max_abs = max(self.max_abs, float(finite.max()))
        for flat in np.flatnonzero(~close):
            where = np.unravel_index(int(flat), shape) if shape else ()
            label = f"{path}[{', '.join(str(int(i)) for i in where)}]" if shape else path
            d = float(diff[flat]) if np.isfinite(diff[flat]) else None
            self.differ(label, float(stored[flat]), float(new[flat]), d)


def _floats(values: list[Any]) -> np.ndarray | None:
    """Returns the list as floats when every item is a number (NaN/inf strings included)."""
    out = [_num(x) for x in values]
    return None if any(x is None for x in out) else np.array(out, dtype=float)


def compare(
    stored: Any, new: Any, *, rtol: float = 0.0, atol: float = 0.0, skip: tuple[str, ...] = ()
) -> Comparison:
    """Returns the comparison of two JSON trees number by number (keys in ``skip`` are left out
    at every depth: a result's provenance, and a nested result's, holds times and commands that
    always differ)."""
    w = _Walker(rtol, atol, skip)
    w.walk("", stored, new)
    return Comparison(
        n_numbers=w.n_numbers,
        n_equal=w.n_equal,
        n_within=w.n_within,
        n_differences=w.n_diff,
        differences=tuple(w.listed),
        rtol=rtol,
        atol=atol,
        max_abs_diff=w.max_abs,
    )


@dataclass(frozen=True)
class RunDiff:
    """Two runs side by side: what they ran on, their configs, and their summary numbers."""

    a: int
    b: int
    setup: Comparison  # technique, model and weights hash, seed, data hash, git, versions
    config: Comparison
    numbers: Comparison | None  # None when either run has no summary

    @property
    def same_setup(self) -> bool:
        return self.setup.matches and self.config.matches


_SETUP = (
    "technique",
    "model_name",
    "model_sha256",
    "seed",
    "data_sha256",
    "git_commit",
    "git_dirty",
    "versions",
)


def diff_runs(
    a: RunRecord, b: RunRecord, summary_a: dict[str, Any] | None, summary_b: dict[str, Any] | None
) -> RunDiff:
    """Returns the differences between two runs (``a`` plays "stored", ``b`` "new")."""
    setup = compare({k: getattr(a, k) for k in _SETUP}, {k: getattr(b, k) for k in _SETUP})
    numbers = None
    if summary_a is not None and summary_b is not None:
        keep = ("mean", "ci_low", "ci_high", "p_value", "p_adjusted", "n", "n_tests", "effect_size")
        numbers = compare({k: summary_a.get(k) for k in keep}, {k: summary_b.get(k) for k in keep})
    return RunDiff(a.id, b.id, setup, compare(a.config, b.config), numbers)


__all__ = ["MAX_LISTED", "Comparison", "Difference", "RunDiff", "compare", "diff_runs"]
