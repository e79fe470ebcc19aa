"""Interventions are values: frozen descriptions of an edit to one site.

Each names a site and, optionally, the positions and heads it is restricted to; `interplab.core.
hooks` applies them inside one context manager that always removes its hooks. Positions are
absolute token indices (negative ones count from the end of the sequence so far, so ``-1`` is the
newest token, also at every step of generation).

- `Patch`   set the site to a given value (e.g. the same site from another run's cache)
- `Add`     add a vector (steering), times ``coefficient``
- `Scale`   multiply by a factor
- `Ablate`  replace by zero, by the mean over a reference batch, or by a random reference example
            (resampling ablation, Chan et al. 2022)
- `Apply`   any function of the selected activations that returns the same shape

Value shapes for `Patch` and `Add`: either the site's full shape in this run (then the same
positions and heads are taken from it), or exactly the selected region's shape, or anything that
broadcasts to the selected region (a ``[d_model]`` vector, a ``[batch, 1, d_model]`` tensor...).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import torch
from torch import Tensor

from interplab.errors import UserError
from interplab.sites import PER_HEAD, Site, SiteError, SiteLike

Positions = int | Sequence[int] | slice | None
Heads = int | Sequence[int] | None
if TYPE_CHECKING:
    AblateMethod = Literal["zero", "mean", "resample"]
else:  # at run time Ablate checks the method itself, with an error that lists the valid ones
    AblateMethod = str


class InterventionError(UserError):
    """An intervention that cannot apply to the run it was given."""


def _positions(p: Positions) -> tuple[int, ...] | slice | None:
    if p is None or isinstance(p, slice):
        return p
    if isinstance(p, int):
        return (p,)
    if isinstance(p, Tensor):
        return tuple(int(x) for x in p.flatten().tolist())
    out = tuple(int(x) for x in p)
    if not out:
        raise InterventionError("positions is empty; pass None for every position")
    return out


def _heads(site: Site, heads: Heads) -> tuple[int, ...] | None:
    if heads is None:
        return (site.head,) if site.head is not None else None
    if site.component not in PER_HEAD:
        raise InterventionError(
            f"heads= was given for {site}, which has no heads; per-head sites: "
            f"{', '.join(sorted(PER_HEAD))}"
        )
    if site.head is not None:
        raise InterventionError(f"{site} already names head {site.head}; do not also pass heads=")
    out = (heads,) if isinstance(heads, int) else tuple(int(h) for h in heads)
    if not out:
        raise InterventionError("heads is empty; pass None for every head")
    return out


@dataclass(frozen=True, eq=False)
class _Edit:
    site: Site
    positions: tuple[int, ...] | slice | None
    heads: tuple[int, ...] | None

    def edit(self, selected: Tensor, full: Tensor | None) -> Tensor:
        """Returns the new values of the selected region (``full`` is the value source, if any)."""
        raise InterventionError(f"{type(self).__name__} is not an applicable intervention")

    @property
    def name(self) -> str:
        return type(self).__name__


def _check_finite(value: Tensor, what: str) -> None:
    """Raises InterventionError if a tensor holds NaN or inf (it would poison every later layer)."""
    if value.device.type != "meta" and (value.is_floating_point() or value.is_complex()):
        bad = ~torch.isfinite(value)
        if bool(bad.any()):
            raise InterventionError(
                f"{what} holds {int(bad.sum())} non-finite values (NaN or inf); an intervention "
                "needs finite numbers"
            )


def _check_number(value: float, what: str) -> None:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise InterventionError(f"{what} must be a number, got {value!r}") from None
    if not math.isfinite(x):
        raise InterventionError(f"{what} must be a finite number, got {value!r}")


def _init(obj: object, site: SiteLike, positions: Positions, heads: Heads) -> None:
    s = Site.parse(site)
    object.__setattr__(obj, "site", s)
    object.__setattr__(obj, "positions", _positions(positions))
    object.__setattr__(obj, "heads", _heads(s, heads))


class Patch(_Edit):
    """Sets ``site`` (at ``positions``/``heads``) to ``value``."""

    value: Tensor

    def __init__(
        self, site: SiteLike, value: Tensor, *, positions: Positions = None, heads: Heads = None
    ) -> None:
        _init(self, site, positions, heads)
        if not isinstance(value, Tensor):
            raise InterventionError(
                f"Patch value for {self.site} must be a torch.Tensor, not {type(value).__name__}"
            )
        _check_finite(value, f"Patch value for {self.site}")
        object.__setattr__(self, "value", value)

    def edit(self, selected: Tensor, full: Tensor | None) -> Tensor:
        assert full is not None
        return full.expand_as(selected)


class Add(_Edit):
    """Adds ``coefficient * value`` to ``site`` (steering)."""

    value: Tensor
    coefficient: float

    def __init__(
        self,
        site: SiteLike,
        value: Tensor,
        *,
        coefficient: float = 1.0,
        positions: Positions = None,
        heads: Heads = None,
    ) -> None:
        _init(self, site, positions, heads)
        if not isinstance(value, Tensor):
            raise InterventionError(
                f"Add value for {self.site} must be a torch.Tensor, not {type(value).__name__}"
            )
        _check_finite(value, f"Add value for {self.site}")
        _check_number(coefficient, f"Add coefficient for {self.site}")
        object.__setattr__(self, "value", value)
        object.__setattr__(self, "coefficient", float(coefficient))

    def edit(self, selected: Tensor, full: Tensor | None) -> Tensor:
        assert full is not None
        if self.coefficient == 0.0:
            return (
                selected  # exactly a no-op, not selected + 0 * value (which could be -0.0 or NaN)
            )
        return selected + self.coefficient * full


class Scale(_Edit):
    """Multiplies ``site`` by ``factor``."""

    factor: float

    def __init__(
        self, site: SiteLike, factor: float, *, positions: Positions = None, heads: Heads = None
    ) -> None:
        _init(self, site, positions, heads)
        _check_number(factor, f"Scale factor for {self.site}")
        object.__setattr__(self, "factor", float(factor))

    def edit(self, selected: Tensor, full: Tensor | None) -> Tensor:
        return selected * self.factor


class Ablate(_Edit):
    """Replaces ``site`` by zero, the reference mean, or a resampled reference example.

    ``reference`` holds the site's activations on a reference batch (``[n, pos, ...]``), or the
    prompts to compute them from (`Model.run` captures them first). Mean ablation averages over
    the reference examples and keeps positions; resampling gives each example of the run the
    activation of a reference example drawn with ``seed``.
    """

    method: AblateMethod
    reference: Tensor | Sequence[str] | None
    seed: int

    def __init__(
        self,
        site: SiteLike,
        method: AblateMethod = "zero",
        *,
        reference: Tensor | Sequence[str] | None = None,
        seed: int = 0,
        positions: Positions = None,
        heads: Heads = None,
    ) -> None:
        _init(self, site, positions, heads)
        if method not in ("zero", "mean", "resample"):
            raise InterventionError(
                f"unknown ablation {method!r}; valid methods: 'zero', 'mean', 'resample'"
            )
        if method != "zero" and reference is None:
            raise InterventionError(
                f"{method} ablation of {self.site} needs reference= (activations or prompts)"
            )
        object.__setattr__(self, "method", method)
        object.__setattr__(self, "reference", reference)
        object.__setattr__(self, "seed", int(seed))

    def replacement(self, batch: int) -> Tensor | None:
        """Returns the value source for a run of ``batch`` examples (None for zero ablation)."""
        if self.method == "zero":
            return None
        ref = self.reference
        if not isinstance(ref, Tensor):
            raise InterventionError(
                f"{self.method} ablation of {self.site} has prompts as reference; run it through "
                "Model.run, which captures their activations first"
            )
        if self.method == "mean":
            return ref.mean(0, keepdim=True)
        g = torch.Generator().manual_seed(self.seed)
        idx = torch.randint(ref.shape[0], (batch,), generator=g)
        return ref[idx.to(ref.device)]

    def edit(self, selected: Tensor, full: Tensor | None) -> Tensor:
        if full is None:
            return torch.zeros_like(selected)
        return full.expand_as(selected)


class Apply(_Edit):
    """Replaces ``site`` by ``fn(selected)``; ``fn`` must return the same shape."""

    fn: Callable[[Tensor], Tensor]

    def __init__(
        self,
        site: SiteLike,
        fn: Callable[[Tensor], Tensor],
        *,
        positions: Positions = None,
        heads: Heads = None,
    ) -> None:
        _init(self, site, positions, heads)
        if not callable(fn):
            raise InterventionError(
                f"Apply needs a callable for {self.site}, got {type(fn).__name__}"
            )
        object.__setattr__(self, "fn", fn)

    def edit(self, selected: Tensor, full: Tensor | None) -> Tensor:
        out = self.fn(selected)
        if not isinstance(out, Tensor) or out.shape != selected.shape:
            got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
            raise InterventionError(
                f"Apply function on {self.site} returned {got}; it must return a tensor of the "
                f"selected shape {tuple(selected.shape)}"
            )
        return out


Intervention = Patch | Add | Scale | Ablate | Apply

__all__ = [
    "Ablate",
    "AblateMethod",
    "Add",
    "Apply",
    "Intervention",
    "InterventionError",
    "Patch",
    "Scale",
    "SiteError",
]
