"""Linear probes: how well a label can be read linearly from the residual stream, layer by layer.

Algorithm (Alain & Bengio 2016, "Understanding intermediate layers using linear classifier
probes"; Hewitt & Liang 2019, "Designing and Interpreting Probes with Control Tasks"; Marks &
Tegmark 2023, "The Geometry of Truth", for difference-of-means probes):

1. Gather: one forward pass per batch captures the residual site at every layer at once, and
   each example becomes one vector per layer read at a position: its last real token, the mean
   over its real tokens (padding excluded through the attention mask), an offset (``-2``: the
   token before the last; ``3``: token 3), or the last occurrence of a named token (``" is"``).
2. Split into k stratified folds; when the dataset has groups (the country of a capital
   statement) whole groups go to one fold, so no group is on both the training and test side.
3. Fit every fold's probe at every layer in one batched optimisation:
   - ``logistic``: L2-penalised logistic regression on features standardised with the training
     fold's mean and (population) standard deviation, minimising ``Σ log-loss + ||w||² / (2C)``
     (scikit-learn's objective, intercept unpenalised) by full-batch L-BFGS in torch;
   - ``diffmean``: direction ``mean(label 1) − mean(label 0)``, threshold at the midpoint of the
     two class means projected on it.
4. Score each held-out fold: per example and layer the decision score (``> 0`` predicts label
   1), the prediction and whether it is correct. Accuracy with a bootstrap CI over examples (over
   groups when present) from `interplab.stats`; AUROC of the pooled out-of-fold scores with a
   percentile bootstrap over the same units, and per fold.
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
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from interplab.core.model import Model
from interplab.data import LabelledDataset
from interplab.errors import UserError
from interplab.provenance import Provenance, write_json
from interplab.sites import Component
from interplab.stats import Summary, bootstrap_ci, summarize
from interplab.techniques.activations import Activations, Position, gather_activations
from interplab.techniques.directions import ProbeDirections

ProbeKind = Literal["logistic", "diffmean"]
PROBE_KINDS: tuple[str, ...] = get_args(ProbeKind)


class ProbeError(UserError):
    """A dataset, position or setting that a probe cannot use."""


@dataclass(frozen=True)
class ProbeResult:
    """Per-example out-of-fold scores of a probe at every layer, with controls and intervals.

    Arrays are ``[example, layer]`` per example, ``[layer]`` per layer, ``[fold, layer]`` per fold.
    Intervals are 95% bootstrap CIs over examples, or over groups when the dataset has them.
    """

    dataset: str
    texts: list[str]
    labels: np.ndarray
    groups: list[str]
    label_names: list[str]
    layers: list[int]
    component: str
    position: Position
    probe: str
    folds: np.ndarray  # [n]: each example's test fold (0 for every example in a transfer)
    scores: np.ndarray
    predictions: np.ndarray
    correct: np.ndarray
    control_labels: np.ndarray  # [control, n]: each permutation's labels
    control_scores: np.ndarray  # [control, n, layer]
    control_correct: np.ndarray  # [n, layer]: share of the control probes right on the example
    accuracy: np.ndarray
    accuracy_ci: np.ndarray  # [2, layer]: low, high
    auroc: np.ndarray
    auroc_ci: np.ndarray
    fold_accuracy: np.ndarray
    fold_auroc: np.ndarray
    control_accuracy: np.ndarray
    control_ci: np.ndarray
    selectivity: np.ndarray
    selectivity_ci: np.ndarray
    directions: ProbeDirections
    train_dataset: str | None
    provenance: Provenance

    @property
    def n(self) -> int:
        return len(self.texts)

    @property
    def n_groups(self) -> int | None:
        return len(set(self.groups)) if _has_groups(self.groups) else None

    @property
    def best_layer(self) -> int:
        """The layer with the highest accuracy (chosen after the fact: see `summary` for Holm)."""
        return self.layers[int(np.nanargmax(self.accuracy))]

    def at(self, layer: int) -> dict[str, float]:
        """Returns accuracy, AUROC, control and selectivity with their CI ends at ``layer``."""
        i = self.layers.index(layer)
        out: dict[str, float] = {}
        for name, value, ci in (
            ("accuracy", self.accuracy, self.accuracy_ci),
            ("auroc", self.auroc, self.auroc_ci),
            ("control", self.control_accuracy, self.control_ci),
            ("selectivity", self.selectivity, self.selectivity_ci),
        ):
            out[name], out[f"{name}_low"], out[f"{name}_high"] = (
                float(value[i]),
                float(ci[0, i]),
                float(ci[1, i]),
            )
        return out

    def summary(self, *, seed: int = 0) -> Summary:
        """Returns selectivity per layer (correct − control-correct per example, paired) with CI
        and n, a sign-flip test against 0, and Holm correction over layers."""
        return summarize(
            self.correct.astype(np.float64),
            baseline=self.control_correct.astype(np.float64),
            groups=np.asarray(self.groups) if self.n_groups else None,
            seed=seed,
        )

    def describe(self) -> str:
        """Returns one sentence on the best layer a write-up can quote."""
        b = self.at(self.best_layer)
        sample = f"n={self.n}" + (f" in {self.n_groups} groups" if self.n_groups else "")
        return (
            f"{self.probe} probe on {self.component} ({self.position}), {self.dataset}: best layer "
            f"{self.best_layer} accuracy {b['accuracy']:.3f} (95% CI {b['accuracy_low']:.3f} to "
            f"{b['accuracy_high']:.3f}, {sample}), AUROC {b['auroc']:.3f}, control "
            f"{b['control']:.3f} ({b['control_low']:.3f} to {b['control_high']:.3f}), selectivity "
            f"{b['selectivity']:+.3f} ({b['selectivity_low']:+.3f} to {b['selectivity_high']:+.3f})."
        )

    def save_directions(self, path: str | Path) -> Path:
        """Writes the all-data probe directions ``[layer, d_model]`` and provenance JSON beside."""
        return self.directions.save(path, self.provenance)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "technique": "linear_probe",
            **{f.name: getattr(self, f.name) for f in fields(self) if f.name not in _OWN_KEYS},
            "directions": self.directions.directions,
            "biases": self.directions.biases,
            "best_layer": self.best_layer,
            "n": self.n,
            "n_groups": self.n_groups,
            "provenance": self.provenance.to_dict(),
        }
        if self.n >= 2:
            d["summary"] = self.summary().to_dict()
        return d

    def to_json(self, path: str | Path) -> Path:
        return write_json(path, self.to_dict())

    def figure(self) -> Any:
        """Returns accuracy by layer with 95% CI bands, the control task's, and chance."""
        from matplotlib.figure import Figure

        fig = Figure(figsize=(7.0, 3.6))
        ax = fig.subplots()
        x = np.asarray(self.layers)
        ax.plot(x, self.accuracy, color="C0", label=f"{self.probe} probe")
        ax.fill_between(x, *self.accuracy_ci, color="C0", alpha=0.25)
        ax.plot(x, self.control_accuracy, color="C7", ls="--", label="control (shuffled labels)")
        ax.fill_between(x, *self.control_ci, color="C7", alpha=0.2)
        chance = float(max(np.mean(self.labels), 1 - np.mean(self.labels)))
        ax.axhline(chance, color="k", lw=0.8, ls=":", label="majority class")
        ax.set_xlabel(f"layer ({self.component}, {self.position})")
        ax.set_ylabel("held-out accuracy")
        ax.set_ylim(min(0.3, float(np.nanmin(self.control_ci))), 1.02)
        src = f"train {self.train_dataset} → test " if self.train_dataset else ""
        ax.set_title(f"{src}{self.dataset} (n={self.n}, 95% CI)", fontsize=9)
        ax.legend(fontsize=7, loc="lower right")
        return fig


