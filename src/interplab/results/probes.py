"""Probe results as data: out-of-fold scores per example and layer, controls, intervals, directions.

Arrays are ``[example, layer]`` per example, ``[layer]`` per layer and ``[fold, layer]`` per fold.
Intervals are 95% bootstrap CIs over examples, or over groups when the dataset has them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np

from interplab.configs import Config, ConfigError, positive
from interplab.errors import UserError
from interplab.provenance import Provenance
from interplab.results.base import Result
from interplab.results.directions import ProbeDirections
from interplab.sites import Site
from interplab.stats import Summary, summarize

Position = int | str
"""``"last"``, ``"mean"``, an int offset (negative: from the last real token), or a token text."""

ProbeKind = Literal["logistic", "diffmean"]
PROBE_KINDS: tuple[str, ...] = get_args(ProbeKind)
ResidualComponent = Literal["resid_pre", "resid_mid", "resid_post"]


class ProbeError(UserError):
    """A dataset, position or setting that a probe cannot use."""


@dataclass(frozen=True)
class ProbeConfig(Config):
    """How probes are fit and scored.

    ``probe``: logistic regression or difference of means; ``component`` and ``position``: where
    each example is read (see `interplab.techniques.activations`); ``layers``: None for all;
    ``folds``: cross-validation folds (grouped when the dataset has groups; unused by a transfer);
    ``c``: inverse L2 strength of the logistic probe; ``n_controls``: shuffled-label permutations
    averaged in the control task; ``n_resamples``: bootstrap resamples of every interval;
    ``disjoint_groups``: a transfer drops test examples whose group occurs in training.
    """

    probe: ProbeKind = "logistic"
    component: ResidualComponent = "resid_post"
    position: Position = "last"
    layers: tuple[int, ...] | None = None
    folds: int = 5
    c: float = 0.01
    n_controls: int = 3
    n_resamples: int = 10_000
    batch_size: int = 64
    seed: int = 0
    disjoint_groups: bool = True

    def check(self) -> None:
        if self.folds < 2:
            raise ConfigError(f"cross-validation needs at least 2 folds, got folds={self.folds}")
        positive("c (the inverse regularisation strength)", self.c)
        if self.n_controls < 1:
            raise ConfigError(
                f"the control task needs at least one permutation, got n_controls={self.n_controls}"
            )
        positive("n_resamples", self.n_resamples)
        positive("batch_size", self.batch_size)
        if self.layers is not None and not self.layers:
            raise ConfigError("layers is empty; give None for every layer, or some layers")


@dataclass(frozen=True)
class ProbeLayer:
    """One layer's probe: accuracy, AUROC, control accuracy and selectivity with 95% CI ends."""

    layer: int
    accuracy: float
    accuracy_low: float
    accuracy_high: float
    auroc: float
    auroc_low: float
    auroc_high: float
    control: float
    control_low: float
    control_high: float
    selectivity: float
    selectivity_low: float
    selectivity_high: float


@dataclass(frozen=True)
class ProbeResult(Result):
    """Per-example out-of-fold scores of a probe at every layer, with controls and intervals.

    For a transfer (train on one dataset, test on another) ``train_dataset`` names the training
    set, every example's fold is 0, and ``dropped_shared_groups`` counts the test examples
    dropped because their group also occurs in the training set.
    """

    technique = "linear_probe"

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
    train_n: int | None
    train_sha256: str | None
    dropped_shared_groups: int
    provenance: Provenance

    @property
    def n(self) -> int:
        return len(self.texts)

    @property
    def n_groups(self) -> int | None:
        return len(set(self.groups)) if has_groups(self.groups) else None

    @property
    def best_layer(self) -> int:
        """The layer with the highest accuracy (chosen after the fact: see `summary` for Holm)."""
        return self.layers[int(np.nanargmax(self.accuracy))]

    @property
    def chance(self) -> float:
        """The majority class's share: the accuracy of always guessing it."""
        share = float(np.mean(self.labels))
        return max(share, 1 - share)

    def at(self, layer: int) -> ProbeLayer:
        """Returns accuracy, AUROC, control and selectivity with their CI ends at ``layer``."""
        i = self.layers.index(layer)
        values: dict[str, float] = {}
        for name, value, ci in (
            ("accuracy", self.accuracy, self.accuracy_ci),
            ("auroc", self.auroc, self.auroc_ci),
            ("control", self.control_accuracy, self.control_ci),
            ("selectivity", self.selectivity, self.selectivity_ci),
        ):
            values[name] = float(value[i])
            values[name + "_low"] = float(ci[0, i])
            values[name + "_high"] = float(ci[1, i])
        return ProbeLayer(layer=layer, **values)

    def table(self) -> list[ProbeLayer]:
        """Returns one `ProbeLayer` per layer, in layer order."""
        return [self.at(layer) for layer in self.layers]

    def summary(self, *, seed: int = 0) -> Summary:
        """Returns selectivity per layer (correct − control-correct per example, paired) with CI
        and n, a sign-flip test against 0, and Holm correction over layers."""
        return summarize(
            self.correct.astype(np.float64),
            baseline=self.control_correct.astype(np.float64),
            groups=np.asarray(self.groups) if self.n_groups else None,
            seed=seed,
        )

    def describe_summary(self, *, seed: int = 0) -> str:
        """Returns `summary`'s sentence with its largest cell named by its site (``L12.resid_post``)
        rather than its index among the layers."""
        s = self.summary(seed=seed)
        text = s.describe()
        if s.cell_shape == () or np.isnan(s.mean).all():
            return text
        top = int(np.nanargmax(np.abs(s.mean)))
        return text.replace(f"at cell ({top},)", f"at {Site(self.layers[top], self.component)}", 1)  # type: ignore[arg-type]

    def describe(self) -> str:
        """Returns one sentence on the best layer a write-up can quote."""
        b = self.at(self.best_layer)
        sample = f"n={self.n}" + (f" in {self.n_groups} groups" if self.n_groups else "")
        return (
            f"{self.probe} probe on {self.component} ({self.position}), {self.dataset}: best layer "
            f"{self.best_layer} accuracy {b.accuracy:.3f} (95% CI {b.accuracy_low:.3f} to "
            f"{b.accuracy_high:.3f}, {sample}), AUROC {b.auroc:.3f}, control "
            f"{b.control:.3f} ({b.control_low:.3f} to {b.control_high:.3f}), selectivity "
            f"{b.selectivity:+.3f} ({b.selectivity_low:+.3f} to {b.selectivity_high:+.3f})."
        )

    def save_directions(self, path: str | Path) -> Path:
        """Writes the all-data probe directions ``[layer, d_model]`` and provenance JSON beside."""
        return self.directions.save(path, self.provenance)

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        d |= {"best_layer": self.best_layer, "n": self.n, "n_groups": self.n_groups}
        if self.n >= 2:
            d["summary"] = self.summary().to_dict()
        return d


def has_groups(groups: list[str] | tuple[str, ...]) -> bool:
    """Whether the examples carry at least two distinct non-empty groups."""
    return len({g for g in groups if g}) > 1


__all__ = [
    "PROBE_KINDS",
    "Position",
    "ProbeConfig",
    "ProbeError",
    "ProbeKind",
    "ProbeLayer",
    "ProbeResult",
    "ResidualComponent",
    "has_groups",
]
