"""Permutation tests for a mean effect: paired sign flip and two-sample, vectorised over cells.

Algorithm (values shaped `[n_examples, *cells]`):

1. Observed statistic: the mean of `values - baseline - null` (sign flip), or
   `mean(a) - mean(b)` (two-sample).
2. Null distribution. Sign flip: under H0 each unit's differences are symmetric about zero, so
   flipping the sign of any unit leaves their distribution unchanged (Fisher 1935; Good 2005,
   sec. 3.6). With `groups`, whole groups are flipped together, which stays valid when examples
   of one prompt template are correlated. Two-sample: under H0 the labels are exchangeable, so
   every way of splitting the pooled examples into sizes `n_a` and `n_b` is equally likely.
3. Enumerate every sign pattern (`2^units`) or every split (`C(n_a + n_b, n_a)`) when that is at
   most `n_resamples`; then p is the exact share at least as extreme as observed (the identity
   is among them). Otherwise draw `n_resamples` of them and use
   `p = (1 + #extreme) / (1 + n_resamples)`, which never reports p = 0 and keeps the test
   valid (Phipson & Smyth 2010).
4. One sign (or membership) matrix serves every cell: each cell's permuted means are one matrix
   product, done in chunks of rows to bound memory.
5. "greater" counts permuted statistics >= observed, "less" counts <= observed. "two-sided"
   counts |permuted| >= |observed| for the sign flip, whose null distribution is symmetric by
   construction (equal to doubling the one-sided p under exact enumeration, but it uses both
   tails of a random sample, so the smallest attainable p is 1 / (1 + n_resamples), not twice
   that: 10,000 resamples can then pass Holm over ~500 cells). The two-sample null is not
   symmetric when n_a != n_b, so there it is twice the smaller one-sided p, capped at 1, as in
   `scipy.stats.permutation_test`.

References: R. A. Fisher, "The Design of Experiments" (1935); P. Good, "Permutation, Parametric,
and Bootstrap Tests of Hypotheses", 3rd ed. (2005); B. Phipson & G. K. Smyth, "Permutation
P-values Should Never Be Zero", Stat. Appl. Genet. Mol. Biol. 9(1) (2010), art. 39.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np

from interplab.stats._validate import (
    StatsInputError,
    as_cell_block,
    as_float_array,
    check_choice,
    check_n_resamples,
    check_seed,
    group_codes,
    paired_differences,
)

Alternative = Literal["two-sided", "greater", "less"]
PermutationKind = Literal["sign-flip", "two-sample"]

ALTERNATIVES: tuple[str, ...] = get_args(Alternative)

# Float64 elements per chunk of permuted statistics (32 MB).
_CHUNK_ELEMENTS = 2**22
# Permuted statistics within this relative distance of the observed one count as ties, so an
# exact enumeration includes the identity even when sums are rounded in a different order.
_RELATIVE_TIE = 1e-12


@dataclass(frozen=True)
class PermutationResult:
    """Permutation test per cell: `statistic` and `p_value` shaped like the cells (0-d scalar).

    `n_resamples` is how many sign patterns or splits were evaluated (all of them when `exact`).
    `sizes` is `(n_examples,)` for a sign flip and `(n_a, n_b)` for a two-sample test.
    """

    statistic: np.ndarray
    p_value: np.ndarray
    alternative: Alternative
    kind: PermutationKind
    exact: bool
    n_resamples: int
    sizes: tuple[int, ...]
    seed: int

    def __post_init__(self) -> None:
        check_choice(self.alternative, "alternative", ALTERNATIVES)
        check_choice(self.kind, "permutation test kind", get_args(PermutationKind))
        if self.statistic.shape != self.p_value.shape:
            raise StatsInputError(
                f"statistic {self.statistic.shape} and p_value {self.p_value.shape} differ."
            )


def sign_flip_test(
    values: np.ndarray,
    *,
    baseline: np.ndarray | None = None,
    null: float = 0.0,
    alternative: Alternative = "two-sided",
    n_resamples: int = 10_000,
    seed: int = 0,
    groups: np.ndarray | None = None,
) -> PermutationResult:
    """Return the sign-flip permutation p-value that each cell's mean differs from `null`.

    `values` is `[n_examples, *cells]`; with `baseline` the test is paired on
    `values - baseline`. With `groups` (one label per example) whole groups flip together.
    """
    check_choice(alternative, "alternative", ALTERNATIVES)
    check_n_resamples(n_resamples)
    check_seed(seed)
    block = as_cell_block(paired_differences(values, baseline))
    deviations = block.data - float(null)
    n, m = deviations.shape
    codes = np.arange(n) if groups is None else group_codes(groups, n)
    units = int(codes.max()) + 1

    exact = units < 63 and 2**units <= n_resamples
    count = 2**units if exact else n_resamples
    observed = deviations.mean(axis=0)
    tolerance = _RELATIVE_TIE * np.abs(deviations).max(axis=0)
    rows = max(1, _CHUNK_ELEMENTS // max(m, n))
    at_least = np.zeros(m)
    at_most = np.zeros(m)
    beyond = np.zeros(m)
    for signs in _sign_patterns(units, exact, n_resamples, seed, rows):
        permuted = (signs[:, codes] @ deviations) / n
        at_least += (permuted >= observed - tolerance).sum(axis=0)
        at_most += (permuted <= observed + tolerance).sum(axis=0)
        beyond += (np.abs(permuted) >= np.abs(observed) - tolerance).sum(axis=0)

    if alternative == "two-sided":
        p_value = beyond / count if exact else (1.0 + beyond) / (1.0 + count)
    else:
        p_value = _p_value(at_least, at_most, count, exact, alternative)
    return PermutationResult(
        statistic=block.scatter(observed + float(null)),
        p_value=block.scatter(p_value),
        alternative=alternative,
        kind="sign-flip",
        exact=exact,
        n_resamples=count,
        sizes=(n,),
        seed=int(seed),
    )


def two_sample_permutation_test(
    a: np.ndarray,
    b: np.ndarray,
    *,
    alternative: Alternative = "two-sided",
    n_resamples: int = 10_000,
    seed: int = 0,
) -> PermutationResult:
    """Return the permutation p-value that `mean(a) - mean(b)` differs from zero, per cell.

    `a` is `[n_a, *cells]` and `b` is `[n_b, *cells]`: two independent sets of examples (an
    unpaired design). "greater" tests `mean(a) > mean(b)`.
    """
    check_choice(alternative, "alternative", ALTERNATIVES)
    check_n_resamples(n_resamples)
    check_seed(seed)
    first = as_float_array(a, "a")
    second = as_float_array(b, "b")
    if first.ndim == 0 or second.ndim == 0 or first.shape[1:] != second.shape[1:]:
        raise StatsInputError(
            "a and b must be [n_a, *cells] and [n_b, *cells] with the same cells, got shapes "
            f"{first.shape} and {second.shape}."
        )
    if first.shape[0] < 1 or second.shape[0] < 1:
        raise StatsInputError(
            f"a and b each need at least one example, got n_a={first.shape[0]}, "
            f"n_b={second.shape[0]}."
        )
    n_a, n_b = first.shape[0], second.shape[0]
    block = as_cell_block(np.concatenate([first, second]), name="a and b (pooled)")
    pooled = block.data
    total_n, m = pooled.shape

    n_splits = math.comb(total_n, n_a)
    exact = n_splits <= n_resamples
    count = n_splits if exact else n_resamples
    total = pooled.sum(axis=0)
    observed = pooled[:n_a].mean(axis=0) - pooled[n_a:].mean(axis=0)
    tolerance = _RELATIVE_TIE * np.abs(pooled).max(axis=0)
    rows = max(1, _CHUNK_ELEMENTS // max(m, total_n))
    at_least = np.zeros(m)
    at_most = np.zeros(m)
    for membership in _splits(total_n, n_a, exact, n_resamples, seed, rows):
        sum_a = membership @ pooled
        permuted = sum_a / n_a - (total - sum_a) / n_b
        at_least += (permuted >= observed - tolerance).sum(axis=0)
        at_most += (permuted <= observed + tolerance).sum(axis=0)

    p_value = _p_value(at_least, at_most, count, exact, alternative)
    return PermutationResult(
        statistic=block.scatter(observed),
        p_value=block.scatter(p_value),
        alternative=alternative,
        kind="two-sample",
        exact=exact,
        n_resamples=count,
        sizes=(n_a, n_b),
        seed=int(seed),
    )


def _sign_patterns(
    units: int, exact: bool, n_resamples: int, seed: int, rows: int
) -> Iterator[np.ndarray]:
    """Yield ±1 sign matrices `[rows, units]`: all `2^units` patterns, or random ones."""
    if exact:
        for start in range(0, 2**units, rows):
            codes = np.arange(start, min(start + rows, 2**units))
            bits = (codes[:, None] >> np.arange(units)[None, :]) & 1
            yield 1.0 - 2.0 * bits
        return
    rng = np.random.default_rng(seed)
    for start in range(0, n_resamples, rows):
        draws = rng.integers(0, 2, size=(min(rows, n_resamples - start), units))
        yield 1.0 - 2.0 * draws


def _splits(
    total_n: int, n_a: int, exact: bool, n_resamples: int, seed: int, rows: int
) -> Iterator[np.ndarray]:
    """Yield 0/1 membership matrices `[rows, total_n]` marking which examples form group a."""
    if exact:
        combos = itertools.combinations(range(total_n), n_a)
        while chunk := list(itertools.islice(combos, rows)):
            membership = np.zeros((len(chunk), total_n))
            membership[np.arange(len(chunk))[:, None], np.array(chunk, dtype=np.intp)] = 1.0
            yield membership
        return
    rng = np.random.default_rng(seed)
    for start in range(0, n_resamples, rows):
        size = min(rows, n_resamples - start)
        order = rng.permuted(np.tile(np.arange(total_n), (size, 1)), axis=1)
        membership = np.zeros((size, total_n))
        membership[np.arange(size)[:, None], order[:, :n_a]] = 1.0
        yield membership


def _p_value(
    at_least: np.ndarray, at_most: np.ndarray, count: int, exact: bool, alternative: str
) -> np.ndarray:
    """Turn counts of permuted statistics >= / <= observed into p-values."""
    if exact:
        greater, less = at_least / count, at_most / count
    else:
        greater, less = (1.0 + at_least) / (1.0 + count), (1.0 + at_most) / (1.0 + count)
    if alternative == "greater":
        return greater
    if alternative == "less":
        return less
    return np.minimum(1.0, 2.0 * np.minimum(greater, less))
