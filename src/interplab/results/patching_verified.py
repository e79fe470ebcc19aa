"""AtP* estimates and verified activation patching, as plain data.

Two result types, torch-free like every schema:

- `AtPResult`: AtP* (Kramár et al. 2024) per example and cell: the signed estimate with the QK
  fix (``effects``), the GradDrop score used for ranking (``scores``: a magnitude, the mean of
  |estimate| over dropped layers), and plain attribution patching's estimate (``plain``) from the
  same backward, as the baseline.
- `VerifiedPatchingResult`: activation patching where only some cells ran exactly. ``status``
  marks each cell: `VERIFIED` (the top of the AtP* ranking, patched exactly), `SAMPLED` (a uniform
  random sample of the rest, patched exactly, whose estimate errors give the bound) or
  `ESTIMATED` (the AtP* estimate stands in). ``effects`` holds the exact per-example effects of
  the first two and the estimates of the third; ``bound`` is an upper bound on |mean effect| of
  every estimated cell with confidence ``confidence`` (see ``bound_method``).

Besides the patching axes (`interplab.results.patching_cells`: example, layer, head, pos), AtP*
grids use two more:

    kv_head   a key/value head (``attn.k``, ``attn.v``): under grouped-query attention one key
              head feeds several query heads, and one cell patches it for all of them
    neuron    an MLP neuron (``mlp.post``: the input of the down projection)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import numpy as np

from interplab.results.patching import GridResult, PatchingResult
from interplab.results.patching_cells import GRID_COMPONENTS, Cell, PatchingError
from interplab.sites import Site

AtPComponent = Literal[
    "resid_pre",
    "resid_mid",
    "resid_post",
    "attn_out",
    "mlp_out",
    "attn.z",
    "attn.q",
    "attn.k",
    "attn.v",
    "mlp.post",
]
ATP_COMPONENTS: tuple[str, ...] = get_args(AtPComponent)
QK_COMPONENTS: tuple[str, ...] = ("attn.q", "attn.k")
"""The cells whose estimate takes the QK fix: the softmax recomputed, linear only after it."""

ESTIMATED, SAMPLED, VERIFIED = 0, 1, 2
STATUS_NAMES = {ESTIMATED: "estimated", SAMPLED: "sampled (exact)", VERIFIED: "verified (exact)"}

assert set(GRID_COMPONENTS) <= set(ATP_COMPONENTS)


def atp_axes(component: str, per: str) -> tuple[str, ...]:
    """Returns the axis names of one AtP* grid, example axis first."""
    axes: tuple[str, ...] = ("example", "layer")
    if component in ("attn.z", "attn.q"):
        axes += ("head",)
    elif component in ("attn.k", "attn.v"):
        axes += ("kv_head",)
    elif component == "mlp.post":
        axes += ("neuron",)
    if per == "position":
        axes += ("pos",)
    return axes


@dataclass(frozen=True)
class NeuronCell(Cell):
    """A cell of an ``mlp.post`` grid: one neuron (at one position with ``per="position"``)."""

    neuron: int = 0

    @property
    def label(self) -> str:
        where = f"{self.site}.n{self.neuron}"
        return where if self.position is None else f"{where} @ {self.position} {self.token!r}"


def _cell(result: GridResult, component: str, index: tuple[int, ...]) -> Cell:
    axes = atp_axes(component, result.per)[1:]
    if len(index) != len(axes):
        raise PatchingError(f"a cell of {component} has axes {axes}, got {index}")
    named = dict(zip(axes, index, strict=True))
    layer = named["layer"]
    p = named.get("pos")
    token = None if p is None else (result.tokens[0][p] if p < len(result.tokens[0]) else "")
    if component == "mlp.post":
        return NeuronCell(Site(layer, "mlp.post"), p, token, named["neuron"])
    head = named.get("head")
    if "kv_head" in named:
        # A key/value head is named by the first query head that reads it (`Site` convention).
        head = named["kv_head"] * int(result.group_size)  # type: ignore[attr-defined]
    return Cell(Site(layer, component, head), p, token)  # type: ignore[arg-type]


@dataclass(frozen=True)
class AtPResult(GridResult):
    """AtP* estimates per example and cell (see the module docstring for the three arrays)."""

    technique = "atp_star"

    scores: dict[str, np.ndarray] = field(default_factory=dict)
    plain: dict[str, np.ndarray] = field(default_factory=dict)
    qk_fix: bool = True
    graddrop: bool = True
    group_size: int = 1  # query heads per key/value head

    def axes(self, component: str | None = None) -> tuple[str, ...]:
        return atp_axes(self.component(component), self.per)

    def cell(self, component: str | None, index: tuple[int, ...]) -> Cell:
        return _cell(self, self.component(component), index)

    def score(self, component: str | None = None) -> np.ndarray:
        """Returns the per-example ranking scores (GradDrop magnitudes) of one component."""
        return self.scores[self.component(component)]

    def to_dict(self) -> dict[str, Any]:
        """Returns the fields; neuron grids (tens of thousands of cells) skip the derived
        summaries, which the others carry as in every grid result."""
        if "mlp.post" not in self.components:
            return super().to_dict()
        from interplab.results.base import Result

        d = Result.to_dict(self)
        d["axes"] = {c: list(self.axes(c)) for c in self.components}
        return d


@dataclass(frozen=True)
class VerifiedPatchingResult(PatchingResult):
    """Activation patching with only the cells that matter patched exactly (``status``), the
    others estimated by AtP*, and a bound on the largest effect an estimated cell could have."""

    technique = "activation_patching_verified"

    status: dict[str, np.ndarray] = field(default_factory=dict)  # [layer, (head), (pos)] int8
    estimates: dict[str, np.ndarray] = field(default_factory=dict)  # AtP* of every cell [n, ...]
    scores: dict[str, np.ndarray] = field(default_factory=dict)  # ranking score per cell
    bound: float = float("nan")
    confidence: float = 0.95
    bound_method: str = ""
    threshold: float = 0.05  # of the clean-corrupt gap
    screen: float = 0.1  # of the tolerance: AtP* scores above it ran exactly
    group_screen: float | None = None  # of the tolerance; None: no group screen ran
    grouped_screen: float = 0.3  # the per-cell screen of grids with a group screen
    group_examples: list[int] = field(default_factory=list)  # the examples the groups ran on
    group_effects: dict[str, np.ndarray] = field(default_factory=dict)  # [examples, layer, (pos)]
    group_discrepancy: dict[str, np.ndarray] = field(default_factory=dict)  # [layer, (pos)]
    tolerance: float = float("nan")  # threshold x gap: what may stay unverified
    sample: float = 0.05
    n_cells: int = 0
    n_verified: int = 0
    n_sampled: int = 0
    graddrop: bool = False

    @property
    def n_exact(self) -> int:
        """How many cells were patched exactly (verified and sampled)."""
        return self.n_verified + self.n_sampled

    def exact(self, component: str | None = None) -> np.ndarray:
        """Returns a boolean mask ``[layer, (head), (pos)]``: which cells ran exactly."""
        return self.status[self.component(component)] != ESTIMATED

    def describe_bound(self) -> str:
        """Returns the verification in a sentence: how many cells ran exactly and the bound."""
        exact = f"{self.n_exact} of {self.n_cells} cells patched exactly"
        if self.group_screen is None:
            screened = (
                f"with an AtP* score above {self.screen:g} x the tolerance {self.tolerance:.4g}"
            )
        else:
            failed = sum(
                int((d > self.group_screen * self.tolerance).sum())
                for d in self.group_discrepancy.values()
            )
            screened = (
                f"with an AtP* score above {self.screen:g} x the tolerance {self.tolerance:.4g} "
                f"({self.grouped_screen:g} x for heads) or in one of {failed} head groups whose "
                f"exact effect AtP* missed by more than {self.group_screen:g} x"
            )
        parts = f"({self.n_verified} {screened}, {self.n_sampled} random)"
        if self.n_exact == self.n_cells:
            return f"{exact} {parts}: nothing is estimated."
        return (
            f"{exact} {parts}; with {self.confidence:.0%} confidence no estimated cell has "
            f"|mean effect| above {self.bound:.4g} ({self.bound_method})."
        )


__all__ = [
    "ATP_COMPONENTS",
    "ESTIMATED",
    "QK_COMPONENTS",
    "SAMPLED",
    "STATUS_NAMES",
    "VERIFIED",
    "AtPComponent",
    "AtPResult",
    "NeuronCell",
    "VerifiedPatchingResult",
    "atp_axes",
]
