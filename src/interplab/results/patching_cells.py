"""The vocabulary of patching results: grid axes, typed cells, the family's errors.

Axis names, used unchanged in arrays, JSON and figures:

    example   one contrast pair
    layer     the block the patched component belongs to
    head      a query head (``attn.z`` only)
    pos       the patched token position (``per="position"``; absent with ``per="all"``)

A cell is named by what it is, never by a display string: a `Site` (layer, component, head) and,
per position, the position and its clean token (`Cell`; with its evidence, `TopCell`; one prompt's
effect at it, `Example`). `normalised_recovery` turns effects into the fraction of the clean-corrupt
gap a patch restores. Torch-free, like every result schema.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np

from interplab.errors import UserError
from interplab.sites import Site

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


__all__ = [
    "GRID_COMPONENTS",
    "RECOVERY_MIN_GAP",
    "Cell",
    "Direction",
    "Example",
    "GridComponent",
    "MetricError",
    "PatchingError",
    "Per",
    "Source",
    "TopCell",
    "grid_axes",
    "normalised_recovery",
]
