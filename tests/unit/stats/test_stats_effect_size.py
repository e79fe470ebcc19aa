"""Effect sizes: designs, vectorisation, undefined cells, errors."""

from __future__ import annotations

import numpy as np
import pytest

from interplab.stats import cliffs_delta, cohens_d, hedges_g, rank_biserial


def test_vectorised_effect_sizes_equal_a_per_cell_loop() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(0.4, 1.0, size=(20, 2, 3)), rng.normal(size=(20, 2, 3))
    for function in (cohens_d, hedges_g, rank_biserial):
        for design in ("paired", "two-sample"):
            grid = function(a, b, design=design)
            assert grid.shape == (2, 3)
            for index in np.ndindex(2, 3):
                cell = function(a[(slice(None), *index)], b[(slice(None), *index)], design=design)
                np.testing.assert_allclose(grid[index], cell, rtol=1e-12)
    assert cohens_d(a[:, 0, 0]).shape == ()


def test_hedges_g_shrinks_d_towards_zero() -> None:
    values = np.random.default_rng(1).normal(0.5, 1.0, size=10)
    assert 0 < hedges_g(values) < cohens_d(values)


def test_rank_biserial_is_one_when_every_difference_is_positive() -> None:
    assert rank_biserial(np.array([0.0, 1.0, 2.0, 3.0]) + 1.0) == pytest.approx(1.0)
    assert cliffs_delta(np.array([5.0, 6.0]), np.array([1.0, 2.0])) == pytest.approx(1.0)


def test_zero_differences_are_dropped_from_signed_ranks() -> None:
    # Nonzero differences 1, -2, 3 have ranks 1, 2, 3: (1 + 3 - 2) / 6.
    assert rank_biserial(np.array([0.0, 1.0, -2.0, 3.0])) == pytest.approx(2 / 6)


def test_undefined_values_are_nan_or_inf_without_warnings() -> None:
    assert np.isnan(cohens_d(np.zeros(5)))
    assert np.isinf(cohens_d(np.ones(5)))
    assert np.isnan(rank_biserial(np.zeros(5)))
    values = np.random.default_rng(2).normal(size=(8, 2))
    values[:, 1] = np.nan
    assert np.isnan(cohens_d(values)[1]) and np.isfinite(cohens_d(values)[0])


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: cohens_d(np.ones(5), np.ones(5)), "design='paired'"),
        (lambda: cohens_d(np.ones(5), design="paired"), "both a and b"),
        (lambda: cohens_d(np.ones(5), design="two-way"), "'one-sample', 'paired', 'two-sample'"),
        (lambda: cohens_d(np.ones(1)), "at least 2 examples"),
        (lambda: cohens_d(np.ones(5), np.ones(4), design="paired"), "same shape"),
        (lambda: cohens_d(np.array([1.0, np.nan, 2.0])), "NaN for some"),
        (lambda: cliffs_delta(np.ones((3, 2)), np.ones((3, 4))), "same cells"),
    ],
)
def test_invalid_input_says_what_was_wrong(call: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()  # type: ignore[operator]
