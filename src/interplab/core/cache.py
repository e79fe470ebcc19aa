"""The activation cache: what a capture recorded, keyed by Site."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import torch
from torch import Tensor

from interplab.sites import Site, SiteLike
from interplab.types import Activations


class Cache(Mapping[Site, Tensor]):
    """Captured activations by site, in canonical shape (see `interplab.core.points`).

    One forward pass gives one tensor per site. Several forwards inside one capture (the steps of
    generation) are kept in order; ``cache[site]`` joins consecutive steps along positions, and
    ``cache.steps(site)`` returns them one by one.
    """

    def __init__(self) -> None:
        self._steps: dict[Site, list[tuple[int, Tensor]]] = {}

    def record(self, site: Site, offset: int, value: Tensor) -> None:
        self._steps.setdefault(site, []).append((offset, value))

    def steps(self, site: SiteLike) -> list[Tensor]:
        """Returns every recorded tensor of ``site``, one per forward pass."""
        return [t for _, t in self._entries(site)]

    def _entries(self, site: SiteLike) -> list[tuple[int, Tensor]]:
        s = Site.parse(site)
        if s not in self._steps:
            have = ", ".join(str(k) for k in sorted(self._steps, key=lambda k: k.sort_key))
            raise KeyError(f"{s} was not captured; captured sites: {have or 'none'}")
        return self._steps[s]

    def __getitem__(self, site: SiteLike) -> Activations:  # type: ignore[override]
        entries = self._entries(site)
        if len(entries) == 1:
            return entries[0][1]
        s = Site.parse(site)
        axis = 2 if s.component == "attn.pattern" else 1
        contiguous = all(
            entries[i + 1][0] == entries[i][0] + entries[i][1].shape[axis]
            for i in range(len(entries) - 1)
        )
        if s.component == "attn.pattern" or not contiguous:
            raise KeyError(
                f"{s} was recorded in {len(entries)} separate forward passes that do not continue "
                "one sequence; use cache.steps(site) to get them one by one"
            )
        return torch.cat([t for _, t in entries], dim=axis)

    def __iter__(self) -> Iterator[Site]:
        return iter(sorted(self._steps, key=lambda k: k.sort_key))

    def __len__(self) -> int:
        return len(self._steps)

    def __contains__(self, site: object) -> bool:
        try:
            return Site.parse(site) in self._steps  # type: ignore[arg-type]
        except Exception:
            return False

    def __repr__(self) -> str:
        items = ", ".join(f"{s}: {tuple(self._steps[s][-1][1].shape)}" for s in self)
        return f"Cache({items})"
