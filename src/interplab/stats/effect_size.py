"""Effect sizes per cell: standardised mean difference (Cohen's d, Hedges' g) and rank-biserial.

Designs (arrays shaped `[n_examples, *cells]`):

- "one-sample": `a` against a fixed `null`; d = mean(a - null) / sd(a).
- "paired": `a` and `b` measured on the same examples; d_z = mean(a - b) / sd(a - b)
  (Cohen 1988, sec. 2.3; Lakens 2013 calls it d_z).
- "two-sample": independent `a` and `b`; d_s = (mean(a) - mean(b)) / pooled sd, where
  pooled var = ((n_a - 1) var(a) + (n_b - 1) var(b)) / (n_a + n_b - 2).

Algorithm:

1. Standardised mean difference with sample standard deviations (ddof = 1), as above.
2. Hedges' g multiplies d by the exact small-sample correction
   J(df) = Gamma(df / 2) / (sqrt(df / 2) Gamma((df - 1) / 2)), df = n - 1 or n_a + n_b - 2,
   which removes d's upward bias (Hedges 1981; about 1 - 3 / (4 df - 1)).
3. Rank-biserial correlation, in [-1, 1], robust to outliers and heavy tails:
   two-sample it is Cliff's delta P(a > b) - P(a < b) = 2 U / (n_a n_b) - 1 from the
   Mann-Whitney U with mid-ranks (Cliff 1993); one-sample/paired it is the matched-pairs
   rank-biserial (T+ - T-) / (T+ + T-) over the Wilcoxon signed ranks of the nonzero
   differences (Kerby 2014).

Undefined values are NaN (e.g. zero standard deviation and zero mean, or every difference zero);
zero spread with a nonzero mean gives ±inf. No warnings are raised for either.

References: J. Cohen, "Statistical Power Analysis for the Behavioral Sciences", 2nd ed. (1988);
L. V. Hedges, "Distribution theory for Glass's estimator of effect size", J. Educ. Stat. 6 (1981);
D. Lakens, "Calculating and reporting effect sizes", Front. Psychol. 4 (2013) 863;
N. Cliff, "Dominance statistics", Psychol. Bull. 114 (1993); D. S. Kerby, "The simple difference
formula", Compr. Psychol. 3 (2014).
"""

from __future__ import annotations

from typing import Literal, get_args

import numpy as np
from scipy.special import gammaln
from scipy.stats import rankdata

from interplab.stats._validate import StatsInputError, as_float_array, check_choice

Design = Literal["one-sample", "paired", "two-sample"]
DESIGNS: tuple[str, ...] = get_args(Design)


def cohens_d(
    a: np.ndarray,
    b: np.ndarray | None = None,
    *,
    design: Design | None = None,
    null: float = 0.0,
) -> np.ndarray:
    """Return Cohen's d per cell (shape `cells`; 0-d for a scalar metric).

    `design` defaults to "one-sample" when `b` is None; with `b` it must be given explicitly
    ("paired" or "two-sample"), because the two answer different questions.
    """
    difference, scale, _ = _standardised_parts(a, b, design, null)
    with np.errstate(divide="ignore", invalid="ignore"):
        return difference / scale


def hedges_g(
    a: np.ndarray,
    b: np.ndarray | None = None,
    *,
    design: Design | None = None,
    null: float = 0.0,
) -> np.ndarray:
    """Return Hedges' g per cell: Cohen's d times the exact small-sample bias correction."""
    difference, scale, df = _standardised_parts(a, b, design, null)
    with np.errstate(divide="ignore", invalid="ignore"):
        return difference / scale * _hedges_correction(df)


def rank_biserial(
    a: np.ndarray,
    b: np.ndarray | None = None,
    *,
    design: Design | None = None,
    null: float = 0.0,
) -> np.ndarray:
    """Return the rank-biserial correlation per cell, in [-1, 1] (Cliff's delta two-sample)."""
    kind = _resolve_design(b, design)
    first = _examples(a, "a", 1)
    if kind == "two-sample":
        return cliffs_delta(first, _examples(b, "b", 1))
    differences = first - (float(null) if kind == "one-sample" else _matching(first, b))
    magnitude = np.abs(differences)
    # Zeros carry no sign; the smallest ranks belong to them, so subtracting their count
    # re-ranks the nonzero differences among themselves (Wilcoxon's zero-dropping convention).
    zeros = (magnitude == 0).sum(axis=0)
    ranks = np.where(magnitude > 0, rankdata(magnitude, axis=0) - zeros, 0.0)
    signed = (np.sign(differences) * ranks).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(signed / ranks.sum(axis=0))


