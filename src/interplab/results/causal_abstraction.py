"""Causal abstraction results as data: subspaces, interchange interventions and DAS runs.

- `Subspace`: an orthonormal basis ``[d, k]`` at a site and token positions, with what made it
  (method, task, variables) and its provenance. JSON in and out; `direction` gives a k=1
  subspace as the unit vector that steering and directional ablation take.
- `InterchangeResult`: per (base, source) pair, the high-level model's counterfactual answer, the
  network's answer under the interchange and without it; interchange-intervention accuracy
  (IIA) is the share of pairs where they agree.
- `DASResult`: a learned subspace with its held-out IIA beside the baselines that make it a
  claim: random rotations of the same size, a control task (the same search fit to shuffled
  labels), the whole site swapped, and no intervention; and the training curves.

Every IIA comes per example; summaries carry n and a 95% bootstrap CI (`interplab.stats`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from interplab.configs import Config, ConfigError, positive
from interplab.errors import UserError
from interplab.provenance import Provenance, write_text
from interplab.results.base import Result, ResultError, decode_dataclass, encode
from interplab.sites import Site
from interplab.stats import Summary, proportion_ci, summarize

DASMethod = Literal["das", "boundless"]
Condition = Literal["learned", "random", "control", "full", "none"]
CONDITIONS: tuple[Condition, ...] = ("learned", "random", "control", "full", "none")
CONDITION_LABELS: dict[str, str] = {
    "learned": "learned subspace",
    "random": "random rotation (same k)",
    "control": "control task (shuffled labels)",
    "full": "whole site swapped",
    "none": "no intervention",
}


class AbstractionError(UserError):
    """A causal model, task, dataset, site or subspace that causal abstraction cannot use."""


Path_ = Literal["auto", "partial", "hooks"]
Control = Literal["shuffled", "none"]


@dataclass(frozen=True)
class InterchangeConfig(Config):
    """Where an interchange swaps: ``sites``, token ``positions`` (per row: 0 first, -1 last),
    the computation ``path`` (``auto``: partial forwards where they apply) and the batch size."""

    sites: tuple[Site, ...]
    positions: tuple[int, ...] = (-1,)
    path: Path_ = "auto"
    batch_size: int = 64

    def check(self) -> None:
        if not self.sites:
            raise ConfigError("sites is empty; give at least one site such as 'L12.resid_post'")
        if not self.positions:
            raise ConfigError("positions is empty; give at least one, e.g. -1 (the last token)")
        positive("batch_size", self.batch_size)


@dataclass(frozen=True)
class DASConfig(Config):
    """A distributed alignment search at ``site`` and ``positions``: ``method`` (``das``: k
    learned directions; ``boundless``: a learned boundary), training ``steps`` on batches of
    ``batch_size`` with Adam at ``lr``, the held-out ``test_fraction``, the ``control`` task,
    ``n_random`` random rotations, Boundless's boundary penalty and temperatures (the start as
    a fraction of the site's width, the end in dimensions) and the ``seed``."""

    site: Site
    positions: tuple[int, ...] = (-1,)
    method: DASMethod = "das"
    k: int = 1
    steps: int = 200
    batch_size: int = 32
    lr: float = 0.01
    test_fraction: float = 0.3
    control: Control = "shuffled"
    n_random: int = 5
    boundary_weight: float = 1.0
    boundary_init: float = 0.5
    temperature_start: float = 0.05
    temperature_end: float = 0.1
    path: Path_ = "auto"
    seed: int = 0

    def check(self) -> None:
        if not self.positions:
            raise ConfigError("positions is empty; give at least one, e.g. -1 (the last token)")
        for name in ("k", "steps", "batch_size"):
            positive(name, getattr(self, name))
        if not self.lr > 0:
            raise ConfigError(f"lr must be > 0, got {self.lr}")
        if not 0.0 < self.test_fraction < 1.0:
            raise ConfigError(f"test_fraction must lie in (0, 1), got {self.test_fraction}")
        if self.n_random < 0:
            raise ConfigError(f"n_random must be >= 0, got {self.n_random}")
        if not 0.0 < self.boundary_init <= 1.0:
            raise ConfigError(f"boundary_init must lie in (0, 1], got {self.boundary_init}")
        if not (self.temperature_start > 0 and self.temperature_end > 0):
            raise ConfigError("temperatures must be > 0")
        if self.boundary_weight < 0:
            raise ConfigError(f"boundary_weight must be >= 0, got {self.boundary_weight}")


