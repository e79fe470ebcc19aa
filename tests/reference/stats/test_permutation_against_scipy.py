"""Permutation p-values agree with scipy.stats.permutation_test and are uniform under the null."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from interplab.stats import sign_flip_test, two_sample_permutation_test

ALTERNATIVES = ["two-sided", "greater", "less"]


def _monte_carlo_band(p: float, n_resamples: int) -> float:
    """Five standard errors of the difference of two independent Monte-Carlo p-values."""
    p = min(max(p, 1e-3), 1 - 1e-3)
    return 5.0 * float(np.sqrt(2.0 * p * (1.0 - p) / n_resamples))


def _mean_difference(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(x, axis=axis) - np.mean(y, axis=axis)


def _mean_of_paired_differences(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(x - y, axis=axis)


@pytest.mark.parametrize("alternative", ALTERNATIVES)
def test_sign_flip_exact_p_equals_scipy_exact(alternative: str) -> None:
    rng = np.random.default_rng(0)
    treated, baseline = rng.normal(0.4, 1.0, size=12), rng.normal(size=12)
    ours = sign_flip_test(treated, baseline=baseline, alternative=alternative)  # type: ignore[arg-type]
    theirs = stats.permutation_test(
        (treated, baseline),
        _mean_of_paired_differences,
        permutation_type="samples",
        alternative=alternative,
        n_resamples=np.inf,
        vectorized=True,
    )
    assert ours.exact
    assert float(ours.p_value) == pytest.approx(theirs.pvalue, rel=1e-12)


@pytest.mark.parametrize("alternative", ALTERNATIVES)
@pytest.mark.parametrize("shift", [0.15, 0.4])
def test_sign_flip_random_p_matches_scipy_within_monte_carlo_error(
    alternative: str, shift: float
) -> None:
    values = np.random.default_rng(1).normal(shift, 1.0, size=40)
    ours = sign_flip_test(values, null=0.1, alternative=alternative, n_resamples=20_000, seed=1)  # type: ignore[arg-type]
    theirs = stats.permutation_test(
        (values - 0.1, np.zeros_like(values)),
        _mean_of_paired_differences,
        permutation_type="samples",
        alternative=alternative,
        n_resamples=20_000,
        vectorized=True,
        rng=np.random.default_rng(2),
    )
    assert abs(float(ours.p_value) - theirs.pvalue) < _monte_carlo_band(theirs.pvalue, 20_000)


@pytest.mark.parametrize("alternative", ALTERNATIVES)
def test_two_sample_exact_p_equals_scipy_exact(alternative: str) -> None:
    rng = np.random.default_rng(3)
    a, b = rng.normal(0.8, 1.0, size=6), rng.normal(size=7)
    ours = two_sample_permutation_test(a, b, alternative=alternative)  # type: ignore[arg-type]
    theirs = stats.permutation_test(
        (a, b), _mean_difference, alternative=alternative, n_resamples=np.inf, vectorized=True
    )
    assert ours.exact
    assert float(ours.p_value) == pytest.approx(theirs.pvalue, rel=1e-12)


@pytest.mark.parametrize("alternative", ALTERNATIVES)
def test_two_sample_random_p_matches_scipy_within_monte_carlo_error(alternative: str) -> None:
    rng = np.random.default_rng(4)
    a, b = rng.normal(0.3, 1.0, size=25), rng.normal(size=30)
    ours = two_sample_permutation_test(a, b, alternative=alternative, n_resamples=20_000, seed=5)  # type: ignore[arg-type]
    theirs = stats.permutation_test(
        (a, b),
        _mean_difference,
        alternative=alternative,
        n_resamples=20_000,
        vectorized=True,
        rng=np.random.default_rng(6),
    )
    assert abs(float(ours.p_value) - theirs.pvalue) < _monte_carlo_band(theirs.pvalue, 20_000)


def test_sign_flip_p_values_are_uniform_under_the_null() -> None:
    # 1,000 experiments as cells of one call; symmetric but non-normal null data.
    data = np.random.default_rng(7).laplace(0.0, 1.0, size=(25, 1000))
    p = sign_flip_test(data, n_resamples=2000, seed=8).p_value
    assert stats.kstest(p, "uniform").pvalue > 0.01
    assert np.mean(p <= 0.05) == pytest.approx(0.05, abs=0.02)


def test_two_sample_p_values_are_uniform_under_the_null() -> None:
    rng = np.random.default_rng(9)
    a, b = rng.normal(size=(20, 600)), rng.normal(size=(26, 600))
    p = two_sample_permutation_test(a, b, n_resamples=2000, seed=10).p_value
    assert stats.kstest(p, "uniform").pvalue > 0.01


def test_p_values_are_small_under_a_clear_effect() -> None:
    data = np.random.default_rng(11).normal(1.0, 1.0, size=(25, 500))
    p = sign_flip_test(data, n_resamples=2000, seed=12).p_value
    assert np.median(p) < 0.001 and np.mean(p <= 0.05) > 0.99
    rng = np.random.default_rng(13)
    a, b = rng.normal(1.2, 1.0, size=(25, 500)), rng.normal(size=(25, 500))
    p_two = two_sample_permutation_test(a, b, n_resamples=2000, seed=14).p_value
    assert np.mean(p_two <= 0.05) > 0.95
