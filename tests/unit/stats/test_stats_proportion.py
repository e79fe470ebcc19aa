"""Binomial intervals against scipy's own (`binomtest(...).proportion_ci`), coverage by
simulation, and the end cases a bootstrap gets wrong."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binomtest

from interplab.stats import binary_outcomes_ci, clopper_pearson, proportion_ci
from interplab.stats._validate import StatsInputError

CASES = [(0, 10), (1, 10), (3, 10), (10, 10), (0, 40), (17, 48), (42, 48), (500, 1000)]


@pytest.mark.parametrize(("k", "n"), CASES)
@pytest.mark.parametrize(
    ("method", "scipy_method"), [("wilson", "wilson"), ("clopper-pearson", "exact")]
)
def test_intervals_equal_scipys(k, n, method, scipy_method):
    ours = proportion_ci(k, n, confidence=0.9, method=method)
    ref = binomtest(k, n).proportion_ci(confidence_level=0.9, method=scipy_method)
    assert float(ours.rate) == pytest.approx(k / n)
    assert float(ours.low) == pytest.approx(ref.low, abs=1e-10)
    assert float(ours.high) == pytest.approx(ref.high, abs=1e-10)


def test_vectorised_over_cells_and_never_collapsed_at_zero():
    k = np.array([[0, 5], [20, 20]])
    r = proportion_ci(k, 20)
    assert r.low.shape == (2, 2) and r.low[0, 0] == 0.0 and r.high[0, 0] > 0.1
    assert r.high[1, 1] == 1.0 and r.low[1, 1] < 0.9
    assert clopper_pearson(0, 40) == pytest.approx((0.0, 0.0881), abs=1e-4)
    outcomes = np.array([[1, 0], [1, 0], [0, 0], [1, 0]])
    b = binary_outcomes_ci(outcomes)
    np.testing.assert_array_equal(b.k, [3, 0])
    assert b.high[1] > 0 and "3/4" in b.describe()
    assert np.isnan(proportion_ci(0, 0).low)


def test_coverage_is_near_nominal_and_exact_never_under():
    rng = np.random.default_rng(0)
    for p, n in [(0.05, 30), (0.5, 20), (0.9, 60)]:
        k = rng.binomial(n, p, 4000)
        w = proportion_ci(k, n, method="wilson")
        cp = proportion_ci(k, n, method="clopper-pearson")
        wilson = np.mean((w.low <= p) & (p <= w.high))
        exact = np.mean((cp.low <= p) & (p <= cp.high))
        assert 0.90 <= wilson <= 0.99, (p, n, wilson)
        assert exact >= 0.94, (p, n, exact)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: proportion_ci(5, 3), "0 <= k <= n"),
        (lambda: proportion_ci(1.5, 3), "whole numbers"),
        (lambda: proportion_ci(1, 3, method="agresti"), "wilson, clopper-pearson"),
        (lambda: proportion_ci(1, 3, confidence=95), "between 0 and 1"),
        (lambda: binary_outcomes_ci(np.array([0.5, 1.0])), "0 or 1"),
    ],
)
def test_bad_input_says_what_is_valid(call, message):
    with pytest.raises(StatsInputError, match=message):
        call()