_OWN_KEYS = ("directions", "provenance")


# -- folds and fitting -------------------------------------------------------------------------


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
    if groups is not None and _has_groups(groups):
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


def fit_probes(
    values: np.ndarray,
    labels: Sequence[int] | np.ndarray,
    *,
    probe: ProbeKind = "logistic",
    c: float = 0.01,
    layers: Sequence[int] | None = None,
    device: str | torch.device = "cpu",
    max_iter: int = 500,
) -> ProbeDirections:
    """Returns one probe per layer fit on all of ``values`` (``[n, layer, d_model]`` or ``[n, d]``)."""
    x = values[:, None] if values.ndim == 2 else values
    y = np.asarray(labels, dtype=np.int64)
    coef, bias = _fit(
        torch.as_tensor(x, device=device),
        torch.as_tensor(y[None], device=device),
        torch.ones((1, len(y)), dtype=torch.bool, device=device),
        probe,
        c,
        max_iter,
    )
    return ProbeDirections(
        coef[0].double().cpu().numpy(),
        bias[0].double().cpu().numpy(),
        tuple(layers) if layers is not None else tuple(range(x.shape[1])),
        probe,
        "unknown",
        "unknown",
    )


def _fit(
    x: Tensor, y: Tensor, train: Tensor, probe: str, c: float, max_iter: int
) -> tuple[Tensor, Tensor]:
    """Fits T independent tasks × L layers at once. x ``[n, L, d]``, y and train ``[T, n]``.
    Returns raw-coordinate directions ``[T, L, d]`` and biases ``[T, L]``."""
    x = x.float()
    w = train.float()
    if probe == "diffmean":
        pos, neg = w * (y == 1), w * (y == 0)
        mu_pos = torch.einsum("tn,nld->tld", pos / pos.sum(1, keepdim=True), x)
        mu_neg = torch.einsum("tn,nld->tld", neg / neg.sum(1, keepdim=True), x)
        direction = mu_pos - mu_neg
        return direction, -(((mu_pos + mu_neg) / 2) * direction).sum(-1)
    if probe != "logistic":
        raise ProbeError(f"unknown probe {probe!r}; choose one of {PROBE_KINDS}")
    if c <= 0:
        raise ProbeError(f"the inverse regularisation strength c must be positive, got {c}")
    n_train = w.sum(1)
    mean = torch.einsum("tn,nld->tld", w / n_train[:, None], x)
    var = torch.einsum("tn,nld->tld", w / n_train[:, None], x.square()) - mean.square()
    sd = var.clamp_min(0).sqrt()
    sd = torch.where(sd > 1e-6 * (1 + mean.abs()), sd, torch.ones_like(sd))  # constant features
    sign = (2 * y.float() - 1)[..., None]  # [T, n, 1]
    coef = torch.zeros(mean.shape, device=x.device, requires_grad=True)
    intercept = torch.zeros(mean.shape[:2], device=x.device, requires_grad=True)
    opt = torch.optim.LBFGS(
        [coef, intercept],
        lr=1,
        max_iter=max_iter,
        tolerance_grad=1e-7,
        tolerance_change=1e-12,
        history_size=20,
        line_search_fn="strong_wolfe",
    )

    def closure() -> Tensor:
        opt.zero_grad()
        v = coef / sd
        z = torch.einsum("nld,tld->tnl", x, v) - (mean * v).sum(-1)[:, None] + intercept[:, None]
        nll = (F.softplus(-sign * z) * w[..., None]).sum(1)  # [T, L]
        loss = ((nll + coef.square().sum(-1) / (2 * c)) / n_train[:, None]).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)  # type: ignore[arg-type]
    with torch.no_grad():
        v = coef / sd
        return v.detach(), (intercept - (mean * v).sum(-1)).detach()


