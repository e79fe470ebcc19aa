"""Linear probes: how well a label can be read linearly from the residual stream, layer by layer.

Algorithm (Alain & Bengio 2016, "Understanding intermediate layers using linear classifier
probes"; Hewitt & Liang 2019, "Designing and Interpreting Probes with Control Tasks"; Marks &
Tegmark 2023, "The Geometry of Truth", for difference-of-means probes):

1. Gather: one forward pass per batch captures the residual site at every layer at once, and
   each example becomes one vector per layer read at a position: its last real token, the mean
   over its real tokens (padding excluded through the attention mask), an offset (``-2``: the
   token before the last; ``3``: token 3), or the last occurrence of a named token (``" is"``)
   (`interplab.techniques.activations`).
2. Split into k stratified folds; when the dataset has groups (the country of a capital
   statement) whole groups go to one fold, so no group is on both the training and test side
   (`folds.stratified_folds`).
3. Fit every fold's probe at every layer in one batched optimisation, logistic or difference of
   means (`fit.fit_batched`).
4. Score each held-out fold: per example and layer the decision score (``> 0`` predicts label
   1), the prediction and whether it is correct. Accuracy with a bootstrap CI over examples (over
   groups when present) from `interplab.stats`; AUROC of the pooled out-of-fold scores with a
   percentile bootstrap over the same units (`interplab.stats.auroc_ci`), and per fold.
5. Control task: the same pipeline with labels permuted within each fold (seeded), so every fold
   keeps its class balance but no label is tied to its input; ``n_controls`` permutations (3 by
   default) are averaged per example, because one permutation's accuracy alone varies by ±0.05
   at n = 240. Selectivity = accuracy − control accuracy per layer, with a paired bootstrap CI
   over the same examples (Hewitt & Liang).
6. Directions: the same probe fit on all examples, mapped back to raw activation coordinates
   (``score = x · direction + bias``), one per layer; `ProbeResult.save_directions` writes them.

`probe_transfer` trains on dataset A and tests on dataset B (a held-out phrasing, another task);
by default B's examples whose group also occurs in A are dropped, so "transfer" cannot be
recognising the same country.

Steps 2–3 and 4–6 are also public as `fit_layers` and `probe_result`, so that the layers can be
fit in separate pieces (`interplab.distributed.probes`) and joined into one result.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from torch import Tensor

from interplab.core.model import Model
from interplab.data import LabelledDataset
from interplab.provenance import Provenance
from interplab.results.directions import ProbeDirections
from interplab.results.probes import (
    Position,
    ProbeConfig,
    ProbeError,
    ProbeKind,
    ProbeResult,
    ResidualComponent,
    has_groups,
)
from interplab.stats import BootstrapResult, auroc, auroc_ci, bootstrap_ci
from interplab.store import recorded
from interplab.techniques.activations import Activations, gather_activations
from interplab.techniques.probes.fit import fit_batched
from interplab.techniques.probes.folds import (
    binary_labels,
    drop_shared_groups,
    permute_within,
    stratified_folds,
)


@recorded("linear_probe", inputs="dataset")
def linear_probe(
    model: Model,
    dataset: LabelledDataset,
    *,
    probe: ProbeKind = "logistic",
    component: ResidualComponent = "resid_post",
    position: Position = "last",
    layers: Sequence[int] | None = None,
    folds: int = 5,
    seed: int = 0,
    c: float = 0.01,
    batch_size: int = 64,
    n_controls: int = 3,
    n_resamples: int = 10_000,
    config: ProbeConfig | None = None,
) -> ProbeResult:
    """Returns cross-validated linear probes for ``dataset``'s labels at every layer of ``model``,
    with a shuffled-label control task and selectivity. ``config`` replaces the keyword options."""
    cfg = config or ProbeConfig(
        probe=probe,
        component=component,
        position=position,
        layers=None if layers is None else tuple(int(i) for i in layers),
        folds=folds,
        c=c,
        n_controls=n_controls,
        n_resamples=n_resamples,
        batch_size=batch_size,
        seed=seed,
    )
    acts = _gather(model, dataset, cfg)
    return probe_activations(acts, dataset, device=model.device, config=cfg)


def probe_activations(
    acts: Activations,
    dataset: LabelledDataset,
    *,
    probe: ProbeKind = "logistic",
    folds: int = 5,
    seed: int = 0,
    c: float = 0.01,
    n_controls: int = 3,
    device: str | torch.device = "cpu",
    n_resamples: int = 10_000,
    config: ProbeConfig | None = None,
) -> ProbeResult:
    """Returns k-fold cross-validated probes at every layer of ``acts`` with the control task
    (averaged over ``n_controls`` seeded permutations). ``config`` replaces the keyword options;
    the site, position and layers always come from ``acts``."""
    cfg = _with_site(
        config
        or ProbeConfig(
            probe=probe, folds=folds, seed=seed, c=c, n_controls=n_controls, n_resamples=n_resamples
        ),
        acts,
    )
    return probe_result(dataset, [fit_layers(acts, dataset, config=cfg, device=device)], config=cfg)


@dataclass(frozen=True)
class LayerFits:
    """Steps 2–3 at some layers: each example's held-out score from its fold's probe and from
    each control permutation's, and the probe fit on every example (the split point of
    `interplab.distributed.probes`: pieces at disjoint layers join in `probe_result`)."""

    layers: tuple[int, ...]
    component: str
    position: Position
    model: dict[str, Any]
    scores: np.ndarray  # [n, layer]
    control_scores: np.ndarray  # [control, n, layer]
    coef: Tensor  # [layer, d_model], the all-examples fit
    bias: Tensor  # [layer]


def fit_layers(
    acts: Activations,
    dataset: LabelledDataset,
    *,
    config: ProbeConfig,
    device: str | torch.device = "cpu",
) -> LayerFits:
    """Returns the fold, control and all-examples probes at every layer of ``acts``, fit in one
    batched optimisation (steps 2–3; the folds and permutations come from ``config.seed``)."""
    cfg = _with_site(config, acts)
    y = binary_labels(dataset)
    _check_matches(acts, dataset)
    fold, control = _folds(y, dataset, cfg)
    k = int(fold.max()) + 1
    ids = np.arange(k)
    # Tasks: k folds, then k folds per control permutation, then one fit on every example.
    train = np.concatenate(
        [fold[None] != ids[:, None]] * (1 + cfg.n_controls) + [np.ones((1, len(y)), bool)]
    )
    targets = np.concatenate(
        [np.tile(y, (k, 1)), *[np.tile(cy, (k, 1)) for cy in control], y[None]]
    )
    x = torch.as_tensor(acts.values, device=device)
    coef, bias = fit_batched(
        x,
        torch.as_tensor(targets, device=device),
        torch.as_tensor(train, device=device),
        cfg.probe,
        cfg.c,
    )
    all_scores = (torch.einsum("nld,tld->tnl", x.float(), coef) + bias[:, None]).cpu().numpy()
    rows = np.arange(len(y))
    scores = all_scores[fold, rows]
    control_scores = np.stack([all_scores[k * (1 + r) + fold, rows] for r in range(cfg.n_controls)])
    return LayerFits(
        tuple(acts.layers),
        acts.component,
        acts.position,
        acts.model,
        scores,
        control_scores,
        coef[-1].clone(),
        bias[-1].clone(),
    )


def probe_result(
    dataset: LabelledDataset, fits: Sequence[LayerFits], *, config: ProbeConfig
) -> ProbeResult:
    """Returns the cross-validated `ProbeResult` (steps 4–6) of ``fits`` at disjoint layers,
    joined in the order given; ``config`` is the one every piece was fit with."""
    if not fits:
        raise ProbeError("no layer fits to join: give at least one")
    first = fits[0]
    layers = tuple(layer for f in fits for layer in f.layers)
    if len(set(layers)) != len(layers):
        raise ProbeError(f"the fits overlap: layers {list(layers)}")
    if any((f.component, f.position) != (first.component, first.position) for f in fits):
        raise ProbeError("the fits were read at different sites or positions")
    cfg = replace(
        config,
        component=first.component,  # type: ignore[arg-type]
        position=first.position,
        layers=layers,
    )
    y = binary_labels(dataset)
    fold, control = _folds(y, dataset, cfg)
    joined = LayerFits(
        layers,
        first.component,
        first.position,
        first.model,
        np.concatenate([f.scores for f in fits], axis=-1),
        np.concatenate([f.control_scores for f in fits], axis=-1),
        torch.cat([f.coef for f in fits]),
        torch.cat([f.bias for f in fits]),
    )
    return _result(
        joined, dataset, y, control, fold, joined.scores, joined.control_scores, joined.coef,
        joined.bias, cfg, None,
    )  # fmt: skip


def _folds(
    y: np.ndarray, dataset: LabelledDataset, cfg: ProbeConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Returns each example's fold and the control task's permuted labels ``[R, n]`` (seeded)."""
    fold = stratified_folds(y, dataset.groups, k=cfg.folds, seed=cfg.seed)
    return fold, permute_within(y, fold, cfg.seed, cfg.n_controls)


