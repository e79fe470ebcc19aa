"""Intervals for a rate of successes: accuracies, leak rates, interchange-intervention accuracy.

A bootstrap interval of 0/1 outcomes collapses at the ends: 0 successes in 40 trials resample to
0 every time, so it reports [0, 0], as if the rate were known to be exactly zero. A binomial
interval does not: 0 of 40 is compatible with a true rate up to 0.088 (Clopper-Pearson, 95%).

Two intervals, vectorised over cells (``k`` and ``n`` broadcast):

- ``wilson`` (default): the Wilson score interval, the set of rates p for which the normal score
  test of ``k / n`` against p does not reject: the roots of
  ``(k/n - p)^2 = z^2 · p(1 - p) / n``. Its coverage is close to nominal on average, even at small
  n and near 0 or 1 (Brown, Cai & DasGupta 2001).
- ``clopper-pearson``: the exact interval from the beta quantiles
  ``Beta(α/2; k, n - k + 1)`` and ``Beta(1 - α/2; k + 1, n - k)``; it covers at least the nominal
  level for every rate, so it is wider. Use it for a claim such as "never leaks".

Both treat the trials as independent; outcomes clustered by group (several prompts per organism,
per template) need a cluster bootstrap instead (`interplab.stats.summarize` with ``groups``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np

from interplab.stats._validate import StatsInputError, check_confidence

ProportionMethod = Literal["wilson", "clopper-pearson"]
PROPORTION_METHODS: tuple[str, ...] = get_args(ProportionMethod)


@dataclass(frozen=True)
class ProportionCI:
    """A rate ``k / n`` with its interval; arrays of the broadcast shape of ``k`` and ``n``."""

    k: np.ndarray
    n: np.ndarray
    rate: np.ndarray
    low: np.ndarray
    high: np.ndarray
    confidence: float
    method: str

    def describe(self) -> str:
        """Returns the first cell as ``"k/n = rate (95% CI low to high, method)"``."""
        k, n = int(np.ravel(self.k)[0]), int(np.ravel(self.n)[0])
        rate, low, high = (float(np.ravel(a)[0]) for a in (self.rate, self.low, self.high))
        return (
            f"{k}/{n} = {rate:.3f} ({self.confidence:.0%} CI {low:.3f} to {high:.3f}, "
            f"{self.method})"
        )


def proportion_ci(
    k: np.ndarray | int,
    n: np.ndarray | int,
    *,
    confidence: float = 0.95,
    method: ProportionMethod = "wilson",
) -> ProportionCI:
    """Returns the rate ``k / n`` and its interval (module docstring) for counts ``k`` of
    successes in ``n`` trials; both broadcast, so a grid of counts gets a grid of intervals.
    A cell with ``n = 0`` has a NaN rate and interval."""
    check_confidence(confidence)
    if method not in PROPORTION_METHODS:
        raise StatsInputError(
            f"unknown interval {method!r} for a proportion; methods: {', '.join(PROPORTION_METHODS)}"
        )
    k_arr, n_arr = np.broadcast_arrays(np.asarray(k), np.asarray(n))
    if np.any(k_arr != np.round(k_arr)) or np.any(n_arr != np.round(n_arr)):
        raise StatsInputError("k and n are counts: whole numbers of successes and trials")
    if np.any(n_arr < 0) or np.any(k_arr < 0) or np.any(k_arr > n_arr):
        raise StatsInputError("counts need 0 <= k <= n (k successes out of n trials)")
    kf, nf = k_arr.astype(np.float64), n_arr.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(nf > 0, kf / nf, np.nan)
        if method == "wilson":
            low, high = _wilson(kf, nf, confidence)
        else:
            low, high = _clopper_pearson(kf, nf, confidence)
    empty = nf == 0
    low, high = np.where(empty, np.nan, low), np.where(empty, np.nan, high)
    return ProportionCI(k_arr.astype(np.int64), n_arr.astype(np.int64), rate, low, high,
                        confidence, method)  # fmt: skip


def binary_outcomes_ci(
    outcomes: np.ndarray, *, confidence: float = 0.95, method: ProportionMethod = "wilson"
) -> ProportionCI:
    """Returns `proportion_ci` of 0/1 outcomes ``[n_examples, *cells]`` per cell."""
    values = np.asarray(outcomes, dtype=np.float64)
    if values.ndim == 0 or values.shape[0] == 0:
        raise StatsInputError("outcomes are [n_examples, *cells] with at least one example")
    if not np.isin(values, (0.0, 1.0)).all():
        raise StatsInputError("outcomes must be 0 or 1 (failure or success) for a proportion")
    return proportion_ci(
        values.sum(0), np.full(values.shape[1:], values.shape[0]), confidence=confidence,
        method=method,
    )  # fmt: skip


def clopper_pearson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Returns the exact (Clopper-Pearson) interval of ``k / n`` as two floats (NaN for n = 0)."""
    r = proportion_ci(k, n, confidence=confidence, method="clopper-pearson")
    return float(r.low), float(r.high)


def _wilson(k: np.ndarray, n: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    from scipy.stats import norm

    z = float(norm.ppf(0.5 + confidence / 2))
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return np.clip(centre - half, 0.0, 1.0), np.clip(centre + half, 0.0, 1.0)


def _clopper_pearson(
    k: np.ndarray, n: np.ndarray, confidence: float
) -> tuple[np.ndarray, np.ndarray]:
    from scipy.stats import beta

    tail = (1 - confidence) / 2
    low = np.where(k == 0, 0.0, beta.ppf(tail, k, n - k + 1))
    high = np.where(k == n, 1.0, beta.ppf(1 - tail, k + 1, n - k))
    return low, high


__all__ = [
    "PROPORTION_METHODS",
    "ProportionCI",
    "ProportionMethod",
    "binary_outcomes_ci",
    "clopper_pearson",
    "proportion_ci",
]
