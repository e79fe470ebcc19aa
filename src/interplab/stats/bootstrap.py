"""Bootstrap confidence intervals (percentile and BCa), vectorised over the cells of a sweep.

Algorithm (values shaped `[n_examples, *cells]`; a paired design first takes per-example
differences `values - baseline`):

1. Choose the resampling unit: examples, or groups when `groups` is given (the cluster bootstrap:
   draw groups with replacement and keep all their examples, because examples that share a
   prompt template are not independent; Field & Welsh 2007).
2. Draw one index matrix `[n_resamples, n_units]` from `numpy.random.default_rng(seed)` and reuse
   it for every cell, so cells are resampled identically and the work is matrix-shaped. For the
   mean, each resample is a row of unit counts and every cell's bootstrap means are one matrix
   product `counts @ values`; other statistics gather `values[index]` in memory-bounded chunks.
3. Percentile interval: the `(1 - confidence) / 2` and `(1 + confidence) / 2` quantiles of the
   bootstrap distribution (Efron & Tibshirani 1993, ch. 13).
4. BCa interval (Efron 1987): bias correction `z0 = Phi^-1(share of resamples below the estimate,
   ties counted half)`, acceleration `a` from the jackknife (leave one unit out:
   `a = sum(d^3) / (6 sum(d^2)^1.5)`, `d = mean(jackknife) - jackknife`), then the percentile
   interval at the adjusted levels `Phi(z0 + (z0 + z) / (1 - a (z0 + z)))`. Each cell gets its
   own levels, so quantiles are read from the sorted bootstrap distribution per cell.

References: B. Efron, "Better bootstrap confidence intervals", JASA 82 (1987) 171-185;
B. Efron & R. Tibshirani, "An Introduction to the Bootstrap" (1993); C. A. Field & A. H. Welsh,
"Bootstrapping clustered data", JRSS-B 69 (2007) 369-390.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
from scipy.special import ndtr, ndtri

from interplab.stats._validate import (
    StatsInputError,
    as_cell_block,
    check_choice,
    check_confidence,
    check_n_resamples,
    check_seed,
    group_codes,
    paired_differences,
)

BootstrapMethod = Literal["bca", "percentile"]
StatisticName = Literal["mean", "median"]
StatisticFn = Callable[..., np.ndarray]

BOOTSTRAP_METHODS: tuple[str, ...] = get_args(BootstrapMethod)
STATISTIC_NAMES: tuple[str, ...] = get_args(StatisticName)

# Upper bound on float64 elements held by one gathered chunk (32 MB): keeps a 30 x 15 grid with
# 10,000 resamples well inside a laptop's memory while leaving each numpy call large enough to
# amortise its overhead.
_CHUNK_ELEMENTS = 2**22


@dataclass(frozen=True)
class BootstrapResult:
    """Bootstrap confidence interval per cell: arrays shaped like the cells (0-d for a scalar).

    `estimate` is the statistic on the observed data, `low`/`high` the interval ends and
    `standard_error` the standard deviation of the bootstrap distribution. Undefined cells
    (NaN for every example) are NaN throughout.
    """

    estimate: np.ndarray
    low: np.ndarray
    high: np.ndarray
    standard_error: np.ndarray
    confidence: float
    method: BootstrapMethod
    statistic: str
    n: int
    n_groups: int | None
    n_resamples: int
    seed: int

    def __post_init__(self) -> None:
        check_choice(self.method, "bootstrap method", BOOTSTRAP_METHODS)
        check_confidence(self.confidence)
        shapes = {a.shape for a in (self.estimate, self.low, self.high, self.standard_error)}
        if len(shapes) != 1:
            raise StatsInputError(
                f"estimate, low, high and standard_error differ in shape: {shapes}."
            )


def bootstrap_ci(
    values: np.ndarray,
    *,
    baseline: np.ndarray | None = None,
    statistic: StatisticName | StatisticFn = "mean",
    confidence: float = 0.95,
    method: BootstrapMethod = "bca",
    n_resamples: int = 10_000,
    seed: int = 0,
    groups: np.ndarray | None = None,
) -> BootstrapResult:
    """Return a bootstrap confidence interval of `statistic` for every cell of `values`.

    `values` is `[n_examples, *cells]`. With `baseline` (same shape) the design is paired and the
    per-example differences `values - baseline` are bootstrapped. `statistic` is "mean",
    "median", or a callable `f(array, axis=-1)` reducing the example axis. With `groups` (one
    label per example, e.g. the prompt template) whole groups are resampled.
    """
    check_choice(method, "bootstrap method", BOOTSTRAP_METHODS)
    check_confidence(confidence)
    check_n_resamples(n_resamples)
    check_seed(seed)
    stat_fn, stat_name = _resolve_statistic(statistic)
    block = as_cell_block(paired_differences(values, baseline), min_examples=2)
    codes = None if groups is None else group_codes(groups, block.n)
    n_groups = None if codes is None else int(codes.max()) + 1

    data = block.data
    estimate = _apply(stat_fn, data.T)
    theta = _bootstrap_distribution(data, stat_fn, stat_name, codes, n_resamples, seed)
    standard_error = theta.std(axis=0, ddof=1) if n_resamples > 1 else np.zeros(data.shape[1])

    tail = (1.0 - confidence) / 2.0
    if method == "percentile":
        levels_low = np.full(data.shape[1], tail)
        levels_high = np.full(data.shape[1], 1.0 - tail)
    else:
        jackknife = _jackknife(data, stat_fn, stat_name, codes)
        levels_low, levels_high = _bca_levels(theta, estimate, jackknife, tail)
    theta.sort(axis=0)
    low = _quantile_per_cell(theta, levels_low)
    high = _quantile_per_cell(theta, levels_high)

    return BootstrapResult(
        estimate=block.scatter(estimate),
        low=block.scatter(low),
        high=block.scatter(high),
        standard_error=block.scatter(standard_error),
        confidence=float(confidence),
        method=method,
        statistic=stat_name,
        n=block.n,
        n_groups=n_groups,
        n_resamples=int(n_resamples),
        seed=int(seed),
    )


def resample_indices(seed: int, n_resamples: int, n_units: int, rows: int) -> Iterator[np.ndarray]:
    """Yield the bootstrap index matrix `[n_resamples, n_units]` in blocks of `rows` resamples.

    The same seed always yields the same matrix, so calling this once per block of cells gives
    every cell the same resamples without holding all of them in memory at once.
    """
    rng = np.random.default_rng(seed)
    for start in range(0, n_resamples, rows):
        yield rng.integers(0, n_units, size=(min(rows, n_resamples - start), n_units))


def _resolve_statistic(statistic: StatisticName | StatisticFn) -> tuple[StatisticFn, str]:
    if callable(statistic):
        return statistic, getattr(statistic, "__name__", "custom statistic")
    check_choice(statistic, "statistic", (*STATISTIC_NAMES, "<callable f(array, axis)>"))
    return (np.mean if statistic == "mean" else np.median), statistic


def _apply(stat_fn: StatisticFn, array: np.ndarray) -> np.ndarray:
    """Reduce the last axis of `array` with `stat_fn`, checking the callable's output shape."""
    out = np.asarray(stat_fn(array, axis=-1), dtype=np.float64)
    if out.shape != array.shape[:-1]:
        raise StatsInputError(
            f"statistic must reduce the given axis: for input {array.shape} and axis=-1 it "
            f"should return shape {array.shape[:-1]}, got {out.shape}."
        )
    return out