def probe_transfer(
    model: Model,
    train: LabelledDataset,
    test: LabelledDataset,
    *,
    probe: ProbeKind = "logistic",
    component: ResidualComponent = "resid_post",
    position: Position = "last",
    layers: Sequence[int] | None = None,
    seed: int = 0,
    c: float = 0.01,
    disjoint_groups: bool = True,
    batch_size: int = 64,
    n_controls: int = 3,
    n_resamples: int = 10_000,
    config: ProbeConfig | None = None,
) -> ProbeResult:
    """Returns probes trained on all of ``train`` and scored on ``test`` at every layer (with
    ``disjoint_groups``, test examples whose group occurs in ``train`` are dropped first).
    ``config`` replaces the keyword options."""
    cfg = config or ProbeConfig(
        probe=probe,
        component=component,
        position=position,
        layers=None if layers is None else tuple(int(i) for i in layers),
        c=c,
        n_controls=n_controls,
        n_resamples=n_resamples,
        batch_size=batch_size,
        seed=seed,
        disjoint_groups=disjoint_groups,
    )
    test, dropped = drop_shared_groups(train, test) if cfg.disjoint_groups else (test, 0)
    acts_a, acts_b = _gather(model, train, cfg), _gather(model, test, cfg)
    return transfer_activations(
        acts_a, train, acts_b, test, device=model.device, dropped=dropped, config=cfg
    )