# -- evaluation --------------------------------------------------------------------------------


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
) -> ProbeResult:
    """Returns k-fold cross-validated probes at every layer of ``acts`` with the control task
    (averaged over ``n_controls`` seeded permutations)."""
    y = _binary_labels(dataset)
    _check_matches(acts, dataset)
    fold = stratified_folds(y, dataset.groups, k=folds, seed=seed)
    control = _permute_within(y, fold, seed, n_controls)  # [R, n]
    k = int(fold.max()) + 1
    ids = np.arange(k)
    train = np.concatenate(
        [fold[None] != ids[:, None]] * (1 + n_controls) + [np.ones((1, len(y)), bool)]
    )
    targets = np.concatenate(
        [np.tile(y, (k, 1)), *[np.tile(cy, (k, 1)) for cy in control], y[None]]
    )
    x = torch.as_tensor(acts.values, device=device)
    coef, bias = _fit(
        x,
        torch.as_tensor(targets, device=device),
        torch.as_tensor(train, device=device),
        probe,
        c,
        500,
    )
    all_scores = (torch.einsum("nld,tld->tnl", x.float(), coef) + bias[:, None]).cpu().numpy()
    rows = np.arange(len(y))
    scores = all_scores[fold, rows]
    control_scores = np.stack([all_scores[k * (1 + r) + fold, rows] for r in range(n_controls)])
    config = {
        "folds": k,
        "n_controls": n_controls,
        "fold_rule": "stratified, grouped" if _has_groups(dataset.groups) else "stratified",
        "c": c if probe == "logistic" else None,
    }
    return _result(
        acts,
        dataset,
        y,
        control,
        fold,
        scores,
        control_scores,
        coef[-1],
        bias[-1],
        probe,
        seed,
        n_resamples,
        config,
        train_dataset=None,
    )


