"""Patching results as plain data: per-example effects of every cell, with typed cells.

A grid for one component is ``[example, layer, pos]``, ``[example, layer]``,
``[example, layer, head, pos]`` or ``[example, layer, head]`` (axes, cells and errors:
`interplab.results.patching_cells`). Every value is an *effect*: the metric of the patched run
minus the metric of the unpatched run (exact for activation and path patching, the first-order
estimate for attribution patching).

`ControlComparison` (`GridResult.control_comparison`) puts a sweep beside the same sweep on
unrelated control prompts:

1. Each effect is divided by its own set's gap (|mean(clean − corrupt)|, or |mean clean metric|
   for ablations), so the two sets read in one unit.
2. Per cell, a two-sample permutation test asks whether the task effect exceeds the control
   effect (in the direction of the task's mean; Holm over cells).
3. A significant task cell is *task-specific* when it does; it is *general* when its control
   effect survives correction as well and the task effect does not exceed it: a component that
   matters on every input (the final position in the last layers always does), not a finding
   about the task.

Comparisons across techniques and ablation methods live in `interplab.results.patching_compare`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from interplab.provenance import Provenance
from interplab.results._naming import name_top_cell
from interplab.results.base import Result, encode, result_type
from interplab.results.patching_cells import (
    GRID_COMPONENTS,
    RECOVERY_MIN_GAP,
    Cell,
    Direction,
    Example,
    GridComponent,
    MetricError,
    PatchingError,
    Per,
    Source,
    TopCell,
    grid_axes,
    normalised_recovery,
)
from interplab.sites import Site
from interplab.stats import Summary, summarize
from interplab.stats.summary import SummaryCorrection

# -- grid results ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class GridResult(Result):
    """Per-example effects of every cell of one or more component grids, with their baselines."""

    components: tuple[str, ...]
    direction: Direction
    per: Per
    metric: str
    effects: dict[str, np.ndarray]  # component -> [example, layer, (head), (pos)]
    clean: np.ndarray  # [n] the clean run's metric
    corrupt: np.ndarray  # [n] the corrupt run's metric
    tokens: list[list[str]]  # clean tokens per example
    clean_prompts: list[str] | None
    corrupt_prompts: list[str] | None
    answers: list[str]
    wrong_answers: list[str]
    provenance: Provenance
    control: GridResult | None = None
    """The same sweep on unrelated control prompts (`interplab.techniques.patching.controls`)."""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Any:
        """Returns the result a ``to_dict`` wrote; read as a `GridResult` (a control), it is the
        class its ``technique`` names."""
        if cls is GridResult and isinstance(data, dict) and data.get("technique"):
            return result_type(str(data["technique"])).from_dict(data)
        return super().from_dict(data)

    @property
    def n(self) -> int:
        return len(self.clean)

    @property
    def base(self) -> np.ndarray:
        """The unpatched run's metric: corrupt when denoising, clean when noising."""
        return self.corrupt if self.direction == "denoise" else self.clean

    def component(self, component: str | None = None) -> str:
        """Returns ``component`` checked against this result (None: the first one)."""
        if component is None:
            return self.components[0]
        if component not in self.effects:
            raise PatchingError(
                f"no grid for {component!r}; this result has {', '.join(self.components)}"
            )
        return component

    def axes(self, component: str | None = None) -> tuple[str, ...]:
        return grid_axes(self.component(component), self.per)

    def effect(self, component: str | None = None) -> np.ndarray:
        """Returns the per-example effects ``[n, layer, (head), (pos)]`` of one component."""
        return self.effects[self.component(component)]

    def summary(
        self,
        component: str | None = None,
        *,
        correction: SummaryCorrection = "holm",
        alpha: float = 0.05,
        seed: int = 0,
        n_resamples: int = 10_000,
    ) -> Summary:
        """Returns per cell the mean effect with its CI over examples, a sign-flip test against 0,
        and Holm (or Benjamini-Hochberg with ``correction="bh"``) correction over all cells."""
        return summarize(
            self.effect(component),
            null=0.0,
            correction=correction,
            alpha=alpha,
            seed=seed,
            n_resamples=n_resamples,
        )

    def summaries(self, **options: Any) -> dict[str, Summary]:
        """Returns the summary of every component."""
        return {c: self.summary(c, **options) for c in self.components}

    def describe(self, component: str | None = None, *, summary: Summary | None = None) -> str:
        """Returns the summary's sentences with its largest cell named by site (and token)."""
        comp = self.component(component)
        s = summary if summary is not None else self.summary(comp)
        return name_top_cell(s, lambda index: self.cell(comp, index).label)

    def cell(self, component: str | None, index: tuple[int, ...]) -> Cell:
        """Returns the cell at grid ``index`` (without the example axis) of ``component``."""
        comp = self.component(component)
        axes = self.axes(comp)[1:]
        if len(index) != len(axes):
            raise PatchingError(f"a cell of {comp} has axes {axes}, got {index}")
        named = dict(zip(axes, index, strict=True))
        site = Site(named["layer"], comp, named.get("head"))  # type: ignore[arg-type]
        if "pos" not in named:
            return Cell(site)
        p = named["pos"]
        return Cell(site, p, self.tokens[0][p] if p < len(self.tokens[0]) else "")

    def cells(self, component: str | None = None) -> list[Cell]:
        """Returns every cell of ``component`` in flattened grid order."""
        shape = self.effect(component).shape[1:]
        return [self.cell(component, tuple(int(i) for i in idx)) for idx in np.ndindex(*shape)]

    def top_cells(
        self, component: str | None = None, k: int = 10, *, summary: Summary | None = None
    ) -> list[TopCell]:
        """Returns the ``k`` cells with the largest |mean effect|, with CI and adjusted p-value."""
        comp = self.component(component)
        s = summary if summary is not None else self.summary(comp)
        magnitude = np.where(np.isnan(s.mean), -np.inf, np.abs(s.mean)).ravel()
        out = []
        for flat in np.argsort(-magnitude, kind="stable")[:k]:
            idx = tuple(int(i) for i in np.unravel_index(int(flat), s.cell_shape))
            c = self.cell(comp, idx)
            out.append(
                TopCell(
                    c.site,
                    c.position,
                    c.token,
                    idx,
                    float(s.mean[idx]),
                    float(s.ci_low[idx]),
                    float(s.ci_high[idx]),
                    float(s.p_adjusted[idx]),
                    bool(s.significant[idx]),
                )
            )
        return out

    def examples(
        self,
        component: str | None = None,
        cell: tuple[int, ...] | None = None,
        *,
        k: int = 3,
        n_random: int = 3,
        n_bins: int = 3,
        seed: int = 0,
    ) -> list[Example]:
        """Returns the prompts most affected by one cell (default: the cell with the largest
        |mean effect|) beside random prompts and one prompt from each quantile bin of that cell's
        effects, each labelled with its kind, so the extremes are read against typical cases."""
        comp = self.component(component)
        e = self.effect(comp)
        if cell is None:
            mean = np.where(np.isnan(e).all(0), -np.inf, np.abs(np.nanmean(e, 0)))
            cell = tuple(int(i) for i in np.unravel_index(int(np.argmax(mean)), mean.shape))
        where = self.cell(comp, cell)
        values = e[(slice(None), *cell)]
        rng = np.random.default_rng(seed)

        def row(kind: str, i: int) -> Example:
            return Example(
                kind,
                where.site,
                where.position,
                where.token,
                int(i),
                float(values[i]),
                self.clean_prompts[i] if self.clean_prompts else " ".join(self.tokens[i]),
                self.corrupt_prompts[i] if self.corrupt_prompts else None,
                self.answers[i],
                self.wrong_answers[i],
            )

        order = np.argsort(-np.abs(values), kind="stable")
        out = [row("most affected", i) for i in order[:k]]
        out += [row("random", i) for i in rng.choice(self.n, min(n_random, self.n), replace=False)]
        ranked = np.argsort(values, kind="stable")
        for b, chunk in enumerate(np.array_split(ranked, min(n_bins, self.n))):
            lo, hi = float(values[chunk[0]]), float(values[chunk[-1]])
            kind = f"quantile bin {b + 1}/{min(n_bins, self.n)} (effect {lo:+.3f} to {hi:+.3f})"
            out.append(row(kind, int(rng.choice(chunk))))
        return out

    def control_comparison(self, component: str | None = None) -> Any:
        """Returns this sweep's cells beside the control sweep's, in units of each set's gap,
        marking which task cells are task-specific and which matter on unrelated prompts too
        (`ControlComparison`)."""
        if self.control is None:
            raise PatchingError("this sweep ran without a control; pass control=True")
        return compare_control(self, self.control, self.component(component))

    def to_dict(self) -> dict[str, Any]:
        """Returns the fields, plus each grid's axes and, with 2+ examples, the summaries and the
        control comparison (derived; ignored when read back)."""
        d = super().to_dict()
        d["axes"] = {c: list(self.axes(c)) for c in self.components}
        if self.n >= 2:
            d["summary"] = {c: self.summary(c).to_dict() for c in self.components}
            if self.control is not None and self.control.n >= 2:
                d["control_comparison"] = {
                    c: self.control_comparison(c).to_dict() for c in self.components
                }
        return d


