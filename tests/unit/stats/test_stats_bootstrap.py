"""Bootstrap intervals: shapes, vectorisation over cells, seeds, NaN cells, input errors."""

from __future__ import annotations

import numpy as np
import pytest

from interplab.stats import bootstrap_ci


def _grid(seed: int = 0, n: int = 24, cells: tuple[int, ...] = (3, 4)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.exponential(size=(n, *cells)) + np.arange(int(np.prod(cells))).reshape(cells)


def test_scalar_metric_gives_zero_dimensional_arrays() -> None:
    result = bootstrap_ci(_grid(cells=()), n_resamples=500)
    assert result.estimate.shape == result.low.shape == result.high.shape == ()
    assert result.low < result.estimate < result.high


def test_grid_results_have_the_cell_shape() -> None:
    result = bootstrap_ci(_grid(cells=(3, 4, 2)), n_resamples=300)
    for array in (result.estimate, result.low, result.high, result.standard_error):
        assert array.shape == (3, 4, 2)
    assert np.all(result.low <= result.high)


@pytest.mark.parametrize("method", ["percentile", "bca"])
@pytest.mark.parametrize("statistic", ["mean", "median", np.mean, np.median])
def test_vectorised_grid_equals_a_per_cell_loop(method: str, statistic: object) -> None:
    values = _grid()
    grid = bootstrap_ci(values, method=method, statistic=statistic, n_resamples=400, seed=3)  # type: ignore[arg-type]
    for i in range(3):
        for j in range(4):
            cell = bootstrap_ci(
                values[:, i, j],
                method=method,
                statistic=statistic,
                n_resamples=400,
                seed=3,  # type: ignore[arg-type]
            )
            np.testing.assert_allclose(grid.low[i, j], cell.low, rtol=1e-12)
            np.testing.assert_allclose(grid.high[i, j], cell.high, rtol=1e-12)


@pytest.mark.parametrize("statistic", ["mean", "median"])
@pytest.mark.parametrize("method", ["percentile", "bca"])
def test_count_shortcut_equals_gathering_for_any_group_sizes(statistic: str, method: str) -> None:
    values = _grid(n=30)
    rng = np.random.default_rng(1)
    for groups in (np.repeat(np.arange(6), 5), rng.integers(0, 7, size=30)):
        fast = bootstrap_ci(
            values, statistic=statistic, method=method, groups=groups, n_resamples=300
        )  # type: ignore[arg-type]
        slow = bootstrap_ci(
            values,
            statistic=getattr(np, statistic),
            method=method,
            groups=groups,
            n_resamples=300,
        )
        np.testing.assert_allclose(fast.low, slow.low, rtol=1e-10)
        np.testing.assert_allclose(fast.high, slow.high, rtol=1e-10)


def test_same_seed_reproduces_and_another_seed_differs() -> None:
    values = _grid()
    first = bootstrap_ci(values, seed=7, n_resamples=500)
    again = bootstrap_ci(values, seed=7, n_resamples=500)
    other = bootstrap_ci(values, seed=8, n_resamples=500)
    np.testing.assert_array_equal(first.low, again.low)
    np.testing.assert_array_equal(first.high, again.high)
    assert not np.array_equal(first.low, other.low)


def test_paired_design_bootstraps_the_differences() -> None:
    treated = _grid(seed=1)
    baseline = _grid(seed=2)
    paired = bootstrap_ci(treated, baseline=baseline, n_resamples=300)
    direct = bootstrap_ci(treated - baseline, n_resamples=300)
    np.testing.assert_array_equal(paired.low, direct.low)


def test_cluster_bootstrap_is_wider_when_groups_share_an_offset() -> None:
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(8), 10)
    values = rng.normal(size=8)[groups] * 2.0 + rng.normal(size=80) * 0.2
    by_example = bootstrap_ci(values, n_resamples=2000)
    by_group = bootstrap_ci(values, groups=groups, n_resamples=2000)
    assert by_group.n_groups == 8 and by_example.n_groups is None
    assert by_group.high - by_group.low > 2 * (by_example.high - by_example.low)


def test_all_nan_cell_is_nan_and_leaves_other_cells_unchanged() -> None:
    values = _grid()
    with_hole = values.copy()
    with_hole[:, 1, 2] = np.nan
    full = bootstrap_ci(values, n_resamples=300)
    holed = bootstrap_ci(with_hole, n_resamples=300)
    assert np.isnan(holed.low[1, 2]) and np.isnan(holed.estimate[1, 2])
    keep = np.ones((3, 4), dtype=bool)
    keep[1, 2] = False
    np.testing.assert_allclose(holed.low[keep], full.low[keep], rtol=1e-12)


def test_constant_cell_gives_a_degenerate_interval_without_warnings() -> None:
    values = _grid()
    values[:, 0, 0] = 2.5
    result = bootstrap_ci(values, n_resamples=300)
    assert result.low[0, 0] == pytest.approx(2.5) and result.high[0, 0] == pytest.approx(2.5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"values": np.array([])}, "at least 2 example"),
        ({"values": np.array(3.0)}, "example axis"),
        ({"values": np.ones((5, 0))}, "no cells"),
        ({"confidence": 1.2}, "strictly between 0 and 1"),
        ({"confidence": 0.0}, "strictly between 0 and 1"),
        ({"method": "bc"}, "valid choices are 'bca', 'percentile'"),
        ({"statistic": "mode"}, "valid choices are 'mean', 'median'"),
        ({"groups": np.arange(3)}, "3 labels but values has 10 examples"),
        ({"groups": np.zeros(10)}, "at least 2"),
        ({"n_resamples": 0}, "at least 1"),
        ({"seed": -1}, "non-negative int"),
        ({"statistic": lambda a, axis: a}, "should return shape"),
        ({"values": np.array([1.0, np.inf, 2.0])}, "infinite"),
    ],
)
def test_invalid_input_says_what_was_wrong(kwargs: dict[str, object], message: str) -> None:
    arguments: dict[str, object] = {"values": np.arange(10.0), "n_resamples": 50}
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=message):
        bootstrap_ci(**arguments)  # type: ignore[arg-type]


def test_partially_nan_cell_is_an_error_naming_the_cell() -> None:
    values = _grid()
    values[3, 2, 1] = np.nan
    with pytest.raises(ValueError, match=r"\(2, 1\)"):
        bootstrap_ci(values, n_resamples=50)


def test_baseline_shape_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError, match="same shape"):
        bootstrap_ci(np.ones((5, 2)), baseline=np.ones((5, 3)))