def linear_probe(
    model: Model,
    dataset: LabelledDataset,
    *,
    probe: ProbeKind = "logistic",
    component: Component = "resid_post",
    position: Position = "last",
    layers: Sequence[int] | None = None,
    folds: int = 5,
    seed: int = 0,
    c: float = 0.01,
    batch_size: int = 64,
    n_controls: int = 3,
    n_resamples: int = 10_000,
) -> ProbeResult:
    """Returns cross-validated linear probes for ``dataset``'s labels at every layer of ``model``,
    with a shuffled-label control task and selectivity."""
    acts = gather_activations(
        model,
        dataset.texts,
        component=component,
        position=position,
        layers=layers,
        batch_size=batch_size,
    )
    return probe_activations(
        acts,
        dataset,
        probe=probe,
        folds=folds,
        seed=seed,
        c=c,
        device=model.device,
        n_controls=n_controls,
        n_resamples=n_resamples,
    )


def probe_transfer(
    model: Model,
    train: LabelledDataset,
    test: LabelledDataset,
    *,
    probe: ProbeKind = "logistic",
    component: Component = "resid_post",
    position: Position = "last",
    layers: Sequence[int] | None = None,
    seed: int = 0,
    c: float = 0.01,
    disjoint_groups: bool = True,
    batch_size: int = 64,
    n_controls: int = 3,
    n_resamples: int = 10_000,
) -> ProbeResult:
    """Returns probes trained on all of ``train`` and scored on ``test`` at every layer (with
    ``disjoint_groups``, test examples whose group occurs in ``train`` are dropped first)."""
    kwargs: dict[str, Any] = dict(
        component=component, position=position, layers=layers, batch_size=batch_size
    )
    test, dropped = _drop_shared_groups(train, test) if disjoint_groups else (test, 0)
    acts_a = gather_activations(model, train.texts, **kwargs)
    acts_b = gather_activations(model, test.texts, **kwargs)
    return transfer_activations(
        acts_a,
        train,
        acts_b,
        test,
        probe=probe,
        seed=seed,
        c=c,
        device=model.device,
        n_controls=n_controls,
        n_resamples=n_resamples,
        dropped=dropped,
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
) -> ProbeResult:
    """Returns probes fit on ``acts_a`` (labels of ``train``) scored on ``acts_b`` (``test``)."""
    _check_matches(acts_a, train)
    _check_matches(acts_b, test)
    if acts_a.layers != acts_b.layers or acts_a.component != acts_b.component:
        raise ProbeError("train and test activations must come from the same layers and site")
    ya, yb = _binary_labels(train), _binary_labels(test)
    control_a = _permute_within(ya, np.zeros_like(ya), seed, n_controls)
    control_b = _permute_within(yb, np.zeros_like(yb), seed + 1, n_controls)
    coef, bias = _fit(
        torch.as_tensor(acts_a.values, device=device),
        torch.as_tensor(np.concatenate([ya[None], control_a]), device=device),
        torch.ones((1 + n_controls, len(ya)), dtype=torch.bool, device=device),
        probe,
        c,
        500,
    )
    x = torch.as_tensor(acts_b.values, device=device).float()
    scores = (torch.einsum("nld,tld->tnl", x, coef) + bias[:, None]).cpu().numpy()
    config = {
        "train_n": len(ya),
        "train_sha256": train.hash,
        "dropped_shared_groups": dropped,
        "n_controls": n_controls,
        "c": c if probe == "logistic" else None,
    }
    return _result(
        acts_b,
        test,
        yb,
        control_b,
        np.zeros_like(yb),
        scores[0],
        scores[1:],
        coef[0],
        bias[0],
        probe,
        seed,
        n_resamples,
        config,
        train_dataset=train.name,
    )


