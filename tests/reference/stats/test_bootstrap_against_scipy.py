"""Bootstrap intervals agree with scipy.stats.bootstrap and cover the truth at the nominal rate."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from interplab.stats import bootstrap_ci

N_RESAMPLES = 10_000


@pytest.mark.parametrize(("method", "scipy_method"), [("percentile", "percentile"), ("bca", "BCa")])
@pytest.mark.parametrize("statistic", ["mean", "median"])
def test_interval_matches_scipy_within_monte_carlo_error(
    method: str, scipy_method: str, statistic: str
) -> None:
    # Skewed data makes BCa's corrections matter; different seeds make this a Monte-Carlo
    # comparison rather than a replay of identical resamples.
    data = np.random.default_rng(123).lognormal(0.0, 0.8, size=60)
    ours = bootstrap_ci(data, method=method, statistic=statistic, n_resamples=N_RESAMPLES, seed=1)  # type: ignore[arg-type]
    theirs = stats.bootstrap(
        (data,),
        getattr(np, statistic),
        method=scipy_method,
        n_resamples=N_RESAMPLES,
        rng=np.random.default_rng(99),
    )
    # The Monte-Carlo error of a 2.5% quantile from 10,000 resamples is about 0.03 bootstrap
    # standard errors (more for the lumpy median), so 0.15 is a ~5-sigma band for the mean.
    tolerance = (0.15 if statistic == "mean" else 0.35) * float(theirs.standard_error)
    assert abs(float(ours.low) - theirs.confidence_interval.low) < tolerance
    assert abs(float(ours.high) - theirs.confidence_interval.high) < tolerance
    assert float(ours.standard_error) == pytest.approx(float(theirs.standard_error), rel=0.05)


def test_grid_matches_scipy_cell_by_cell() -> None:
    data = np.random.default_rng(7).gamma(2.0, size=(40, 2, 3))
    ours = bootstrap_ci(data, method="bca", n_resamples=N_RESAMPLES, seed=3)
    theirs = stats.bootstrap(
        (data,),
        np.mean,
        method="BCa",
        n_resamples=N_RESAMPLES,
        axis=0,
        rng=np.random.default_rng(4),
    )
    tolerance = 0.15 * theirs.standard_error
    assert np.all(np.abs(ours.low - theirs.confidence_interval.low) < tolerance)
    assert np.all(np.abs(ours.high - theirs.confidence_interval.high) < tolerance)


@pytest.mark.parametrize("method", ["percentile", "bca"])
def test_nominal_95_percent_interval_covers_the_true_mean(method: str) -> None:
    # Each cell is one synthetic experiment, so one vectorised call runs all of them. Bootstrap
    # intervals undercover a little at small n (about 94% at n = 40 for normal data, since they
    # use z- rather than t-quantiles); 4,000 experiments keep the Monte-Carlo error near 0.4%.
    true_mean = 1.0
    data = np.random.default_rng(2024).normal(true_mean, 2.0, size=(40, 4000))
    result = bootstrap_ci(data, method=method, n_resamples=2000, seed=5)  # type: ignore[arg-type]
    coverage = float(np.mean((result.low <= true_mean) & (true_mean <= result.high)))
    assert 0.93 <= coverage <= 0.97, coverage


def test_cluster_bootstrap_covers_when_examples_within_a_template_are_correlated() -> None:
    # 1,000 experiments of 12 templates x 5 prompts with a shared template offset: resampling
    # examples would pretend there are 60 independent points; resampling templates must not.
    rng = np.random.default_rng(11)
    groups = np.repeat(np.arange(12), 5)
    offsets = rng.normal(size=(12, 1000))[groups]
    data = offsets + 0.3 * rng.normal(size=(60, 1000))
    by_group = bootstrap_ci(data, groups=groups, method="percentile", n_resamples=2000)
    by_example = bootstrap_ci(data, method="percentile", n_resamples=2000)
    covered_group = float(np.mean((by_group.low <= 0) & (by_group.high >= 0)))
    covered_example = float(np.mean((by_example.low <= 0) & (by_example.high >= 0)))
    assert covered_group > 0.88 and covered_example < 0.6
