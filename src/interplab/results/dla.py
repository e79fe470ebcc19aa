"""Direct-logit-attribution results: each component's and head's direct write toward a logit.

Column ``c`` of ``contributions`` is the component at ``sites[c]``: ``embed``, then
``L{l}.attn_out`` and ``L{l}.mlp_out`` per layer, then, for models that have them, ``final_norm``
(the final LayerNorm's bias, the only part of the norm's output no residual component carries)
and ``logits`` (the unembedding's bias). Head ``(l, h)`` of ``heads`` is the Site
``L{l}.attn.z.h{h}`` (`DLAResult.head_site`): that head's output through its slice of the
output projection. Heads plus ``head_bias`` add up to the layer's ``attn_out`` column.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from interplab.configs import Config, ConfigError
from interplab.errors import UserError
from interplab.provenance import Provenance
from interplab.results._naming import name_top_cell
from interplab.results.base import Result, encode
from interplab.sites import Site
from interplab.stats import Summary, summarize

SUM_TOLERANCE = 1e-3
"""Contributions must add up to the actual logit (difference) within this, times (1 + |actual|)."""


class DLAError(UserError):
    """Targets, baselines or a model that direct logit attribution cannot use."""


@dataclass(frozen=True)
class DLAConfig(Config):
    """The direction and position: ``target`` (minus ``baseline``) logits at ``position``.

    ``target`` and ``baseline`` are one token each (``' Mary'``) or one per prompt; ``position``
    is each prompt's own position (-1: its last token)."""

    target: str | tuple[str, ...]
    baseline: str | tuple[str, ...] | None = None
    position: int = -1

    def check(self) -> None:
        for name in ("target", "baseline"):
            value = getattr(self, name)
            items = (value,) if isinstance(value, str) else value
            if value is None and name == "baseline":
                continue
            if not isinstance(items, tuple) or not items:
                raise ConfigError(f"{name} must be a token or a tuple of tokens, got {value!r}")
            if not all(isinstance(t, str) and t for t in items):
                raise ConfigError(f"every {name} must be a non-empty token string, got {value!r}")
        if not isinstance(self.position, int):
            raise ConfigError(f"position must be an int, got {self.position!r}")
        if isinstance(self.target, str) and self.target == self.baseline:
            raise ConfigError(f"target and baseline are the same token {self.target!r}")


@dataclass(frozen=True)
class DLACell:
    """One component or head of a DLA summary: its Site and the evidence over prompts."""

    site: Site
    mean: float
    ci_low: float
    ci_high: float
    p_adjusted: float
    significant: bool


@dataclass(frozen=True)
class DLAResult(Result):
    """Per-example direct contributions of every component (and head) to a logit direction."""

    technique = "direct_logit_attribution"

    prompts: list[str]
    target: list[str]
    baseline: list[str] | None
    positions: list[int]
    sites: tuple[Site, ...]  # the component of each column (see the module docstring)
    contributions: np.ndarray  # [n, component]
    heads: np.ndarray  # [n, layer, head]
    head_bias: np.ndarray  # [n, layer]: the output-projection bias's share of attn_out
    total: np.ndarray  # [n]: sum of contributions
    actual: np.ndarray  # [n]: the model's logit (difference)
    norm: str  # the final norm's kind ("rms", "rms_plus_one", "layer"), its scale frozen
    provenance: Provenance

    @property
    def n(self) -> int:
        return len(self.prompts)

    @property
    def error(self) -> np.ndarray:
        """Per example: |sum of contributions - actual logit (difference)|."""
        return np.abs(self.total - self.actual)

    def component(self, site: Site | str) -> np.ndarray:
        """Returns the per-example contribution of one component, e.g. ``'L12.mlp_out'``."""
        s = Site.parse(site)
        if s not in self.sites:
            names = ", ".join(str(x) for x in self.sites)
            raise DLAError(f"no component {s}; components: {names}")
        return self.contributions[:, self.sites.index(s)]

    def by_layer(self, kind: str) -> np.ndarray:
        """Returns ``[n, layer]`` contributions of ``kind`` in ('attn_out', 'mlp_out')."""
        if kind not in ("attn_out", "mlp_out"):
            raise DLAError(f"by_layer takes 'attn_out' or 'mlp_out', got {kind!r}")
        cols = [i for i, s in enumerate(self.sites) if s.component == kind]
        return self.contributions[:, cols]

    @staticmethod
    def head_site(layer: int, head: int) -> Site:
        """Returns the Site of head ``(layer, head)``: its ``attn.z`` through the projection."""
        return Site(layer, "attn.z", head)

    def summary(self, *, seed: int = 0) -> Summary:
        """Returns, per component, mean contribution with CI and n over prompts, a sign-flip test
        against 0, and Holm correction over all components."""
        return summarize(self.contributions, null=0.0, seed=seed)

    def head_summary(self, *, seed: int = 0) -> Summary:
        """Returns the same per head (``[layer, head]`` cells, corrected over all heads)."""
        return summarize(self.heads, null=0.0, seed=seed)

    def summaries(self, *, seed: int = 0) -> dict[str, Summary]:
        """Returns the component summary and the head summary, by name."""
        return {"components": self.summary(seed=seed), "heads": self.head_summary(seed=seed)}

    def top_components(self, k: int = 10, *, summary: Summary | None = None) -> list[DLACell]:
        """Returns the ``k`` components with the largest |mean| contribution, with evidence."""
        s = summary if summary is not None else self.summary()
        return [self._cell(s, (int(i),), self.sites[int(i)]) for i in _largest(s, k)]

    def top_heads(self, k: int = 5, *, summary: Summary | None = None) -> list[DLACell]:
        """Returns the ``k`` heads with the largest |mean| contribution, with evidence."""
        s = summary if summary is not None else self.head_summary()
        out = []
        for flat in _largest(s, k):
            layer, head = (int(i) for i in np.unravel_index(int(flat), s.cell_shape))
            out.append(self._cell(s, (layer, head), self.head_site(layer, head)))
        return out

    def describe(self, *, summary: Summary | None = None) -> str:
        """Returns the component summary's sentences with its largest cell named by its site."""
        s = summary if summary is not None else self.summary()
        return name_top_cell(s, lambda cell: str(self.sites[cell[0]]))

    def describe_heads(self, *, summary: Summary | None = None) -> str:
        """Returns the head summary's sentences with its largest head named by its site."""
        s = summary if summary is not None else self.head_summary()
        return name_top_cell(s, lambda cell: str(self.head_site(*cell)))

    def to_dict(self) -> dict[str, Any]:
        """Returns the fields, plus the largest error and (n ≥ 2) the component summary."""
        d = super().to_dict()
        d["max_error"] = float(self.error.max())
        if self.n >= 2:
            d["summary"] = encode(self.summary())
        return d

    @staticmethod
    def _cell(s: Summary, at: tuple[int, ...], site: Site) -> DLACell:
        return DLACell(
            site=site,
            mean=float(s.mean[at]),
            ci_low=float(s.ci_low[at]),
            ci_high=float(s.ci_high[at]),
            p_adjusted=float(s.p_adjusted[at]),
            significant=bool(s.significant[at]),
        )


def _largest(s: Summary, k: int) -> np.ndarray:
    """Returns the flat indices of the ``k`` cells of largest |mean| (NaN last)."""
    magnitude = np.where(np.isnan(s.mean), -np.inf, np.abs(s.mean)).ravel()
    return np.argsort(-magnitude, kind="stable")[:k]


__all__ = ["SUM_TOLERANCE", "DLACell", "DLAConfig", "DLAError", "DLAResult"]