def _result(
    acts: Activations,
    dataset: LabelledDataset,
    y: np.ndarray,
    control: np.ndarray,
    fold: np.ndarray,
    scores: np.ndarray,
    control_scores: np.ndarray,
    coef: Tensor,
    bias: Tensor,
    probe: str,
    seed: int,
    n_resamples: int,
    config: dict[str, Any],
    *,
    train_dataset: str | None,
) -> ProbeResult:
    groups = np.asarray(dataset.groups) if _has_groups(dataset.groups) else None
    predictions = (scores > 0).astype(np.int64)
    correct = predictions == y[:, None]
    control_correct = ((control_scores > 0) == control[:, :, None]).mean(0)  # [n, layer]

    def ci(values: np.ndarray, baseline: np.ndarray | None = None) -> Any:
        return bootstrap_ci(
            values.astype(np.float64),
            baseline=None if baseline is None else baseline.astype(np.float64),
            groups=groups,
            seed=seed,
            n_resamples=n_resamples,
        )

    acc, ctl, sel = ci(correct), ci(control_correct), ci(correct, control_correct)
    units = np.unique(groups, return_inverse=True)[1] if groups is not None else np.arange(len(y))
    auroc, auroc_ci = _auroc_with_ci(scores, y, units, n_resamples, seed)
    k = int(fold.max()) + 1
    fold_acc = np.stack([correct[fold == f].mean(0) for f in range(k)])
    fold_auc = np.stack([_auroc(scores[fold == f], y[fold == f]) for f in range(k)])
    prov = Provenance(
        technique="linear_probe" if train_dataset is None else "linear_probe_transfer",
        model=acts.model,
        config={
            "probe": probe,
            "component": acts.component,
            "position": acts.position,
            "layers": list(acts.layers),
            "dataset": dataset.name,
            "control": "labels permuted within folds, correctness averaged over permutations",
            "interval": "95% BCa bootstrap over "
            + ("groups" if groups is not None else "examples"),
            "n_resamples": n_resamples,
            **config,
        },
        data_sha256=dataset.hash,
        seed=seed,
    )
    directions = ProbeDirections(
        coef.double().cpu().numpy(),
        bias.double().cpu().numpy(),
        acts.layers,
        probe,
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
        probe=probe,
        folds=fold,
        scores=scores,
        predictions=predictions,
        correct=correct,
        control_labels=control,
        control_scores=control_scores,
        control_correct=control_correct,
        accuracy=acc.estimate,
        accuracy_ci=np.stack([acc.low, acc.high]),
        auroc=auroc,
        auroc_ci=auroc_ci,
        fold_accuracy=fold_acc,
        fold_auroc=fold_auc,
        control_accuracy=ctl.estimate,
        control_ci=np.stack([ctl.low, ctl.high]),
        selectivity=sel.estimate,
        selectivity_ci=np.stack([sel.low, sel.high]),
        directions=directions,
        train_dataset=train_dataset,
        provenance=prov,
    )