def principal_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Returns the cosines of the principal angles between the column spans of ``a`` ``[d, k]``
    and ``b`` ``[d, m]`` (descending; 1 = a shared direction, 0 = orthogonal)."""
    qa, _ = np.linalg.qr(np.asarray(a, dtype=np.float64).reshape(a.shape[0], -1))
    qb, _ = np.linalg.qr(np.asarray(b, dtype=np.float64).reshape(b.shape[0], -1))
    if qa.shape[0] != qb.shape[0]:
        raise AbstractionError(f"bases live in {qa.shape[0]} and {qb.shape[0]} dimensions")
    return np.clip(np.linalg.svd(qa.T @ qb, compute_uv=False), 0.0, 1.0)


@dataclass(frozen=True)
class Subspace:
    """An orthonormal basis ``[d, k]`` (columns) at ``site`` and token ``positions`` (per row: 0
    is the first real token, -1 the last). ``label_means`` ``[candidates, k]`` are the mean
    coordinates of source activations by the answer slot the interchange should produce (NaN
    for a slot never seen); `interplab.techniques.causal_abstraction` turns them into a
    steering vector."""

    site: Site
    positions: tuple[int, ...]
    basis: np.ndarray
    method: str
    task: str
    variables: list[str]
    slots: list[str]
    label_means: np.ndarray
    provenance: Provenance

    def __post_init__(self) -> None:
        b = np.asarray(self.basis)
        if b.ndim != 2 or b.shape[1] < 1 or b.shape[1] > b.shape[0]:
            raise AbstractionError(f"a subspace basis is [d, k] with 1 <= k <= d, got {b.shape}")
        if not np.isfinite(b).all():
            raise AbstractionError("the subspace basis holds NaN or inf")
        gram = b.astype(np.float64).T @ b.astype(np.float64)
        if not np.allclose(gram, np.eye(b.shape[1]), atol=1e-3):
            raise AbstractionError(
                "the subspace basis is not orthonormal (columns must be unit and orthogonal); "
                "orthonormalise it first (e.g. numpy.linalg.qr)"
            )

    @property
    def k(self) -> int:
        return int(self.basis.shape[1])

    @property
    def d(self) -> int:
        return int(self.basis.shape[0])

    def direction(self, index: int | None = None) -> np.ndarray:
        """Returns a unit direction ``[d]``: the only one of a k=1 subspace, or column ``index``."""
        if index is None:
            if self.k != 1:
                raise AbstractionError(
                    f"this subspace has k={self.k} directions; pass index= (0..{self.k - 1}) or use "
                    "the whole basis (subspace_ablation_interventions, subspace_patch)"
                )
            index = 0
        if not -self.k <= index < self.k:
            raise AbstractionError(f"index {index} is out of range for k={self.k}")
        col = self.basis[:, index].astype(np.float64)
        return col / np.linalg.norm(col)

    def overlap(self, other: np.ndarray | Subspace) -> np.ndarray:
        """Returns the cosines of the principal angles with another subspace or basis."""
        return principal_cosines(self.basis, other.basis if isinstance(other, Subspace) else other)

    def to_dict(self) -> dict[str, Any]:
        return {"technique": "subspace", **encode(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Subspace:
        if data.get("technique") not in (None, "subspace"):
            raise ResultError(f"this is a {data.get('technique')!r} file, not a subspace")
        return decode_dataclass(cls, data)

    def to_json(self, path: str | Path) -> Path:
        """Writes the subspace as JSON atomically and returns the path."""
        return write_text(path, json.dumps(self.to_dict(), indent=1, allow_nan=False))

    @classmethod
    def from_json(cls, path: str | Path) -> Subspace:
        """Returns the subspace in a JSON file written by `to_json` (or inside a DAS result)."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ResultError(f"no subspace file at {path}") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ResultError(f"{path} is not a subspace JSON file: {e}") from None
        if isinstance(data, dict) and data.get("technique") == "das":
            data = data.get("subspace", {})
        return cls.from_dict(data)


