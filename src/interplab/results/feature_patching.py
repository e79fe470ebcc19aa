"""Feature patching results: the per-example effect of patching each dictionary feature, per
position, with the first-order estimate beside it.

A grid is ``[example, feature, pos]`` (``per="position"``) or ``[example, feature]``
(``per="all"``). ``features[j]`` is the `FeatureSite` of row j. ``effects`` are exact (the patched
run's metric minus the unpatched run's) when ``method == "exact"``, first-order estimates when
``method == "attribution"``; ``attribution`` always holds the estimates, so a user reads how well
they ranked the exact effects. ``clean_values`` and ``corrupt_values`` are the features'
activations on each prompt (what patching swaps).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from interplab.provenance import Provenance
from interplab.results._naming import name_top_cell
from interplab.results.base import Result
from interplab.results.patching_cells import Direction, PatchingError, Per
from interplab.sites import FeatureSite
from interplab.stats import Summary, summarize
from interplab.stats.summary import SummaryCorrection


@dataclass(frozen=True)
class FeatureCell:
    """One cell: a feature and, per position, the position and its clean token."""

    feature: FeatureSite
    position: int | None = None
    token: str | None = None

    @property
    def label(self) -> str:
        """``L15.resid_pre.sae[res].f12 @ 5 ' John'`` or the feature alone (``per="all"``)."""
        if self.position is None:
            return str(self.feature)
        return f"{self.feature} @ {self.position} {self.token!r}"


@dataclass(frozen=True)
class FeaturePatchingResult(Result):
    """Per-example effects of patching dictionary features (see the module docstring)."""

    technique = "feature_patching"

    features: tuple[FeatureSite, ...]
    direction: Direction
    per: Per
    metric: str
    method: Literal["exact", "attribution"]
    effects: np.ndarray  # [n, feature, (pos)]
    attribution: np.ndarray  # [n, feature, (pos)] first-order estimates
    clean_values: np.ndarray  # [n, feature, pos] feature activations on the clean prompts
    corrupt_values: np.ndarray  # [n, feature, pos]
    clean: np.ndarray  # [n] metric of the clean run
    corrupt: np.ndarray  # [n]
    tokens: list[list[str]]
    clean_prompts: list[str] | None
    corrupt_prompts: list[str] | None
    answers: list[str]
    wrong_answers: list[str]
    provenance: Provenance
    ranked: int = 0
    """How many features the first-order estimate ranked to choose these (0: the user chose)."""

    @property
    def n(self) -> int:
        return len(self.clean)

    @property
    def gap(self) -> float:
        """|mean(clean - corrupt)|: the unit effects are read in."""
        return float(abs(np.mean(self.clean - self.corrupt)))

    def summary(
        self,
        *,
        correction: SummaryCorrection = "holm",
        alpha: float = 0.05,
        seed: int = 0,
        n_resamples: int = 10_000,
    ) -> Summary:
        """Returns per cell the mean effect with its CI over examples, a sign-flip test against 0
        and Holm correction over all cells."""
        return summarize(
            self.effects,
            null=0.0,
            correction=correction,
            alpha=alpha,
            seed=seed,
            n_resamples=n_resamples,
        )

    def cell(self, index: tuple[int, ...]) -> FeatureCell:
        """Returns the cell at grid ``index`` (without the example axis)."""
        if len(index) != self.effects.ndim - 1:
            raise PatchingError(f"a cell has {self.effects.ndim - 1} indices, got {index}")
        feature = self.features[index[0]]
        if self.per == "all":
            return FeatureCell(feature)
        p = index[1]
        return FeatureCell(feature, p, self.tokens[0][p] if p < len(self.tokens[0]) else "")

    def describe(self, *, summary: Summary | None = None) -> str:
        """Returns the summary's sentences with its largest cell named by feature (and token)."""
        s = summary if summary is not None else self.summary()
        return name_top_cell(s, lambda index: self.cell(index).label)

    def top_cells(self, k: int = 10) -> list[tuple[FeatureCell, float, float, float, float]]:
        """Returns the ``k`` cells with the largest |mean effect|: (cell, mean, CI low, CI high,
        Holm-adjusted p)."""
        s = self.summary()
        magnitude = np.where(np.isnan(s.mean), -np.inf, np.abs(s.mean)).ravel()
        out = []
        for flat in np.argsort(-magnitude, kind="stable")[:k]:
            idx = tuple(int(i) for i in np.unravel_index(int(flat), s.cell_shape))
            out.append(
                (
                    self.cell(idx),
                    float(s.mean[idx]),
                    float(s.ci_low[idx]),
                    float(s.ci_high[idx]),
                    float(s.p_adjusted[idx]),
                )
            )
        return out

    def rank_agreement(self) -> float:
        """Spearman correlation of the mean exact effects with the mean estimates over cells
        (NaN for an attribution-only result)."""
        if self.method != "exact":
            return float("nan")
        a = np.nanmean(self.effects, 0).ravel()
        b = np.nanmean(self.attribution, 0).ravel()
        ok = np.isfinite(a) & np.isfinite(b)
        if ok.sum() < 3:
            return float("nan")
        ra = np.argsort(np.argsort(a[ok])).astype(float)
        rb = np.argsort(np.argsort(b[ok])).astype(float)
        return float(np.corrcoef(ra, rb)[0, 1])

    def to_dict(self) -> dict[str, Any]:
        """Returns the fields plus, with 2+ examples, the summary (derived; ignored on read)."""
        d = super().to_dict()
        if self.n >= 2:
            d["summary"] = self.summary().to_dict()
        return d


__all__ = ["FeatureCell", "FeaturePatchingResult"]
