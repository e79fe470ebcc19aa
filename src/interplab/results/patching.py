"""Patching results as plain data: per-example effects of every cell, with typed cells.

Axis names, used unchanged in arrays, JSON and figures:

    example   one contrast pair
    layer     the block the patched component belongs to
    head      a query head (``attn.z`` only)
    pos       the patched token position (``per="position"``; absent with ``per="all"``)

A grid for one component is ``[example, layer, pos]``, ``[example, layer]``,
``[example, layer, head, pos]`` or ``[example, layer, head]``. Every value is an *effect*: the
metric of the patched run minus the metric of the unpatched run (exact for activation and path
patching, the first-order estimate for attribution patching).

A cell is named by what it is, never by a display string: a `Site` (layer, component, head) and,
per position, the position and its clean token (`Cell`, `TopCell`, `Example`). Comparisons of
two grids (`ControlComparison`, `Comparison`, `AblationComparison`) live in
`interplab.results.patching_compare`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np

from interplab.errors import UserError
from interplab.provenance import Provenance
from interplab.results._naming import name_top_cell
from interplab.results.base import Result, result_type
from interplab.sites import Site
from interplab.stats import Summary, summarize
from interplab.stats.summary import SummaryCorrection

Direction = Literal["denoise", "noise"]
Per = Literal["position", "all"]
Source = Literal["contrast", "zero", "mean", "resample"]
GridComponent = Literal["resid_pre", "resid_mid", "resid_post", "attn_out", "mlp_out", "attn.z"]
GRID_COMPONENTS: tuple[str, ...] = get_args(GridComponent)

RECOVERY_MIN_GAP = 1e-6
"""`normalised_recovery` refuses examples whose |clean - corrupt| is below this."""


class PatchingError(UserError):
    """Inputs or options that a patching experiment cannot run with."""


class MetricError(UserError):
    """A metric that cannot be computed on the inputs given."""


def grid_axes(component: str, per: str) -> tuple[str, ...]:
    """Returns the axis names of one component's grid, example axis first."""
    axes: tuple[str, ...] = ("example", "layer")
    if component == "attn.z":
        axes += ("head",)
    if per == "position":
        axes += ("pos",)
    return axes


def normalised_recovery(
    patched: np.ndarray,
    clean: np.ndarray,
    corrupt: np.ndarray,
    *,
    min_gap: float = RECOVERY_MIN_GAP,
) -> np.ndarray:
    """Returns ``(patched - corrupt) / (clean - corrupt)`` per example; ``patched`` is
    ``[n, *cells]``, ``clean`` and ``corrupt`` are ``[n]``. Raises on an example whose clean and
    corrupt metrics are (nearly) equal, where the ratio means nothing."""
    patched = np.asarray(patched, dtype=np.float64)
    clean = np.asarray(clean, dtype=np.float64)
    corrupt = np.asarray(corrupt, dtype=np.float64)
    if clean.shape != corrupt.shape or clean.ndim != 1 or patched.shape[:1] != clean.shape:
        raise MetricError(
            f"patched must be [n, ...] with clean and corrupt [n]; got {patched.shape}, "
            f"{clean.shape}, {corrupt.shape}"
        )
    gap = clean - corrupt
    small = np.flatnonzero(np.abs(gap) < min_gap)
    if small.size:
        i = int(small[0])
        raise MetricError(
            f"example {i}: clean ({clean[i]:.6g}) and corrupt ({corrupt[i]:.6g}) metrics differ by "
            f"less than {min_gap:g}, so recovery is undefined; drop the example or report the raw "
            "effect"
        )
    shape = (-1,) + (1,) * (patched.ndim - 1)
    return (patched - corrupt.reshape(shape)) / gap.reshape(shape)


# -- typed cells ----------------------------------------------------------------------------------


def _label(site: Site, position: int | None, token: str | None) -> str:
    return str(site) if position is None else f"{site} @ {position} {token!r}"


@dataclass(frozen=True)
class Cell:
    """One cell of a grid: the patched site (one head's for ``attn.z``) and, per position, the
    position and its clean token (None with ``per="all"``)."""

    site: Site
    position: int | None = None
    token: str | None = None

    @property
    def label(self) -> str:
        """``L12.resid_pre @ 5 ' John'`` or ``L3.attn.z.h5``: for tables and hover text."""
        return _label(self.site, self.position, self.token)

    def __str__(self) -> str:
        return self.label


@dataclass(frozen=True)
class TopCell:
    """A cell with its evidence: mean effect over examples, CI, adjusted p-value."""

    site: Site
    position: int | None
    token: str | None
    index: tuple[int, ...]  # the grid index without the example axis
    mean: float
    ci_low: float
    ci_high: float
    p_adjusted: float
    significant: bool

    @property
    def label(self) -> str:
        return _label(self.site, self.position, self.token)

    @property
    def cell(self) -> Cell:
        return Cell(self.site, self.position, self.token)


@dataclass(frozen=True)
class Example:
    """One prompt's effect at one cell, labelled with why it is shown (``kind``)."""

    kind: str  # "most affected", "random", "quantile bin b/B (effect lo to hi)"
    site: Site
    position: int | None
    token: str | None
    example: int
    effect: float
    clean: str
    corrupt: str | None
    answer: str
    wrong_answer: str

    @property
    def label(self) -> str:
        return _label(self.site, self.position, self.token)


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
        (`interplab.results.patching_compare.ControlComparison`)."""
        from interplab.results.patching_compare import compare_control

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


__all__ = [
    "GRID_COMPONENTS",
    "RECOVERY_MIN_GAP",
    "AttributionResult",
    "Cell",
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
    "grid_axes",
    "normalised_recovery",
]