@dataclass(frozen=True)
class IIARow:
    """One condition's interchange-intervention accuracy with its 95% CI ends and n."""

    condition: str
    label: str
    iia: float
    low: float
    high: float
    n: int


@dataclass(frozen=True)
class InterchangeResult(Result):
    """Per (base, source) pair: the counterfactual answer slot the high-level model predicts
    (``labels``), the network's answer slot with the interchange (``predictions``) and without
    it (``base_predictions``), at ``sites`` and ``positions``; ``k`` is the subspace size (0:
    the whole site swapped)."""

    technique = "interchange"

    task: str
    variables: list[str]
    sites: list[Site]
    positions: tuple[int, ...]
    k: int
    base_prompts: list[str]
    source_prompts: list[str]
    candidates: np.ndarray  # [pair, slot] token ids
    labels: np.ndarray  # [pair] counterfactual slot
    predictions: np.ndarray  # [pair] the network's slot under the interchange
    base_predictions: np.ndarray  # [pair] the network's slot without it
    provenance: Provenance

    @property
    def n(self) -> int:
        return len(self.labels)

    @property
    def correct(self) -> np.ndarray:
        """Returns ``[pair]`` 1.0 where the interchanged network gives the counterfactual answer."""
        return (self.predictions == self.labels).astype(np.float64)

    @property
    def iia(self) -> float:
        return float(self.correct.mean())

    @property
    def chance(self) -> float:
        return 1.0 / self.candidates.shape[1]

    def summary(self, *, seed: int = 0) -> Summary:
        """Returns IIA (mean of per-pair outcomes) with its 95% bootstrap CI and n (`describe` and the
        table give the Wilson interval of the 0/1 outcomes instead), tested
        against chance (1 / number of candidates)."""
        return summarize(self.correct, null=self.chance, seed=seed)

    def interval(self) -> tuple[float, float]:
        """Returns the Wilson 95% interval of IIA (the per-pair outcomes are 0/1)."""
        r = proportion_ci(int(self.correct.sum()), self.n)
        return float(r.low), float(r.high)

    def describe(self) -> str:
        s = self.summary()
        low, high = self.interval()
        where = ", ".join(str(x) for x in self.sites)
        what = "whole site" if self.k == 0 else f"{self.k}-dim subspace"
        none = float((self.base_predictions == self.labels).mean())
        return (
            f"IIA {float(s.mean):.3f} (95% Wilson CI {low:.3f} to {high:.3f}, "
            f"n={s.n}) interchanging {'+'.join(self.variables)} at {where} positions "
            f"{list(self.positions)} ({what}); without the interchange {none:.3f} agree"
        )

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        if self.n >= 2:
            d["summary"] = self.summary().to_dict()
        return d