def cliffs_delta(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Return Cliff's delta P(a > b) - P(a < b) per cell, for independent `a` and `b`."""
    first = _examples(a, "a", 1)
    second = _examples(b, "b", 1)
    _same_cells(first, second)
    n_a, n_b = first.shape[0], second.shape[0]
    ranks = rankdata(np.concatenate([first, second]), axis=0)
    u_a = ranks[:n_a].sum(axis=0) - n_a * (n_a + 1) / 2.0
    return np.asarray(2.0 * u_a / (n_a * n_b) - 1.0)


def _standardised_parts(
    a: np.ndarray, b: np.ndarray | None, design: Design | None, null: float
) -> tuple[np.ndarray, np.ndarray, float]:
    """Return (mean difference, standardiser, degrees of freedom) for the chosen design."""
    kind = _resolve_design(b, design)
    first = _examples(a, "a", 2)
    if kind == "two-sample":
        second = _examples(b, "b", 2)
        _same_cells(first, second)
        n_a, n_b = first.shape[0], second.shape[0]
        df = n_a + n_b - 2
        pooled = (
            (n_a - 1) * first.var(axis=0, ddof=1) + (n_b - 1) * second.var(axis=0, ddof=1)
        ) / df
        difference = first.mean(axis=0) - second.mean(axis=0)
        return difference, _no_spread(np.sqrt(pooled), first, second), float(df)
    differences = first - (float(null) if kind == "one-sample" else _matching(first, b))
    scale = _no_spread(differences.std(axis=0, ddof=1), differences)
    return differences.mean(axis=0), scale, float(first.shape[0] - 1)


def _no_spread(scale: np.ndarray, *values: np.ndarray) -> np.ndarray:
    """Returns ``scale`` with spreads at float rounding of the values' size set to exactly 0, so
    constant data (20 of 20 hits) gives an infinite d, not 8.7e15 from a rounding residue."""
    size = np.max([np.abs(v).max(axis=0) for v in values], axis=0)
    return np.where(scale <= 1e-12 * np.maximum(size, 1e-300), 0.0, scale)


def _hedges_correction(df: float) -> float:
    return float(np.exp(gammaln(df / 2.0) - gammaln((df - 1.0) / 2.0)) / np.sqrt(df / 2.0))


def _resolve_design(b: np.ndarray | None, design: Design | None) -> Design:
    if design is None:
        if b is not None:
            raise StatsInputError(
                "b was given, so say how a and b relate: design='paired' (same examples, e.g. "
                "clean vs patched) or design='two-sample' (independent sets of examples)."
            )
        return "one-sample"
    check_choice(design, "design", DESIGNS)
    if (design == "one-sample") != (b is None):
        need = "no b" if design == "one-sample" else "both a and b"
        raise StatsInputError(f"design={design!r} takes {need}.")
    return design


def _examples(values: object, name: str, minimum: int) -> np.ndarray:
    array = as_float_array(values, name)
    if array.ndim == 0 or array.shape[0] < minimum:
        got = "a scalar" if array.ndim == 0 else f"{array.shape[0]} examples"
        raise StatsInputError(
            f"{name} must be [n_examples, *cells] with at least {minimum} examples, got {got}."
        )
    if np.isinf(array).any():
        raise StatsInputError(f"{name} contains infinite values; effect sizes need finite numbers.")
    nan = np.isnan(array)
    if (nan.any(axis=0) & ~nan.all(axis=0)).any():
        raise StatsInputError(
            f"{name} is NaN for some but not all examples of a cell; a cell must be finite for "
            "every example or NaN for every example (an undefined cell, reported as NaN)."
        )
    return array


def _matching(first: np.ndarray, b: object) -> np.ndarray:
    second = as_float_array(b, "b")
    if second.shape != first.shape:
        raise StatsInputError(
            f"a paired design needs a and b of the same shape (one pair per example and cell), "
            f"got {first.shape} and {second.shape}."
        )
    return second


def _same_cells(first: np.ndarray, second: np.ndarray) -> None:
    if first.shape[1:] != second.shape[1:]:
        raise StatsInputError(
            f"a and b must have the same cells: a is {first.shape}, b is {second.shape}."
        )
