"""Holm and Benjamini-Hochberg agree with statsmodels' multipletests and a hand computation."""

from __future__ import annotations

import numpy as np
import pytest
from statsmodels.stats.multitest import multipletests

from interplab.stats import correct_pvalues

STATSMODELS_NAMES = {"holm": "holm", "bh": "fdr_bh"}


@pytest.mark.parametrize("method", ["holm", "bh"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_adjusted_p_values_and_rejections_match_statsmodels(method: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    p = np.concatenate([rng.uniform(size=300), rng.uniform(0, 1e-3, size=40), [0.01, 0.01, 0.01]])
    rng.shuffle(p)
    ours = correct_pvalues(p.reshape(7, 49), method=method, alpha=0.05)  # type: ignore[arg-type]
    reject, adjusted, _, _ = multipletests(p, alpha=0.05, method=STATSMODELS_NAMES[method])
    np.testing.assert_array_equal(ours.p_adjusted.reshape(-1), adjusted)
    np.testing.assert_array_equal(ours.reject.reshape(-1), reject)


@pytest.mark.parametrize("method", ["holm", "bh"])
def test_nans_are_excluded_like_dropping_them_before_statsmodels(method: str) -> None:
    p = np.random.default_rng(3).uniform(size=50) ** 2
    p[[4, 17, 30]] = np.nan
    ours = correct_pvalues(p, method=method)  # type: ignore[arg-type]
    finite = ~np.isnan(p)
    reject, adjusted, _, _ = multipletests(p[finite], method=STATSMODELS_NAMES[method])
    np.testing.assert_array_equal(ours.p_adjusted[finite], adjusted)
    np.testing.assert_array_equal(ours.reject[finite], reject)
    assert ours.n_tests == 47


def test_small_case_by_hand() -> None:
    p = np.array([0.01, 0.04, 0.03, 0.005])
    # Holm: sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 -> 0.02, 0.03, 0.06, 0.04,
    # then a running maximum -> 0.02, 0.03, 0.06, 0.06.
    holm = correct_pvalues(p, method="holm")
    np.testing.assert_allclose(holm.p_adjusted, [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_array_equal(holm.reject, [True, False, False, True])
    # BH: sorted times 4/1, 4/2, 4/3, 4/4 -> 0.02, 0.02, 0.04, 0.04, running minimum from the top.
    bh = correct_pvalues(p, method="bh")
    np.testing.assert_allclose(bh.p_adjusted, [0.02, 0.04, 0.04, 0.02])
    np.testing.assert_array_equal(bh.reject, [True, True, True, True])
