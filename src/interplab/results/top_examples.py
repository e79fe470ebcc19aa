"""Max-activating examples as data: per direction, its top, random and quantile-bin tokens.

A direction is a `Unit`: one neuron of a site (``index``) or a named vector read at a site. Each
kept token carries its context's token ids and the direction's activation on every context token,
so a page can colour the context without a second pass over the corpus.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from interplab.configs import Config, ConfigError, positive
from interplab.errors import UserError
from interplab.provenance import Provenance
from interplab.results.base import Result
from interplab.sites import Site
from interplab.stats import Summary, summarize

SampleKind = Literal["top", "random", "quantiles"]


class TopExamplesError(UserError):
    """A corpus, site, neuron or direction that a max-activating pass cannot read."""


@dataclass(frozen=True)
class TopExamplesConfig(Config):
    """What each direction keeps and how the corpus is read.

    Kept per direction: the ``k`` top tokens, ``n_random`` uniformly random tokens, and
    ``per_bin`` tokens from each of ``n_bins`` approximate quantile bins (built from ``n_hist``
    histogram bins); every kept token keeps ``context`` = (left, right) tokens around it.
    Reading: ``batch_size`` windows per forward, at most ``max_tokens`` tokens (None: the whole
    corpus), ``seed`` for the random and quantile samples, ``stop_early`` ends each forward after
    the last block read, ``checkpoint_every`` batches between checkpoints.
    """

    k: int = 20
    n_random: int = 10
    n_bins: int = 5
    per_bin: int = 4
    n_hist: int = 32
    context: tuple[int, int] = (12, 4)
    batch_size: int = 8
    max_tokens: int | None = None
    seed: int = 0
    stop_early: bool = True
    checkpoint_every: int = 50

    def check(self) -> None:
        positive("k", self.k)
        for name in ("n_random", "n_bins", "per_bin"):
            positive(name, getattr(self, name), allow_zero=True)
        if self.n_hist < max(self.n_bins, 2):
            raise ConfigError(
                f"n_hist must be >= max(n_bins, 2) = {max(self.n_bins, 2)}, got {self.n_hist}"
            )
        if len(self.context) != 2 or min(self.context) < 0:
            raise ConfigError(f"context must be (left, right) with both >= 0, got {self.context}")
        positive("batch_size", self.batch_size)
        if self.max_tokens is not None:
            positive("max_tokens", self.max_tokens)
        positive("checkpoint_every", self.checkpoint_every)


@dataclass(frozen=True)
class Unit:
    """One direction read from the corpus: neuron ``index`` of ``site``, or a named vector."""

    site: Site
    index: int | None = None
    name: str = ""

    @property
    def label(self) -> str:
        """The display label: ``L15.mlp.post[7]`` for a neuron, the name for a vector."""
        return self.name or f"{self.site}[{self.index}]"


@dataclass(frozen=True)
class Samples:
    """Kept tokens of each direction: scores, window ids, positions, context ids and activations.

    Arrays are ``[direction, *slots]``; ``window == -1`` marks an empty slot (fewer tokens than
    slots); context arrays add a last axis of ``left + 1 + right`` tokens, ``-1`` / NaN outside
    the window.
    """

    score: np.ndarray
    window: np.ndarray
    position: np.ndarray
    context_ids: np.ndarray
    context_acts: np.ndarray


@dataclass(frozen=True)
class Example:
    """One kept token in its context: the tokens, the direction's activation on each, the focus."""

    slot: tuple[int, ...]  # index among the kept slots (bin, sample for quantiles)
    score: float
    window: int
    position: int
    tokens: list[str]
    acts: list[float]
    focus: int  # index in ``tokens`` of the example token

    @property
    def token(self) -> str:
        return self.tokens[self.focus]


@dataclass(frozen=True)
class TopExamplesResult(Result):
    """Per direction: top-k, random and quantile-bin examples with contexts, and activation facts
    over every token of the pass (mean, std, min, max)."""

    technique = "top_examples"

    units: list[Unit]
    corpus: str
    top: Samples  # [direction, k]
    random: Samples  # [direction, n_random]
    quantiles: Samples  # [direction, n_bins, per_bin]
    bin_ranges: np.ndarray  # [direction, n_bins, 2]: activation range of each quantile bin
    bin_fractions: np.ndarray  # [direction, n_bins, 2]: cumulative token fraction at its ends
    context: tuple[int, int]
    token_strings: dict[int, str]
    n_tokens: int
    n_windows: int
    mean: np.ndarray  # [direction]
    std: np.ndarray
    min: np.ndarray
    max: np.ndarray
    state_bytes: int
    provenance: Provenance

    @property
    def n_directions(self) -> int:
        return len(self.units)

    @property
    def labels(self) -> list[str]:
        """Each direction's display label (``L15.mlp.post[7]`` or the vector's name)."""
        return [u.label for u in self.units]

    @property
    def sites(self) -> list[Site]:
        return [u.site for u in self.units]

    def index(self, direction: str | int) -> int:
        """Returns the position of a direction given by its index or label."""
        if isinstance(direction, int):
            if not -self.n_directions <= direction < self.n_directions:
                raise KeyError(f"direction {direction} out of range 0..{self.n_directions - 1}")
            return direction % self.n_directions
        labels = self.labels
        if direction not in labels:
            raise KeyError(f"no direction {direction!r}; e.g. {labels[:5]}")
        return labels.index(direction)

    def samples(self, kind: SampleKind) -> Samples:
        if kind not in ("top", "random", "quantiles"):
            raise KeyError(f"unknown kind {kind!r}; kinds: top, random, quantiles")
        return {"top": self.top, "random": self.random, "quantiles": self.quantiles}[kind]

    def contexts(self, direction: str | int, kind: SampleKind = "top") -> list[Example]:
        """Returns the kept examples of one direction, in slot order (best first for top)."""
        d = self.index(direction)
        s = self.samples(kind)
        out = []
        for slot in np.ndindex(*s.score.shape[1:]):
            w = int(s.window[(d, *slot)])
            if w < 0:
                continue
            ids, acts = s.context_ids[(d, *slot)], s.context_acts[(d, *slot)]
            keep = ids >= 0
            out.append(
                Example(
                    slot=tuple(int(i) for i in slot),
                    score=float(s.score[(d, *slot)]),
                    window=w,
                    position=int(s.position[(d, *slot)]),
                    tokens=[self.token_strings[int(i)] for i in ids[keep]],
                    acts=[float(a) for a in acts[keep]],
                    focus=int(np.flatnonzero(keep).tolist().index(self.context[0])),
                )
            )
        return out

    def summary(self, *, seed: int = 0) -> Summary:
        """Returns each direction's mean activation over its uniformly sampled random tokens, with
        CI and n (the unbiased view beside the top examples; needs n_random >= 2)."""
        filled = (self.random.window >= 0).all(0)
        return summarize(self.random.score[:, filled].T.astype(np.float64), seed=seed)


__all__ = [
    "Example",
    "SampleKind",
    "Samples",
    "TopExamplesConfig",
    "TopExamplesError",
    "TopExamplesResult",
    "Unit",
]