def transfer_activations(
    acts_a: Activations,
    train: LabelledDataset,
    acts_b: Activations,
    test: LabelledDataset,
    *,
    probe: ProbeKind = "logistic",
    seed: int = 0,
    c: float = 0.01,
    n_controls: int = 3,
    device: str | torch.device = "cpu",
    n_resamples: int = 10_000,
    dropped: int = 0,
    config: ProbeConfig | None = None,
) -> ProbeResult:
    """Returns probes fit on ``acts_a`` (labels of ``train``) scored on ``acts_b`` (``test``).
    ``config`` replaces the keyword options."""
    cfg = _with_site(
        config
        or ProbeConfig(probe=probe, seed=seed, c=c, n_controls=n_controls, n_resamples=n_resamples),
        acts_b,
    )
    _check_matches(acts_a, train)
    _check_matches(acts_b, test)
    if acts_a.layers != acts_b.layers or acts_a.component != acts_b.component:
        raise ProbeError("train and test activations must come from the same layers and site")
    ya, yb = binary_labels(train), binary_labels(test)
    control_a = permute_within(ya, np.zeros_like(ya), cfg.seed, cfg.n_controls)
    control_b = permute_within(yb, np.zeros_like(yb), cfg.seed + 1, cfg.n_controls)
    coef, bias = fit_batched(
        torch.as_tensor(acts_a.values, device=device),
        torch.as_tensor(np.concatenate([ya[None], control_a]), device=device),
        torch.ones((1 + cfg.n_controls, len(ya)), dtype=torch.bool, device=device),
        cfg.probe,
        cfg.c,
    )
    x = torch.as_tensor(acts_b.values, device=device).float()
    scores = (torch.einsum("nld,tld->tnl", x, coef) + bias[:, None]).cpu().numpy()
    fold = np.zeros_like(yb)
    transfer = _Transfer(train.name, len(ya), train.hash, dropped)
    return _result(
        acts_b, test, yb, control_b, fold, scores[0], scores[1:], coef[0], bias[0], cfg, transfer
    )


@dataclass(frozen=True)
class _Transfer:
    """Where a transfer's probes were trained: the dataset, its size and hash, dropped groups."""

    name: str
    n: int
    sha256: str
    dropped: int