def subsample(dataset: LabelledDataset, n: int, *, seed: int = 0) -> LabelledDataset:
    """Returns about ``n`` examples of ``dataset`` drawn with ``seed``: whole groups when it has
    groups (so grouped folds stay meaningful), else a class-stratified sample."""
    if n >= len(dataset):
        return dataset
    if n < 2:
        raise ProbeError(f"a probe needs at least 2 examples, got n={n}")
    rng = np.random.default_rng(seed)
    if _has_groups(dataset.groups):
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


def _auroc(scores: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Returns the (weighted) AUROC per column of ``scores`` ``[n, L]``; ties count half.
    ``weights`` ``[B, n]`` gives one AUROC per row: ``[B, L]``."""
    w = np.ones((1, len(y))) if weights is None else weights
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    if len(pos) == 0 or len(neg) == 0:
        return np.full(
            (w.shape[0], scores.shape[1]) if weights is not None else scores.shape[1], np.nan
        )
    out = np.empty((w.shape[0], scores.shape[1]))
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
    return out if weights is not None else out[0]


def _auroc_with_ci(
    scores: np.ndarray, y: np.ndarray, units: np.ndarray, n_resamples: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Returns pooled AUROC ``[L]`` and a 95% percentile bootstrap CI ``[2, L]`` resampling units."""
    estimate = _auroc(scores, y)
    n_units = int(units.max()) + 1
    rng = np.random.default_rng(seed)
    draws = []
    for start in range(0, n_resamples, 500):
        b = min(500, n_resamples - start)
        counts = np.zeros((b, n_units))
        np.add.at(counts, (np.arange(b)[:, None], rng.integers(n_units, size=(b, n_units))), 1)
        draws.append(_auroc(scores, y, counts[:, units]))
    theta = np.concatenate(draws)
    return estimate, np.nanquantile(theta, [0.025, 0.975], axis=0)


def _permute_within(y: np.ndarray, fold: np.ndarray, seed: int, n: int) -> np.ndarray:
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


def _drop_shared_groups(
    train: LabelledDataset, test: LabelledDataset
) -> tuple[LabelledDataset, int]:
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


def _binary_labels(dataset: LabelledDataset) -> np.ndarray:
    y = np.asarray(dataset.labels, dtype=np.int64)
    if len(dataset.label_names) != 2 or len(set(y.tolist())) != 2:
        raise ProbeError(
            f"probes here are binary; {dataset.name!r} has labels {dataset.label_counts()}"
        )
    return y


def _check_matches(acts: Activations, dataset: LabelledDataset) -> None:
    if acts.n != len(dataset):
        raise ProbeError(f"{acts.n} activations for {len(dataset)} examples of {dataset.name!r}")


def _has_groups(groups: Sequence[str]) -> bool:
    return len({g for g in groups if g}) > 1


__all__ = [
    "PROBE_KINDS",
    "ProbeError",
    "ProbeKind",
    "ProbeResult",
    "fit_probes",
    "linear_probe",
    "probe_activations",
    "probe_transfer",
    "stratified_folds",
    "subsample",
    "transfer_activations",
]
