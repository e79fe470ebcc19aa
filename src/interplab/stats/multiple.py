"""Multiple-comparison correction: Holm (family-wise error) and Benjamini-Hochberg (false discovery).

A sweep over a 30 x 15 grid tests 450 hypotheses; at p < 0.05 about 22 cells pass by chance
alone. Correction turns each p-value into an adjusted p-value comparable with `alpha` for the
whole family.

Algorithm (p-values of any shape; NaNs are untested cells: excluded from the count m, returned
as NaN and never rejected):

1. Flatten and keep the m finite p-values; sort them ascending, p_(1) <= ... <= p_(m).
2. Holm step-down (controls the family-wise error rate under any dependence; Holm 1979):
   adjusted_(i) = max_{j <= i} min(1, (m - j + 1) p_(j)).
3. Benjamini-Hochberg step-up (controls the false discovery rate for independent or positively
   dependent tests; Benjamini & Hochberg 1995):
   adjusted_(i) = min_{j >= i} min(1, m p_(j) / j).
4. Reject where adjusted <= alpha; unsort back to the caller's shape.

References: S. Holm, "A simple sequentially rejective multiple test procedure", Scand. J. Stat. 6
(1979) 65-70; Y. Benjamini & Y. Hochberg, "Controlling the false discovery rate", JRSS-B 57 (1995)
289-300.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np

from interplab.stats._validate import StatsInputError, as_float_array, check_alpha, check_choice

CorrectionMethod = Literal["holm", "bh"]
CORRECTION_METHODS: tuple[str, ...] = get_args(CorrectionMethod)


@dataclass(frozen=True)
class Correction:
    """Adjusted p-values and the reject mask, both shaped like the input p-values.

    `n_tests` counts the hypotheses in the family (the non-NaN p-values).
    """

    p_adjusted: np.ndarray
    reject: np.ndarray
    method: CorrectionMethod
    alpha: float
    n_tests: int

    def __post_init__(self) -> None:
        check_choice(self.method, "correction method", CORRECTION_METHODS)
        check_alpha(self.alpha)
        if self.p_adjusted.shape != self.reject.shape:
            raise StatsInputError(
                f"p_adjusted {self.p_adjusted.shape} and reject {self.reject.shape} differ."
            )


def correct_pvalues(
    p_values: np.ndarray, *, method: CorrectionMethod = "holm", alpha: float = 0.05
) -> Correction:
    """Return Holm- or Benjamini-Hochberg-adjusted p-values and which hypotheses to reject."""
    check_choice(method, "correction method", CORRECTION_METHODS)
    check_alpha(alpha)
    p = as_float_array(p_values, "p_values")
    flat = p.reshape(-1)
    tested = ~np.isnan(flat)
    finite = flat[tested]
    if ((finite < 0) | (finite > 1)).any():
        raise StatsInputError("p_values must lie in [0, 1] (NaN marks an untested cell).")

    adjusted = np.full(flat.shape, np.nan)
    adjusted[tested] = holm(finite) if method == "holm" else benjamini_hochberg(finite)
    reject = np.zeros(flat.shape, dtype=bool)
    reject[tested] = adjusted[tested] <= alpha
    return Correction(
        p_adjusted=adjusted.reshape(p.shape),
        reject=reject.reshape(p.shape),
        method=method,
        alpha=float(alpha),
        n_tests=int(tested.sum()),
    )


def holm(p_values: np.ndarray) -> np.ndarray:
    """Return Holm step-down adjusted p-values for a 1-D array of finite p-values."""
    m = p_values.shape[0]
    order = np.argsort(p_values, kind="stable")
    scaled = p_values[order] * np.arange(m, 0, -1)
    stepped = np.minimum(np.maximum.accumulate(scaled), 1.0)
    return _unsort(stepped, order)


def benjamini_hochberg(p_values: np.ndarray) -> np.ndarray:
    """Return Benjamini-Hochberg step-up adjusted p-values for a 1-D array of finite p-values."""
    m = p_values.shape[0]
    order = np.argsort(p_values, kind="stable")
    scaled = p_values[order] / (np.arange(1, m + 1) / m)
    stepped = np.minimum(np.minimum.accumulate(scaled[::-1])[::-1], 1.0)
    return _unsort(stepped, order)


def _unsort(sorted_values: np.ndarray, order: np.ndarray) -> np.ndarray:
    out = np.empty_like(sorted_values)
    out[order] = sorted_values
    return out
