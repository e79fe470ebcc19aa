"""Logit-lens results: per prompt × read-out site × position, the top-k tokens and the target.

Row ``r`` of every ``[n, row, pos]`` array is the residual stream at ``sites[r]``: row 0 is
``embed`` (what block 0 reads), row ``l + 1`` is ``L{l}.resid_post``. Layer numbers therefore
come from the Sites, never from row indices (`LensResult.first_layer_top1` returns a Site).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from interplab.configs import Config, positive
from interplab.errors import UserError
from interplab.provenance import Provenance
from interplab.results._naming import name_top_cell
from interplab.results.base import Result, encode
from interplab.sites import Site
from interplab.stats import Summary, summarize


class LensError(UserError):
    """A logit-lens question the result cannot answer (no target) or bad options."""


@dataclass(frozen=True)
class LensConfig(Config):
    """What the lens keeps: the target token to follow (one token, e.g. ``' Paris'``) and top-k."""

    target: str | None = None
    k: int = 5

    def check(self) -> None:
        positive("k", self.k)


@dataclass(frozen=True)
class LensResult(Result):
    """Logit-lens read-outs, per prompt × site × position (``sites[0]`` is the embedding)."""

    technique = "logit_lens"

    prompts: list[str]
    tokens: list[list[str]]
    sites: tuple[Site, ...]  # the residual read at each row: embed, L0.resid_post, ...
    target: str | None
    target_id: int | None
    d_vocab: int
    target_prob: np.ndarray  # [n, row, pos], NaN where a prompt has no token
    target_rank: np.ndarray  # [n, row, pos], -1 where a prompt has no token
    top_ids: np.ndarray  # [n, row, pos, k]
    top_tokens: list[list[list[list[str]]]]  # [n][row][pos][k]
    top_probs: np.ndarray  # [n, row, pos, k]
    lengths: np.ndarray  # [n]
    provenance: Provenance

    @property
    def n(self) -> int:
        return len(self.prompts)

    def at_last(self, values: np.ndarray) -> np.ndarray:
        """Returns ``values[n, row, pos, ...]`` at each prompt's last token: ``[n, row, ...]``."""
        return values[np.arange(self.n), :, self.lengths - 1]

    def row(self, site: Site | str) -> int:
        """Returns the row of the arrays that holds ``site`` (e.g. ``'L12.resid_post'``)."""
        s = Site.parse(site)
        if s not in self.sites:
            raise LensError(f"the lens read no {s}; it read {self.sites[0]} .. {self.sites[-1]}")
        return self.sites.index(s)

    def first_layer_top1(self) -> list[Site | None]:
        """Returns, per prompt, the first site whose top-1 at the last token is the target
        (``embed`` or ``L{l}.resid_post``; its ``.layer`` is the layer), or None if none is."""
        if self.target_id is None:
            raise LensError("this lens has no target: run logit_lens(..., target=' Paris')")
        out: list[Site | None] = []
        for ranks in self.at_last(self.target_rank):
            hits = np.flatnonzero(ranks == 0)
            out.append(self.sites[int(hits[0])] if hits.size else None)
        return out

    def summary(self, *, seed: int = 0) -> Summary:
        """Returns, per site (row), the target's probability at the last token: mean, CI and n
        over prompts, tested against uniform chance (1 / vocab) with Holm correction."""
        if self.target_id is None:
            raise LensError("summary needs a target: run logit_lens(..., target=' Paris')")
        return summarize(self.at_last(self.target_prob), null=1.0 / self.d_vocab, seed=seed)

    def describe(self, *, summary: Summary | None = None) -> str:
        """Returns the summary's sentences with its largest cell named by its site."""
        s = summary if summary is not None else self.summary()
        return name_top_cell(s, lambda cell: str(self.sites[cell[0]]))

    def to_dict(self) -> dict[str, Any]:
        """Returns the fields, plus the summary when there is a target and n ≥ 2."""
        d = super().to_dict()
        if self.target_id is not None and self.n >= 2:
            d["summary"] = encode(self.summary())
        return d


__all__ = ["LensConfig", "LensError", "LensResult"]
