"""Two patching grids side by side, as plain data: task against control, estimate against exact,
one ablation method against another.

1. `ControlComparison` (`compare_control`): one component's cells on the task and on unrelated
   control prompts, each effect divided by its own set's gap (|mean(clean − corrupt)|, or |mean
   clean metric| for ablations). Per cell, a two-sample permutation test asks whether the task
   effect exceeds the control effect (in the direction of the task's mean; Holm over cells). A
   significant task cell is *task-specific* when it does; it is *general* when its control
   effect survives correction as well and the task effect does not exceed it.
2. `Comparison`: attribution patching's estimates against activation patching's exact effects
   per cell, with Pearson and Spearman correlations and percentile-bootstrap CIs over examples.
3. `AblationComparison`: the same noising sweep under each ablation method (zero, mean,
   resample) with their rank agreement.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from interplab.results.base import Result, encode
from interplab.results.patching import Cell, GridResult, PatchingError, PatchingResult
from interplab.stats import Summary, summarize


def gap(result: GridResult) -> float:
    """Returns the size of a sweep's effect scale: |mean(clean - corrupt)|, or |mean clean
    metric| for ablations (1.0 when that is zero)."""
    if getattr(result, "source", "contrast") != "contrast":
        return abs(float(result.clean.mean())) or 1.0
    return abs(float(result.clean.mean() - result.corrupt.mean())) or 1.0


@dataclass(frozen=True)
class ControlComparison:
    """One component's cells on the task and on the control prompts, in units of each set's gap."""

    component: str
    cells: list[Cell]  # flattened grid order
    task_fraction: np.ndarray  # mean effect / task gap, per cell
    control_fraction: np.ndarray
    task_significant: np.ndarray
    control_significant: np.ndarray
    p_specific: np.ndarray  # Holm-adjusted p that the task effect exceeds the control's
    specific: np.ndarray  # task effect exceeds control effect (survives correction)
    general: np.ndarray  # control effect survives correction, task effect does not exceed it
    n_task: int
    n_control: int

    @property
    def labels(self) -> list[str]:
        return [c.label for c in self.cells]

    def describe(self, k: int = 5) -> str:
        """Returns what the control says, in a sentence or two."""
        found = int(self.task_significant.sum())
        shared = np.flatnonzero(self.general & self.task_significant)
        head = f"control prompts (n={self.n_control}, unrelated text, the same positions changed): "
        if found:
            specific = int((self.specific & self.task_significant).sum())
            head += (
                f"of the {found} significant task cells of {self.component}, {specific} are "
                f"task-specific (larger than on the control, Holm) and {len(shared)} matter as "
                "much on the control (general)"
            )
        else:
            head += f"no task cell of {self.component} survives correction (n={self.n_task})"
        show = shared if len(shared) else np.flatnonzero(self.control_significant)
        if not len(show):
            return head + "; no control cell survives correction either."
        worst = show[np.argsort(-np.abs(self.control_fraction[show]))][:k]
        cells = ", ".join(
            f"{self.cells[i].label} ({self.task_fraction[i]:+.2f} task, "
            f"{self.control_fraction[i]:+.2f} control)"
            for i in worst
        )
        lead = ": " if len(shared) else "; the strongest significant control cells: "
        return f"{head}{lead}{cells}."

    def to_dict(self) -> dict[str, Any]:
        return encode(self)


def compare_control(
    task: GridResult, control: GridResult, component: str, *, seed: int = 0
) -> ControlComparison:
    """Returns the task and control sweeps of ``component`` side by side (see the module
    docstring, step 1)."""
    from interplab.stats.multiple import correct_pvalues
    from interplab.stats.permutation import two_sample_permutation_test

    ts, cs = task.summary(component), control.summary(component)
    a = task.effect(component).reshape(task.n, -1) / gap(task)
    b = control.effect(component).reshape(control.n, -1) / gap(control)
    tf, cf = a.mean(0), b.mean(0)
    sign = np.where(tf < 0, -1.0, 1.0)
    test = two_sample_permutation_test(a * sign, b * sign, alternative="greater", seed=seed)
    p = np.where(np.isnan(test.p_value), 1.0, test.p_value)
    corrected = correct_pvalues(p, method="holm")
    t_sig = np.asarray(ts.significant).ravel()
    c_sig = np.asarray(cs.significant).ravel()
    specific = corrected.reject
    return ControlComparison(
        component,
        task.cells(component),
        tf,
        cf,
        t_sig,
        c_sig,
        corrected.p_adjusted,
        specific,
        c_sig & ~specific,
        task.n,
        control.n,
    )


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


__all__ = [
    "AblationComparison",
    "Comparison",
    "ControlComparison",
    "Miss",
    "compare_control",
    "gap",
]