def _bootstrap_distribution(
    data: np.ndarray,
    stat_fn: StatisticFn,
    stat_name: str,
    codes: np.ndarray | None,
    n_resamples: int,
    seed: int,
) -> np.ndarray:
    """Return the bootstrap statistics `[n_resamples, n_cells]` from one shared index matrix."""
    n, m = data.shape
    theta = np.empty((n_resamples, m))
    units = n if codes is None else int(codes.max()) + 1
    rows = max(1, _CHUNK_ELEMENTS // max(units, m, n))
    members = None if codes is None else [np.flatnonzero(codes == g) for g in range(units)]
    sizes_equal = members is None or len({len(g) for g in members}) == 1
    sorted_cells = _SortedCells.of(data) if stat_name == "median" else None
    data_t = np.ascontiguousarray(data.T)
    row = 0
    for index in resample_indices(seed, n_resamples, units, rows):
        block = slice(row, row + len(index))
        row += len(index)
        if stat_name in STATISTIC_NAMES:
            # Mean and median depend on a resample only through how often it drew each example,
            # so one count matrix serves every cell (a matrix product for the mean).
            counts = _row_counts(index, units)
            if codes is not None:
                counts = counts[:, codes]
            theta[block] = _from_counts(data, counts, stat_name, sorted_cells)
        elif members is None:
            theta[block] = _gathered_statistic(data_t, index, stat_fn)
        elif sizes_equal:
            example_index = np.stack(members)[index].reshape(len(index), -1)
            theta[block] = _gathered_statistic(data_t, example_index, stat_fn)
        else:
            # Unequal group sizes give resamples of different lengths; each resample is still
            # vectorised over every cell, so the loop runs n_resamples times, not per cell.
            for k, picked in enumerate(index):
                take = np.concatenate([members[g] for g in picked])
                theta[block.start + k] = _apply(stat_fn, data_t[:, take])
    return theta


@dataclass(frozen=True)
class _SortedCells:
    """Each cell's values in ascending order, and the example order that sorts them."""

    values: np.ndarray
    order: np.ndarray

    @classmethod
    def of(cls, data: np.ndarray) -> _SortedCells:
        order = np.argsort(data, axis=0, kind="stable")
        values = np.take_along_axis(data, order, axis=0)
        return cls(values=np.ascontiguousarray(values.T), order=np.ascontiguousarray(order.T))


def _from_counts(
    data: np.ndarray, counts: np.ndarray, stat_name: str, sorted_cells: _SortedCells | None
) -> np.ndarray:
    """Return the mean or median of each weighted resample, `[n_rows, n_cells]`.

    `counts[r, i]` is how often resample `r` holds example `i`. The median is read from each
    cell's sorted values: the k-th smallest element of a resample is the first sorted position
    whose cumulative count exceeds k, which avoids materialising `[n_rows, n, n_cells]` values.
    """
    totals = counts.sum(axis=1)
    if stat_name == "mean":
        return (counts @ data) / totals[:, None]
    assert sorted_cells is not None
    m, n = sorted_cells.values.shape
    rows = counts.shape[0]
    int_counts = counts.astype(np.int32)
    lower_rank = ((totals - 1) // 2).astype(np.int32)[:, None, None]
    upper_rank = (totals // 2).astype(np.int32)[:, None, None]
    out = np.empty((rows, m))
    step = max(1, _CHUNK_ELEMENTS // (rows * n))
    for c in range(0, m, step):
        cumulative = np.cumsum(int_counts[:, sorted_cells.order[c : c + step]], axis=-1)
        lower = (cumulative <= lower_rank).sum(axis=-1)
        upper = (cumulative <= upper_rank).sum(axis=-1)
        cells = sorted_cells.values[c : c + step]
        columns = np.arange(cells.shape[0])[None, :]
        out[:, c : c + step] = (cells[columns, lower] + cells[columns, upper]) / 2
    return out


def _gathered_statistic(data_t: np.ndarray, index: np.ndarray, stat_fn: StatisticFn) -> np.ndarray:
    """Return `stat(data_t[c, index[r]])` as `[n_rows, n_cells]`, gathering cells in chunks."""
    m = data_t.shape[0]
    rows, width = index.shape
    out = np.empty((rows, m))
    step = max(1, _CHUNK_ELEMENTS // (rows * width))
    for c in range(0, m, step):
        out[:, c : c + step] = _apply(stat_fn, data_t[c : c + step][:, index]).T
    return out


def _row_counts(index: np.ndarray, units: int) -> np.ndarray:
    """Return how often each unit appears in each resample, `[n_rows, units]`."""
    rows = index.shape[0]
    offsets = (np.arange(rows) * units)[:, None]
    flat = np.bincount((index + offsets).ravel(), minlength=rows * units)
    return flat.reshape(rows, units).astype(np.float64)


def _jackknife(
    data: np.ndarray, stat_fn: StatisticFn, stat_name: str, codes: np.ndarray | None
) -> np.ndarray:
    """Return leave-one-unit-out statistics `[n_units, n_cells]` (units: examples or groups)."""
    n = data.shape[0]
    if stat_name in STATISTIC_NAMES:
        kept = 1.0 - (np.eye(n) if codes is None else np.eye(int(codes.max()) + 1)[:, codes])
        sorted_cells = _SortedCells.of(data) if stat_name == "median" else None
        return _from_counts(data, kept, stat_name, sorted_cells)
    data_t = np.ascontiguousarray(data.T)
    if codes is None:
        ranks = np.arange(n - 1)
        leave_one_out = ranks[None, :] + (ranks[None, :] >= np.arange(n)[:, None])
        return _gathered_statistic(data_t, leave_one_out, stat_fn)
    units = int(codes.max()) + 1
    return np.stack([_apply(stat_fn, data_t[:, codes != g]) for g in range(units)])


def _bca_levels(
    theta: np.ndarray, estimate: np.ndarray, jackknife: np.ndarray, tail: float
) -> tuple[np.ndarray, np.ndarray]:
    """Return the BCa-adjusted lower and upper quantile levels per cell."""
    n_resamples = theta.shape[0]
    below = (theta < estimate).sum(axis=0) + (theta <= estimate).sum(axis=0)
    # Ties count half; clipping keeps z0 finite when the estimate lies outside every resample
    # (possible for a median on tiny n), which would otherwise turn the interval into NaN.
    share = np.clip(below / (2.0 * n_resamples), 0.5 / n_resamples, 1.0 - 0.5 / n_resamples)
    z0 = ndtri(share)

    spread = jackknife.mean(axis=0) - jackknife
    numerator = (spread**3).sum(axis=0)
    denominator = 6.0 * (spread**2).sum(axis=0) ** 1.5
    # A cell whose jackknife values are all equal has no skew to correct: acceleration 0.
    safe = denominator > 0
    acceleration = np.zeros_like(numerator)
    acceleration[safe] = numerator[safe] / denominator[safe]

    def adjusted(z: float) -> np.ndarray:
        shifted = z0 + z
        # 1 - a * shifted can reach 0 for extreme skew; the level then goes to 0 or 1.
        with np.errstate(divide="ignore", invalid="ignore"):
            level = ndtr(z0 + shifted / (1.0 - acceleration * shifted))
        return np.nan_to_num(level, nan=0.5)

    return adjusted(float(ndtri(tail))), adjusted(float(ndtri(1.0 - tail)))


def _quantile_per_cell(sorted_theta: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Return each column's quantile at its own level (numpy's 'linear' interpolation)."""
    n_resamples = sorted_theta.shape[0]
    position = np.clip(levels, 0.0, 1.0) * (n_resamples - 1)
    lower = np.floor(position).astype(np.intp)
    upper = np.minimum(lower + 1, n_resamples - 1)
    fraction = position - lower
    low_values = np.take_along_axis(sorted_theta, lower[None, :], axis=0)[0]
    high_values = np.take_along_axis(sorted_theta, upper[None, :], axis=0)[0]
    return low_values + fraction * (high_values - low_values)