def _result(
    acts: Activations | LayerFits,
    dataset: LabelledDataset,
    y: np.ndarray,
    control: np.ndarray,
    fold: np.ndarray,
    scores: np.ndarray,
    control_scores: np.ndarray,
    coef: Tensor,
    bias: Tensor,
    cfg: ProbeConfig,
    transfer: _Transfer | None,
) -> ProbeResult:
    """Returns the result of step 4 and 5: correctness, intervals, AUROC, per-fold numbers."""
    groups = np.asarray(dataset.groups) if has_groups(list(dataset.groups)) else None
    predictions = (scores > 0).astype(np.int64)
    correct = predictions == y[:, None]
    control_correct = ((control_scores > 0) == control[:, :, None]).mean(0)  # [n, layer]

    def ci(values: np.ndarray, baseline: np.ndarray | None = None) -> BootstrapResult:
        return bootstrap_ci(
            values.astype(np.float64),
            baseline=None if baseline is None else baseline.astype(np.float64),
            groups=groups,
            seed=cfg.seed,
            n_resamples=cfg.n_resamples,
        )

    acc, ctl, sel = ci(correct), ci(control_correct), ci(correct, control_correct)
    roc = auroc_ci(scores, y, units=groups, n_resamples=cfg.n_resamples, seed=cfg.seed)
    k = int(fold.max()) + 1
    fold_acc = np.stack([correct[fold == f].mean(0) for f in range(k)])
    fold_auc = np.stack([auroc(scores[fold == f], y[fold == f]) for f in range(k)])
    prov = Provenance(
        technique="linear_probe" if transfer is None else "linear_probe_transfer",
        model=acts.model,
        config=cfg.to_dict(),
        data_sha256=dataset.hash,
        seed=cfg.seed,
    )
    directions = ProbeDirections(
        coef.double().cpu().numpy(),
        bias.double().cpu().numpy(),
        acts.layers,
        cfg.probe,
        acts.component,
        str(acts.position),
    )
    return ProbeResult(
        dataset=dataset.name,
        texts=list(dataset.texts),
        labels=y,
        groups=list(dataset.groups),
        label_names=list(dataset.label_names),
        layers=list(acts.layers),
        component=acts.component,
        position=acts.position,
        probe=cfg.probe,
        folds=fold,
        scores=scores,
        predictions=predictions,
        correct=correct,
        control_labels=control,
        control_scores=control_scores,
        control_correct=control_correct,
        accuracy=acc.estimate,
        accuracy_ci=np.stack([acc.low, acc.high]),
        auroc=roc.estimate,
        auroc_ci=np.stack([roc.low, roc.high]),
        fold_accuracy=fold_acc,
        fold_auroc=fold_auc,
        control_accuracy=ctl.estimate,
        control_ci=np.stack([ctl.low, ctl.high]),
        selectivity=sel.estimate,
        selectivity_ci=np.stack([sel.low, sel.high]),
        directions=directions,
        train_dataset=None if transfer is None else transfer.name,
        train_n=None if transfer is None else transfer.n,
        train_sha256=None if transfer is None else transfer.sha256,
        dropped_shared_groups=0 if transfer is None else transfer.dropped,
        provenance=prov,
    )


def _gather(model: Model, dataset: LabelledDataset, cfg: ProbeConfig) -> Activations:
    return gather_activations(
        model,
        dataset.texts,
        component=cfg.component,
        position=cfg.position,
        layers=cfg.layers,
        batch_size=cfg.batch_size,
    )


def _with_site(cfg: ProbeConfig, acts: Activations) -> ProbeConfig:
    """Returns ``cfg`` with the site, position and layers the activations were read at."""
    return replace(
        cfg,
        component=acts.component,  # type: ignore[arg-type]
        position=acts.position,
        layers=tuple(acts.layers),
    )


def _check_matches(acts: Activations, dataset: LabelledDataset) -> None:
    if acts.n != len(dataset):
        raise ProbeError(f"{acts.n} activations for {len(dataset)} examples of {dataset.name!r}")


__all__ = [
    "LayerFits",
    "fit_layers",
    "linear_probe",
    "probe_activations",
    "probe_result",
    "probe_transfer",
    "transfer_activations",
]
