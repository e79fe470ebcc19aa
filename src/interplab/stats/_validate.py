"""Input checks shared by every statistics function, and the `[n_examples, *cells]` layout.

Every public function in `interplab.stats` takes per-example values shaped
`[n_examples, *cells]`: axis 0 is the example axis (one row per prompt), and the remaining
axes, if any, are the cells of a sweep (layer x position, layer x head, ...). A scalar metric is
shape `[n_examples]` and has zero cell axes, so its results are 0-d arrays.

Cells are handled in one flat block of columns, `[n_examples, n_cells]`, so the resampling code
can use matrix products. A cell may be entirely NaN (an undefined cell of a grid, such as a
position past the end of a shorter prompt): it is carried through as NaN and not tested. A cell
that is NaN for only some examples is an error, because resampling with one shared index matrix
needs the same examples in every cell; the message says which cells and how to fix it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from interplab.errors import UserError


class StatsInputError(UserError):
    """Data or options a statistic cannot use (too few examples, a bad level); says what is valid."""


@dataclass(frozen=True)
class CellBlock:
    """Per-example values flattened to `[n_examples, n_valid_cells]`, and how to undo it.

    `data` holds only the cells that are finite for every example; `valid` marks them among all
    `n_cells` flattened cells, and `cell_shape` restores the caller's grid.
    """

    data: np.ndarray
    cell_shape: tuple[int, ...]
    valid: np.ndarray

    @property
    def n(self) -> int:
        return int(self.data.shape[0])

    def scatter(self, per_valid_cell: np.ndarray, fill: float = np.nan) -> np.ndarray:
        """Return `per_valid_cell` (shape `[n_valid_cells]`) laid out on the caller's grid."""
        out = np.full(self.valid.shape, fill, dtype=np.result_type(per_valid_cell, float))
        out[self.valid] = per_valid_cell
        return out.reshape(self.cell_shape)


def as_cell_block(values: object, name: str = "values", min_examples: int = 1) -> CellBlock:
    """Return `values` as a `CellBlock`, raising a ValueError that says what was wrong."""
    array = as_float_array(values, name)
    if array.ndim == 0:
        raise StatsInputError(
            f"{name} must have an example axis first: shape [n_examples] or "
            f"[n_examples, *cells], got a scalar."
        )
    n = array.shape[0]
    if n < min_examples:
        raise StatsInputError(
            f"{name} needs at least {min_examples} example(s) along axis 0 (the example axis), "
            f"got {n}."
        )
    cell_shape = tuple(int(s) for s in array.shape[1:])
    flat = array.reshape(n, -1)
    if flat.shape[1] == 0:
        raise StatsInputError(
            f"{name} has no cells: shape {array.shape} has a zero-length cell axis."
        )
    if np.isinf(flat).any():
        raise StatsInputError(f"{name} contains infinite values; statistics need finite numbers.")
    nan = np.isnan(flat)
    all_nan = nan.all(axis=0)
    partial = nan.any(axis=0) & ~all_nan
    if partial.any():
        bad = [
            np.unravel_index(i, cell_shape) if cell_shape else () for i in np.flatnonzero(partial)
        ]
        shown = ", ".join(str(tuple(int(k) for k in b)) for b in bad[:5])
        more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
        raise StatsInputError(
            f"{name} is NaN for some but not all examples in cell(s) {shown}{more}. "
            "A cell must be finite for every example (it is resampled with the same indices "
            "as every other cell) or NaN for every example (an undefined cell, reported as NaN "
            "and not tested). Drop the examples with NaNs, or summarise those cells separately."
        )
    valid = np.asarray(~all_nan)
    if not valid.any():
        raise StatsInputError(f"{name} is NaN in every cell; there is nothing to summarise.")
    return CellBlock(data=np.ascontiguousarray(flat[:, valid]), cell_shape=cell_shape, valid=valid)


def as_float_array(values: object, name: str) -> np.ndarray:
    """Return `values` as a float64 array, or raise a ValueError naming the argument."""
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise StatsInputError(
            f"{name} must be numeric array-like; could not convert: {error}"
        ) from None
    return array


def paired_differences(values: object, baseline: object | None) -> np.ndarray:
    """Return `values - baseline` per example (the paired design), or `values` as floats."""
    treated = as_float_array(values, "values")
    if baseline is None:
        return treated
    base = as_float_array(baseline, "baseline")
    if treated.shape != base.shape:
        raise StatsInputError(
            f"baseline must have the same shape as values for a paired design (one baseline "
            f"value per example and cell): values {treated.shape}, baseline {base.shape}."
        )
    return treated - base


def check_choice(value: object, name: str, choices: Sequence[str]) -> None:
    """Raise a ValueError listing the valid choices when `value` is not one of them."""
    if value not in choices:
        valid = ", ".join(repr(c) for c in choices)
        raise StatsInputError(f"unknown {name} {value!r}; valid choices are {valid}.")


def check_confidence(confidence: float) -> None:
    if not (isinstance(confidence, int | float) and 0.0 < float(confidence) < 1.0):
        raise StatsInputError(
            f"confidence must be a number strictly between 0 and 1 (e.g. 0.95), got {confidence!r}."
        )


def check_alpha(alpha: float, name: str = "alpha") -> None:
    if not (isinstance(alpha, int | float) and 0.0 < float(alpha) < 1.0):
        raise StatsInputError(
            f"{name} must be a number strictly between 0 and 1 (e.g. 0.05), got {alpha!r}."
        )


def check_n_resamples(n_resamples: int) -> None:
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, int | np.integer):
        raise StatsInputError(f"n_resamples must be an int, got {type(n_resamples).__name__}.")
    if n_resamples < 1:
        raise StatsInputError(
            f"n_resamples must be at least 1 (10,000 is typical), got {n_resamples}."
        )


def check_seed(seed: int) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise StatsInputError(
            f"seed must be a non-negative int so results reproduce exactly, got {seed!r}."
        )


def group_codes(groups: object, n: int) -> np.ndarray:
    """Return integer codes `0..n_groups-1` for a per-example `groups` array of length `n`."""
    labels = np.asarray(groups)
    if labels.ndim != 1:
        raise StatsInputError(
            f"groups must be 1-D, one label per example, got shape {labels.shape}."
        )
    if labels.shape[0] != n:
        raise StatsInputError(
            f"groups has {labels.shape[0]} labels but values has {n} examples; "
            "pass one group label (e.g. the prompt template) per example."
        )
    _, codes = np.unique(labels, return_inverse=True)
    n_groups = int(codes.max()) + 1 if n else 0
    if n_groups < 2:
        raise StatsInputError(
            f"groups has {n_groups} distinct label(s); resampling by group needs at least 2 "
            "(and for a useful interval, many more). Pass groups=None to resample examples."
        )
    return codes.astype(np.intp)
