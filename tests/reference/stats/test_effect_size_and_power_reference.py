"""Effect sizes against hand computations and scipy; power against statsmodels' TTestPower."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.power import TTestPower

from interplab.stats import (
    cliffs_delta,
    cohens_d,
    hedges_g,
    min_detectable_effect,
    rank_biserial,
    required_n,
    t_test_power,
)


def test_cohens_d_by_hand() -> None:
    a = [2.0, 4.0, 6.0, 8.0]  # mean 5, sample sd sqrt(20/3)
    assert float(cohens_d(np.array(a), null=1.0)) == pytest.approx(4.0 / math.sqrt(20.0 / 3.0))
    b = [1.0, 2.0, 3.0]  # mean 2, sample var 1
    pooled = math.sqrt((3 * (20.0 / 3.0) + 2 * 1.0) / 5.0)
    two = float(cohens_d(np.array(a), np.array(b), design="two-sample"))
    assert two == pytest.approx(3.0 / pooled)
    # Hedges' exact correction at df = 5, against the usual approximation 1 - 3 / (4 df - 1).
    g = float(hedges_g(np.array(a), np.array(b), design="two-sample"))
    assert g / two == pytest.approx(1 - 3 / 19, abs=2e-3)
    paired = float(cohens_d(np.array([3.0, 5.0, 4.0]), np.array([1.0, 2.0, 2.0]), design="paired"))
    assert paired == pytest.approx(np.mean([2, 3, 2]) / np.std([2, 3, 2], ddof=1))


def test_cliffs_delta_matches_brute_force_and_mann_whitney() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 6, size=15).astype(float), rng.integers(0, 6, size=11).astype(float)
    brute = np.mean(np.sign(a[:, None] - b[None, :]))
    assert float(cliffs_delta(a, b)) == pytest.approx(brute)
    u = stats.mannwhitneyu(a, b).statistic
    assert float(rank_biserial(a, b, design="two-sample")) == pytest.approx(2 * u / (15 * 11) - 1)


def test_matched_pairs_rank_biserial_matches_wilcoxon_signed_ranks() -> None:
    differences = np.random.default_rng(1).normal(0.3, 1.0, size=25)
    t_plus = stats.wilcoxon(differences, alternative="greater").statistic
    total = 25 * 26 / 2
    assert float(rank_biserial(differences)) == pytest.approx((2 * t_plus - total) / total)


@pytest.mark.parametrize(("effect", "n"), [(0.2, 50), (0.5, 20), (0.8, 12), (-0.3, 40)])
@pytest.mark.parametrize(
    ("ours", "theirs"), [("two-sided", "two-sided"), ("greater", "larger"), ("less", "smaller")]
)
def test_power_matches_statsmodels(effect: float, n: int, ours: str, theirs: str) -> None:
    expected = TTestPower().power(effect_size=effect, nobs=n, alpha=0.05, alternative=theirs)
    assert t_test_power(effect, n, alternative=ours) == pytest.approx(expected, rel=1e-9, abs=1e-12)  # type: ignore[arg-type]


@pytest.mark.parametrize("n", [10, 30, 64, 250])
@pytest.mark.parametrize("alpha", [0.05, 0.001])
def test_min_detectable_effect_matches_statsmodels(n: int, alpha: float) -> None:
    expected = TTestPower().solve_power(effect_size=None, nobs=n, alpha=alpha, power=0.8)
    assert min_detectable_effect(n, alpha=alpha) == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize("effect", [0.2, 0.5, 1.0])
def test_required_n_is_statsmodels_solution_rounded_up(effect: float) -> None:
    expected = TTestPower().solve_power(effect_size=effect, nobs=None, alpha=0.05, power=0.8)
    assert required_n(effect) == math.ceil(expected)
