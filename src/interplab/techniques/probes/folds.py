"""Splitting a labelled dataset for probes: stratified (grouped) folds, the control task's
permuted labels, subsamples that keep whole groups, and transfer sets without shared groups.

1. `stratified_folds`: with groups, whole groups go to one fold (largest first, in seeded order,
   to the fold whose per-class counts stay most even), so no group is on both sides of a split;
   without groups, each class is dealt round-robin over the folds from a seeded start.
2. `permute_within`: the control task's labels, shuffled among the examples of each fold, so
   every fold keeps its class balance but no label is tied to its input (Hewitt & Liang 2019).
3. `subsample`: about n examples, whole groups when there are groups, else class-stratified.
4. `drop_shared_groups`: a transfer's test examples whose group also occurs in training go.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from interplab.data import LabelledDataset
from interplab.results.probes import ProbeError, has_groups


def stratified_folds(
    labels: Sequence[int] | np.ndarray,
    groups: Sequence[str] | None = None,
    *,
    k: int = 5,
    seed: int = 0,
) -> np.ndarray:
    """Returns each example's fold ``0..k-1``: class-stratified, and with groups, whole groups per
    fold (groups go greedily, largest first in seeded order, to the fold that keeps the per-class
    counts most even)."""
    y = np.asarray(labels, dtype=np.int64)
    if k < 2:
        raise ProbeError(f"cross-validation needs at least 2 folds, got {k}")
    rng = np.random.default_rng(seed)
    n_classes = int(y.max()) + 1
    folds = np.empty(len(y), dtype=np.int64)
    if groups is not None and has_groups(list(groups)):
        names, codes = np.unique(np.asarray(groups), return_inverse=True)
        if len(names) < k:
            raise ProbeError(
                f"{len(names)} groups cannot fill {k} folds; use --folds <= {len(names)}"
            )
        counts = np.zeros((len(names), n_classes))
        np.add.at(counts, (codes, y), 1)
        order = rng.permutation(len(names))
        order = order[np.argsort(-counts[order].sum(1), kind="stable")]
        totals = np.zeros((k, n_classes))
        assignment = np.empty(len(names), dtype=np.int64)
        for g in order:
            cost = ((totals + counts[g]) ** 2).sum(1) + 1e-9 * np.arange(k)
            assignment[g] = int(np.argmin(cost))
            totals[assignment[g]] += counts[g]
        folds[:] = assignment[codes]
    else:
        if np.bincount(y).min() < k:
            raise ProbeError(f"a class has fewer than {k} examples; lower the number of folds")
        for c in range(n_classes):
            idx = rng.permutation(np.flatnonzero(y == c))
            folds[idx] = (np.arange(len(idx)) + int(rng.integers(k))) % k
    return folds


def permute_within(y: np.ndarray, fold: np.ndarray, seed: int, n: int) -> np.ndarray:
    """Returns ``n`` copies ``[n, examples]`` of ``y``, each with labels shuffled among the
    examples of each fold (seeded)."""
    if n < 1:
        raise ProbeError(f"the control task needs at least one permutation, got n_controls={n}")
    rng = np.random.default_rng([seed, 0x5EED])
    out = np.tile(y, (n, 1))
    for r in range(n):
        for f in np.unique(fold):
            idx = np.flatnonzero(fold == f)
            out[r, idx] = y[rng.permutation(idx)]
    return out


def subsample(dataset: LabelledDataset, n: int, *, seed: int = 0) -> LabelledDataset:
    """Returns about ``n`` examples of ``dataset`` drawn with ``seed``: whole groups when it has
    groups (so grouped folds stay meaningful), else a class-stratified sample."""
    if n >= len(dataset):
        return dataset
    if n < 2:
        raise ProbeError(f"a probe needs at least 2 examples, got n={n}")
    rng = np.random.default_rng(seed)
    if has_groups(list(dataset.groups)):
        names = sorted(set(dataset.groups))
        chosen: set[str] = set()
        size = {g: dataset.groups.count(g) for g in names}
        total = 0
        for g in rng.permutation(names):
            if total + size[g] > n and total > 0:
                break
            chosen.add(str(g))
            total += size[g]
        keep = [i for i, g in enumerate(dataset.groups) if g in chosen]
    else:
        y = np.asarray(dataset.labels)
        keep = []
        for c in np.unique(y):
            idx = np.flatnonzero(y == c)
            take = max(1, round(n * len(idx) / len(y)))
            keep += rng.choice(idx, size=min(take, len(idx)), replace=False).tolist()
        keep.sort()
    return dataset.subset(keep, f"{dataset.name}[n={len(keep)}, seed={seed}]")


def drop_shared_groups(
    train: LabelledDataset, test: LabelledDataset
) -> tuple[LabelledDataset, int]:
    """Returns ``test`` without the examples whose group also occurs in ``train``, and how many
    were dropped."""
    shared = {g for g in set(train.groups) & set(test.groups) if g}
    if not shared:
        return test, 0
    keep = [i for i, g in enumerate(test.groups) if g not in shared]
    if not keep:
        raise ProbeError(
            f"every test example's group also occurs in the training set ({len(shared)} shared); "
            "split by group first (dataset.split(by_group=True)) or pass disjoint_groups=False"
        )
    return test.subset(keep), len(test) - len(keep)


def binary_labels(dataset: LabelledDataset) -> np.ndarray:
    """Returns the labels as int64 ``[n]``, refusing datasets that are not binary."""
    y = np.asarray(dataset.labels, dtype=np.int64)
    if len(dataset.label_names) != 2 or len(set(y.tolist())) != 2:
        raise ProbeError(
            f"probes here are binary; {dataset.name!r} has labels {dataset.label_counts()}"
        )
    return y


__all__ = [
    "binary_labels",
    "drop_shared_groups",
    "permute_within",
    "stratified_folds",
    "subsample",
]
