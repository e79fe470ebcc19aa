"""Patching results compared, as plain data: estimate against exact, ablation methods side by side.

1. `Comparison`: attribution patching's estimates against activation patching's exact effects
   per cell, with Pearson and Spearman correlations and percentile-bootstrap CIs over examples,
   the worst misses, and a per-cell summary of the estimate's error.
2. `AblationComparison`: the same noising sweep under each ablation method (zero, mean,
   resample) with their rank agreement.

(The task-against-control comparison is `interplab.results.patching.ControlComparison`.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from interplab.results.base import Result, encode
from interplab.results.patching import PatchingResult
from interplab.results.patching_cells import Cell, PatchingError
from interplab.stats import Summary, summarize


@dataclass(frozen=True)
class Miss:
    """A cell where the attribution estimate and the exact effect differ."""

    cell: Cell
    estimate: float
    exact: float


@dataclass(frozen=True)
class Comparison(Result):
    """How well attribution patching's estimates track activation patching's exact effects."""

    technique = "attribution_comparison"

    component: str
    cells: list[Cell]  # flattened grid order
    attribution: np.ndarray  # [cell] mean estimate over examples
    activation: np.ndarray  # [cell] mean exact effect over examples
    errors: np.ndarray  # [example, cell] estimate minus exact effect
    pearson: float
    pearson_ci: tuple[float, float]
    spearman: float
    spearman_ci: tuple[float, float]
    n_examples: int
    n_resamples: int
    confidence: float

    @property
    def n_cells(self) -> int:
        return len(self.cells)

    @property
    def labels(self) -> list[str]:
        return [c.label for c in self.cells]

    def summary(self, **options: Any) -> Summary:
        """Returns per cell the estimate's mean error (estimate minus exact) with its CI over
        examples and a sign-flip test against 0, Holm-corrected over cells."""
        return summarize(self.errors, null=0.0, **options)

    def worst(self, k: int = 10) -> list[Miss]:
        """Returns the ``k`` cells where the estimate misses most."""
        order = np.argsort(-np.abs(self.attribution - self.activation), kind="stable")[:k]
        return [
            Miss(self.cells[i], float(self.attribution[i]), float(self.activation[i]))
            for i in order
        ]

    def describe(self) -> str:
        lvl = f"{self.confidence:.0%}"
        return (
            f"{self.component}: over {self.n_cells} cells, Pearson r = {self.pearson:.3f} ({lvl} CI "
            f"{self.pearson_ci[0]:.3f} to {self.pearson_ci[1]:.3f}), Spearman rho = "
            f"{self.spearman:.3f} ({lvl} CI {self.spearman_ci[0]:.3f} to {self.spearman_ci[1]:.3f}); "
            f"percentile bootstrap over {self.n_examples} examples"
        )

    def to_dict(self) -> dict[str, Any]:
        """Returns the fields plus the worst misses (derived; ignored when read back)."""
        return super().to_dict() | {"worst": encode(self.worst())}


@dataclass(frozen=True)
class AblationComparison(Result):
    """The same noising sweep under each ablation method, and how far they agree."""

    technique = "ablation_comparison"

    results: dict[str, PatchingResult]  # method -> its sweep
    components: tuple[str, ...]
    agreement: dict[str, dict[str, float]]  # "zero~mean" -> component -> Spearman ρ

    def result(self, method: str | None = None) -> PatchingResult:
        """Returns the sweep of one ablation method (None: the first)."""
        if method is None:
            return next(iter(self.results.values()))
        if method not in self.results:
            raise PatchingError(
                f"no {method!r} sweep; this comparison ran {', '.join(self.results)}"
            )
        return self.results[method]

    def summary(self, method: str | None = None, component: str | None = None) -> Summary:
        """Returns one method's summary of one component (default: the first of each)."""
        return self.result(method).summary(component)

    def summaries(self, component: str | None = None) -> dict[str, Summary]:
        """Returns every method's summary of ``component``."""
        return {m: r.summary(component) for m, r in self.results.items()}

    def describe(self) -> str:
        """Returns each method's strongest cell and the methods' rank agreement."""
        lines = []
        for method, r in self.results.items():
            for c in self.components:
                top = r.top_cells(c, 1)[0]
                lines.append(
                    f"{method:>8} ablation, {c}: strongest cell {top.label} "
                    f"{top.mean:+.3f} [{top.ci_low:+.3f}, {top.ci_high:+.3f}]"
                )
        for pair, by_comp in self.agreement.items():
            for c, rho in by_comp.items():
                lines.append(f"Spearman ρ of mean effects, {pair}, {c}: {rho:+.3f}")
        return "\n".join(lines)


__all__ = ["AblationComparison", "Comparison", "Miss"]
