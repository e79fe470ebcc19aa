"""Permutation tests: shapes, exact enumeration, the +1 correction, seeds, errors."""

from __future__ import annotations

import numpy as np
import pytest

from interplab.stats import sign_flip_test, two_sample_permutation_test


def test_all_positive_triplet_has_exact_two_sided_p_of_one_quarter() -> None:
    # 2^3 = 8 sign patterns; only all-plus and all-minus are as extreme as observed.
    result = sign_flip_test(np.array([1.0, 2.0, 3.0]))
    assert result.exact and result.n_resamples == 8
    assert float(result.p_value) == pytest.approx(0.25)
    greater = sign_flip_test(np.array([1.0, 2.0, 3.0]), alternative="greater")
    assert float(greater.p_value) == pytest.approx(1 / 8)


def test_random_p_values_are_never_zero() -> None:
    values = np.random.default_rng(0).normal(5.0, 1.0, size=(40, 3))
    result = sign_flip_test(values, n_resamples=999)
    assert not result.exact
    np.testing.assert_allclose(result.p_value, 1 / 1000)


def test_sign_flip_grid_equals_a_per_cell_loop_and_keeps_shape() -> None:
    values = np.random.default_rng(1).normal(0.2, 1.0, size=(30, 2, 3))
    grid = sign_flip_test(values, null=0.1, n_resamples=500, seed=4)
    assert grid.p_value.shape == grid.statistic.shape == (2, 3)
    for index in np.ndindex(2, 3):
        cell = sign_flip_test(values[(slice(None), *index)], null=0.1, n_resamples=500, seed=4)
        assert grid.p_value[index] == cell.p_value
    np.testing.assert_allclose(grid.statistic, values.mean(axis=0))


def test_same_seed_reproduces() -> None:
    values = np.random.default_rng(2).normal(0.1, 1.0, size=(50, 4))
    first = sign_flip_test(values, seed=11, n_resamples=300)
    again = sign_flip_test(values, seed=11, n_resamples=300)
    np.testing.assert_array_equal(first.p_value, again.p_value)


def test_grouped_sign_flip_enumerates_group_patterns() -> None:
    values = np.random.default_rng(3).normal(size=40)
    result = sign_flip_test(values, groups=np.repeat(np.arange(5), 8))
    assert result.exact and result.n_resamples == 2**5


def test_paired_sign_flip_tests_the_differences() -> None:
    rng = np.random.default_rng(4)
    treated, baseline = rng.normal(size=(2, 20, 3))
    paired = sign_flip_test(treated, baseline=baseline, n_resamples=200)
    direct = sign_flip_test(treated - baseline, n_resamples=200)
    np.testing.assert_array_equal(paired.p_value, direct.p_value)


def test_nan_cell_is_nan() -> None:
    values = np.random.default_rng(5).normal(size=(20, 3))
    values[:, 1] = np.nan
    result = sign_flip_test(values, n_resamples=100)
    assert np.isnan(result.p_value[1]) and np.isfinite(result.p_value[[0, 2]]).all()


def test_two_sample_exact_and_shapes() -> None:
    a = np.array([[3.0], [4.0], [5.0]])
    b = np.array([[0.0], [1.0], [2.0]])
    result = two_sample_permutation_test(a, b, alternative="greater")
    # C(6, 3) = 20 splits; only the observed one puts all three largest in a.
    assert result.exact and result.n_resamples == 20 and result.sizes == (3, 3)
    assert result.p_value.shape == (1,)
    assert float(result.p_value[0]) == pytest.approx(1 / 20)


def test_two_sample_grid_equals_a_per_cell_loop() -> None:
    rng = np.random.default_rng(6)
    a, b = rng.normal(0.3, 1.0, size=(25, 4)), rng.normal(size=(30, 4))
    grid = two_sample_permutation_test(a, b, n_resamples=300, seed=2)
    for j in range(4):
        cell = two_sample_permutation_test(a[:, j], b[:, j], n_resamples=300, seed=2)
        assert grid.p_value[j] == cell.p_value


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: sign_flip_test(np.ones(5), alternative="bigger"),
            "'two-sided', 'greater', 'less'",
        ),
        (lambda: sign_flip_test(np.array([])), "at least 1 example"),
        (lambda: sign_flip_test(np.ones(5), n_resamples=-3), "at least 1"),
        (lambda: sign_flip_test(np.ones(5), groups=np.arange(4)), "4 labels"),
        (lambda: two_sample_permutation_test(np.ones((3, 2)), np.ones((3, 3))), "same cells"),
        (lambda: two_sample_permutation_test(np.ones(3), np.ones(0)), "at least one example"),
    ],
)
def test_invalid_input_says_what_was_wrong(call: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()  # type: ignore[operator]
