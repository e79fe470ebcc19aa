"""AUROC and its clustered bootstrap against scikit-learn and a brute-force resampling loop."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from interplab.stats._validate import StatsInputError
from interplab.stats.auroc import auroc, auroc_ci


def _data(n: int = 60, cells: tuple[int, ...] = (3,), seed: int = 0, ties: bool = False):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=n)
    y[:2] = [0, 1]
    scores = rng.normal(size=(n, *cells)) + 0.8 * y.reshape(-1, *([1] * len(cells)))
    if ties:
        scores = np.round(scores, 0)  # many ties: they must count half
    groups = np.repeat(np.arange(n // 3), 3)
    return scores, y, groups


@pytest.mark.parametrize("ties", [False, True])
def test_auroc_equals_sklearn_per_cell(ties: bool) -> None:
    scores, y, _ = _data(cells=(2, 3), ties=ties)
    ours = auroc(scores, y)
    assert ours.shape == (2, 3)
    for i in range(2):
        for j in range(3):
            assert ours[i, j] == pytest.approx(roc_auc_score(y, scores[:, i, j]), abs=1e-12)


def test_weighted_auroc_equals_sklearn_sample_weights() -> None:
    scores, y, _ = _data(ties=True)
    rng = np.random.default_rng(1)
    weights = rng.integers(0, 4, size=(5, len(y))).astype(float)
    ours = auroc(scores, y, weights)
    assert ours.shape == (5, 3)
    for b in range(5):
        for j in range(3):
            ref = roc_auc_score(y, scores[:, j], sample_weight=weights[b])
            assert ours[b, j] == pytest.approx(ref, abs=1e-12)


def test_clustered_bootstrap_equals_resampling_whole_groups_by_hand() -> None:
    scores, y, groups = _data()
    n_resamples, seed = 300, 4
    ours = auroc_ci(scores, y, units=groups, n_resamples=n_resamples, seed=seed)
    # The same draws, but each resample built by concatenating the drawn groups' examples.
    rng = np.random.default_rng(seed)
    n_units = len(np.unique(groups))
    members = [np.flatnonzero(groups == g) for g in range(n_units)]
    theta = []
    for start in range(0, n_resamples, 500):
        b = min(500, n_resamples - start)
        for draw in rng.integers(n_units, size=(b, n_units)):
            idx = np.concatenate([members[g] for g in draw])
            if len(set(y[idx])) < 2:
                theta.append([np.nan] * scores.shape[1])
                continue
            theta.append([roc_auc_score(y[idx], scores[idx, j]) for j in range(scores.shape[1])])
    low, high = np.nanquantile(np.asarray(theta), [0.025, 0.975], axis=0)
    np.testing.assert_allclose(ours.low, low, atol=1e-12)
    np.testing.assert_allclose(ours.high, high, atol=1e-12)
    np.testing.assert_allclose(ours.estimate, [roc_auc_score(y, s) for s in scores.T])
    assert ours.n == len(y) and ours.n_units == n_units


def test_grouped_interval_is_wider_when_groups_are_alike() -> None:
    rng = np.random.default_rng(2)
    n_groups = 40
    y = np.repeat(rng.integers(0, 2, size=n_groups), 4)
    shared = np.repeat(rng.normal(size=n_groups), 4)
    scores = (shared + 0.5 * y + 0.05 * rng.normal(size=len(y)))[:, None]
    groups = np.repeat(np.arange(n_groups), 4)
    by_example = auroc_ci(scores, y, n_resamples=1000)
    by_group = auroc_ci(scores, y, units=groups, n_resamples=1000)
    assert (by_group.high - by_group.low) > 1.5 * (by_example.high - by_example.low)


def test_a_missing_class_is_nan_and_bad_labels_are_refused() -> None:
    assert np.isnan(auroc(np.arange(4.0)[:, None], np.zeros(4, int))).all()
    with pytest.raises(StatsInputError, match="0 or 1"):
        auroc(np.arange(4.0), np.array([0, 1, 2, 1]))
    with pytest.raises(StatsInputError, match="units"):
        auroc_ci(np.arange(4.0), np.array([0, 1, 0, 1]), units=np.zeros(3))
