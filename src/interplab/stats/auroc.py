"""AUROC with a bootstrap interval that resamples clusters (groups) of examples, not examples.

The area under the ROC curve is the probability that a random positive example scores above a
random negative one, ties counting half (the Mann-Whitney statistic divided by ``n_pos · n_neg``).

Algorithm of `auroc_ci`:

1. The estimate is the AUROC of every column of ``scores`` ``[n_examples, *cells]`` against the
   binary ``labels``.
2. A resample draws ``n_units`` units with replacement (a unit is one example, or one group when
   ``units`` labels the examples with their group: all statements about one country), and each
   example is weighted by how often its unit was drawn. The weighted AUROC of a resample equals
   the AUROC of the data with each drawn unit's examples repeated, so no array is ever copied:
   for each cell, the negatives are sorted once and each positive's weighted count of negatives
   below it (half for ties) comes from a cumulative sum of weights.
3. The interval is the percentile interval of the resampled AUROCs (resamples in which a class
   is missing are undefined and ignored), seeded and drawn in chunks of 500 resamples.

Resampling whole groups matters when examples within a group are alike (two phrasings of one
fact): an example-level bootstrap would then report an interval that is too narrow.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from interplab.stats._validate import (
    StatsInputError,
    check_confidence,
    check_n_resamples,
    check_seed,
)

_CHUNK = 500


@dataclass(frozen=True)
class AurocResult:
    """AUROC per cell with its percentile bootstrap interval; arrays are shaped like the cells."""

    estimate: np.ndarray
    low: np.ndarray
    high: np.ndarray
    n: int
    n_units: int
    n_resamples: int
    confidence: float
    seed: int


def auroc(scores: np.ndarray, labels: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Returns the AUROC of each cell of ``scores`` ``[n, *cells]`` for binary ``labels`` ``[n]``
    (ties count half; NaN where a class is absent). ``weights`` ``[B, n]`` (non-negative example
    weights) gives one AUROC per row: ``[B, *cells]``."""
    s, y = _check(scores, labels)
    cells = s.shape[1:]
    flat = s.reshape(len(y), -1)
    w = np.ones((1, len(y))) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.ndim != 2 or w.shape[1] != len(y):
        raise StatsInputError(f"weights must be [resamples, {len(y)}], got shape {w.shape}")
    out = _weighted_auroc(flat, y, w)
    if weights is None:
        return out[0].reshape(cells)
    return out.reshape((w.shape[0], *cells))


def auroc_ci(
    scores: np.ndarray,
    labels: np.ndarray,
    *,
    units: np.ndarray | None = None,
    n_resamples: int = 10_000,
    confidence: float = 0.95,
    seed: int = 0,
) -> AurocResult:
    """Returns the AUROC of each cell of ``scores`` ``[n, *cells]`` and a percentile bootstrap
    interval that resamples ``units`` (one label per example, e.g. its group; default: each
    example is its own unit)."""
    check_n_resamples(n_resamples)
    check_confidence(confidence)
    check_seed(seed)
    s, y = _check(scores, labels)
    if units is None:
        codes = np.arange(len(y))
    else:
        u = np.asarray(units)
        if u.shape != (len(y),):
            raise StatsInputError(
                f"units must give one label per example ({len(y)}), got {u.shape}"
            )
        codes = np.unique(u, return_inverse=True)[1].reshape(-1)
    flat = s.reshape(len(y), -1)
    estimate = _weighted_auroc(flat, y, np.ones((1, len(y))))[0]
    n_units = int(codes.max()) + 1
    rng = np.random.default_rng(seed)
    draws = []
    for start in range(0, n_resamples, _CHUNK):
        b = min(_CHUNK, n_resamples - start)
        counts = np.zeros((b, n_units))
        np.add.at(counts, (np.arange(b)[:, None], rng.integers(n_units, size=(b, n_units))), 1)
        draws.append(_weighted_auroc(flat, y, counts[:, codes]))
    theta = np.concatenate(draws)
    tail = round((1 - confidence) / 2, 12)  # 0.025, not 0.025000000000000022
    low, high = np.nanquantile(theta, [tail, 1 - tail], axis=0)
    cells = s.shape[1:]
    return AurocResult(
        estimate=estimate.reshape(cells),
        low=low.reshape(cells),
        high=high.reshape(cells),
        n=len(y),
        n_units=n_units,
        n_resamples=int(n_resamples),
        confidence=float(confidence),
        seed=int(seed),
    )


def _check(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels)
    if s.ndim == 0 or y.ndim != 1 or s.shape[0] != y.shape[0]:
        raise StatsInputError(
            f"scores must be [n_examples, *cells] and labels [n_examples]; got {s.shape} and "
            f"{y.shape}"
        )
    if not np.isin(y, (0, 1)).all():
        raise StatsInputError(f"labels must be 0 or 1, got values {sorted(set(y.tolist()))[:5]}")
    return s, y.astype(np.int64)


def _weighted_auroc(scores: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Returns ``[B, cells]`` weighted AUROCs of ``scores`` ``[n, cells]``, weights ``[B, n]``."""
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    out = np.full((w.shape[0], scores.shape[1]), np.nan)
    if len(pos) == 0 or len(neg) == 0:
        return out
    for j in range(scores.shape[1]):
        order = np.argsort(scores[neg, j], kind="stable")
        s_neg = scores[neg, j][order]
        cum = np.concatenate([np.zeros((w.shape[0], 1)), np.cumsum(w[:, neg[order]], 1)], 1)
        lo = np.searchsorted(s_neg, scores[pos, j], "left")
        hi = np.searchsorted(s_neg, scores[pos, j], "right")
        wins = cum[:, lo] + 0.5 * (cum[:, hi] - cum[:, lo])  # [B, n_pos]
        w_pos = w[:, pos]
        with np.errstate(invalid="ignore", divide="ignore"):
            out[:, j] = (w_pos * wins).sum(1) / (w_pos.sum(1) * cum[:, -1])
    return out


__all__ = ["AurocResult", "auroc", "auroc_ci"]