@dataclass(frozen=True)
class DASResult(Result):
    """A distributed alignment search: the learned ``subspace`` and, on held-out pairs, the
    per-pair outcomes (1 = the network gave the counterfactual answer) of each condition in
    ``conditions`` (columns of ``outcomes``; ``random`` is the mean over ``n_random`` random
    rotations), the training curves, and the control task's labels."""

    technique = "das"

    task: str
    variables: list[str]
    site: Site
    positions: tuple[int, ...]
    method: str
    k: int
    subspace: Subspace
    conditions: list[str]
    outcomes: np.ndarray  # [test pair, condition]
    base_prompts: list[str]  # held-out
    source_prompts: list[str]
    labels: np.ndarray  # [test pair] counterfactual slot
    control_labels: np.ndarray  # [test pair] the control task's (shuffled) labels
    n_candidates: int
    n_train: int
    n_random: int
    train_loss: np.ndarray  # [step]
    train_accuracy: np.ndarray  # [step] batch IIA during training
    control_loss: np.ndarray  # [step] (empty without the control)
    control_accuracy: np.ndarray
    boundary: np.ndarray  # [step] interchanged dimensions (boundless; k for das)
    provenance: Provenance

    @property
    def n(self) -> int:
        return len(self.labels)

    @property
    def chance(self) -> float:
        return 1.0 / self.n_candidates

    def outcome(self, condition: str) -> np.ndarray:
        """Returns ``[test pair]`` outcomes of one condition."""
        if condition not in self.conditions:
            raise KeyError(f"no condition {condition!r}; this result has {self.conditions}")
        return self.outcomes[:, self.conditions.index(condition)]

    def iia(self, condition: str = "learned") -> float:
        return float(self.outcome(condition).mean())

    def summary(self, *, seed: int = 0) -> Summary:
        """Returns held-out IIA per condition (cells in ``conditions`` order) with 95% bootstrap
        CIs and n, each tested against chance (1 / number of candidates), Holm across them."""
        return summarize(self.outcomes, null=self.chance, seed=seed)

    def difference(self, baseline: str = "random", *, seed: int = 0) -> Summary:
        """Returns learned − ``baseline`` IIA, paired over held-out pairs, with CI and test."""
        return summarize(self.outcome("learned"), baseline=self.outcome(baseline), seed=seed)

    def rows(self, *, seed: int = 0) -> list[IIARow]:
        """Returns one row per condition: IIA, 95% CI ends and n."""
        s = self.summary(seed=seed)
        low, high = _rate_intervals(self.outcomes, s)
        return [
            IIARow(
                condition=c,
                label=CONDITION_LABELS.get(c, c),
                iia=float(s.mean[i]),
                low=float(low[i]),
                high=float(high[i]),
                n=s.n,
            )
            for i, c in enumerate(self.conditions)
        ]

    def describe(self) -> str:
        """Returns one sentence per condition: held-out IIA with CI and n."""
        parts = [
            f"{r.label} {r.iia:.3f} ({r.low:.3f}-{r.high:.3f})" for r in self.rows() if self.n >= 2
        ]
        return (
            f"{self.method} k={self.k} at {self.site} positions {list(self.positions)} for "
            f"{'+'.join(self.variables)}: held-out IIA (n={self.n}, 95% CI) " + "; ".join(parts)
        )

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        if self.n >= 2:
            d["summary"] = self.summary().to_dict()
            d["table"] = encode(self.rows())
        return d


def _rate_intervals(outcomes: np.ndarray, s: Summary) -> tuple[np.ndarray, np.ndarray]:
    """Returns per column of ``outcomes`` ``[pair, condition]`` the Wilson interval where the
    outcomes are 0/1 (a bootstrap of 0/1 collapses at 0 and 1) and else ``s``'s bootstrap
    interval (the random-rotation condition averages several rotations per pair)."""
    low = np.atleast_1d(np.asarray(s.ci_low, dtype=np.float64)).copy()
    high = np.atleast_1d(np.asarray(s.ci_high, dtype=np.float64)).copy()
    for j in range(outcomes.shape[1]):
        column = outcomes[:, j]
        if np.isin(column, (0.0, 1.0)).all():
            r = proportion_ci(int(column.sum()), len(column))
            low[j], high[j] = float(r.low), float(r.high)
    return low, high


__all__ = [
    "CONDITIONS",
    "CONDITION_LABELS",
    "AbstractionError",
    "Condition",
    "DASConfig",
    "DASMethod",
    "DASResult",
    "IIARow",
    "InterchangeConfig",
    "InterchangeResult",
    "Subspace",
    "principal_cosines",
]