@dataclass(frozen=True)
class PatchingResult(GridResult):
    """Per-example effect of patching every cell (activation patching), with the clean and corrupt
    baselines; ``method`` is the implementation that ran and ``note`` says why when it was not
    the one asked for."""

    technique = "activation_patching"

    source: Source = "contrast"
    method: Literal["fast", "hooks", "loop"] = "hooks"
    note: str = ""

    def patched(self, component: str | None = None) -> np.ndarray:
        """Returns the patched runs' metric per example and cell (base + effect)."""
        e = self.effect(component)
        return e + self.base.reshape((-1,) + (1,) * (e.ndim - 1))

    def recovery(self, component: str | None = None) -> np.ndarray:
        """Returns ``(patched - corrupt) / (clean - corrupt)`` per example and cell."""
        if self.source != "contrast":
            raise PatchingError(f"{self.source} ablation has no corrupt run to normalise against")
        return normalised_recovery(self.patched(component), self.clean, self.corrupt)


@dataclass(frozen=True)
class AttributionResult(GridResult):
    """Per-example first-order estimates of every cell's patching effect (attribution patching)."""

    technique = "attribution_patching"


@dataclass(frozen=True)
class PathPatchingResult(GridResult):
    """Per-example effect of every sender on the receivers: ``effects["attn.z"]`` is
    ``[example, layer, head]``, ``effects["mlp_out"]`` is ``[example, layer]``; NaN: no path (or
    not a sender)."""

    technique = "path_patching"

    receivers: tuple[Site, ...] = (Site(None, "logits"),)
    freeze_mlps: bool = False
    method: Literal["fast", "hooks"] = "fast"
    note: str = ""

    @property
    def title(self) -> str:
        frozen = "heads and MLPs frozen" if self.freeze_mlps else "heads frozen"
        names = ", ".join(str(s) for s in self.receivers)
        return f"path patching → {names} ({frozen}, {self.metric}, n={self.n})"


# -- task against control ---------------------------------------------------------------------


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


__all__ = [
    "GRID_COMPONENTS",
    "RECOVERY_MIN_GAP",
    "AttributionResult",
    "Cell",
    "ControlComparison",
    "Direction",
    "Example",
    "GridComponent",
    "GridResult",
    "MetricError",
    "PatchingError",
    "PatchingResult",
    "PathPatchingResult",
    "Per",
    "Source",
    "TopCell",
    "compare_control",
    "gap",
    "grid_axes",
    "normalised_recovery",
]
