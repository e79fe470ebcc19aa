"""Multiple-comparison correction: shapes, NaN cells, monotonicity, errors."""

from __future__ import annotations

import numpy as np
import pytest

from interplab.stats import correct_pvalues


@pytest.mark.parametrize("method", ["holm", "bh"])
def test_shape_is_kept_and_nans_are_not_counted(method: str) -> None:
    p = np.random.default_rng(0).uniform(size=(4, 5)) ** 3
    p[1, 2] = np.nan
    result = correct_pvalues(p, method=method)  # type: ignore[arg-type]
    assert result.p_adjusted.shape == result.reject.shape == (4, 5)
    assert result.n_tests == 19
    assert np.isnan(result.p_adjusted[1, 2]) and not result.reject[1, 2]
    finite = ~np.isnan(p)
    assert np.all(result.p_adjusted[finite] >= p[finite])
    assert np.all(result.p_adjusted[finite] <= 1.0)
    dropped = correct_pvalues(p[finite], method=method)  # type: ignore[arg-type]
    np.testing.assert_array_equal(result.p_adjusted[finite], dropped.p_adjusted)


def test_bh_rejects_at_least_as_many_as_holm() -> None:
    p = np.random.default_rng(1).uniform(size=200) ** 4
    holm = correct_pvalues(p, method="holm")
    bh = correct_pvalues(p, method="bh")
    assert bh.reject.sum() >= holm.reject.sum()
    assert np.all(bh.reject[holm.reject])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"method": "bonferroni"}, "valid choices are 'holm', 'bh'"),
        ({"alpha": 1.5}, "alpha must be"),
        ({"p_values": np.array([0.2, 1.3])}, r"\[0, 1\]"),
    ],
)
def test_invalid_input_says_what_was_wrong(kwargs: dict[str, object], message: str) -> None:
    arguments: dict[str, object] = {"p_values": np.array([0.01, 0.2])}
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=message):
        correct_pvalues(**arguments)  # type: ignore[arg-type]
