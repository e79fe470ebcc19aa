"""Causal tracing results: p(answer) with each (layer, position) state restored, as plain data.

A `TracingResult` holds, per prompt, the restored p(answer) of every cell of the ``resid``,
``attn`` and ``mlp`` grids (``[n, layer, pos]``), the clean and corrupted baselines and what was
traced (tokens, subject spans, answers, the noise). The cell of component ``c`` at layer ``l`` is
the Site ``L{l}.resid_post`` / ``attn_out`` / ``mlp_out`` (`TracingResult.site`), so summaries
and tables name cells the way the rest of the library does. `TracingConfig` is the technique's
frozen config; `window_range` is ROME's window rule, shared by the technique and this schema.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np

from interplab.configs import Config, ConfigError, budget
from interplab.errors import UserError
from interplab.provenance import Provenance
from interplab.results._naming import name_top_cell
from interplab.results.base import Result, encode
from interplab.sites import Component, Site
from interplab.stats import Summary, summarize
from interplab.stats.summary import SummaryCorrection

TraceComponent = Literal["resid", "attn", "mlp"]
TRACE_COMPONENTS: tuple[TraceComponent, ...] = get_args(TraceComponent)
SITE_OF: dict[str, Component] = {"resid": "resid_post", "attn": "attn_out", "mlp": "mlp_out"}
"""The site a traced component restores."""


class TracingError(UserError):
    """Inputs or options that causal tracing cannot run with."""


def window_range(layer: int, window: int, n_layers: int) -> range:
    """Returns the layers restored around ``layer``: ROME's ``max(0, l - w//2)`` up to and
    excluding ``min(L, l + ceil(w/2))``."""
    return range(max(0, layer - window // 2), min(n_layers, layer + math.ceil(window / 2)))


@dataclass(frozen=True)
class TracingConfig(Config):
    """How causal tracing runs: what it restores, the noise, the window, the fast path."""

    components: tuple[TraceComponent, ...] = TRACE_COMPONENTS
    noise: float = 3.0  # ν: noise std in units of sigma
    sigma: float | None = None  # None: the std of the token-embedding entries
    samples: int = 10
    window: int = 10
    seed: int = 0
    method: Literal["auto", "suffix", "hooks"] = "auto"
    batch_budget_mb: float | Literal["auto"] = 512.0

    def check(self) -> None:
        comps = self.components
        if isinstance(comps, str) or not isinstance(comps, tuple):
            raise ConfigError(f"components must be a tuple of names, got {comps!r}")
        if not comps:
            raise ConfigError(f"no components given; choose from {', '.join(TRACE_COMPONENTS)}")
        for c in comps:
            if c not in TRACE_COMPONENTS:
                raise ConfigError(
                    f"unknown component {c!r}; causal tracing restores "
                    f"{', '.join(TRACE_COMPONENTS)} (resid_post, attn_out, mlp_out)"
                )
        if len(set(comps)) != len(comps):
            raise ConfigError(f"components repeat: {comps}")
        if self.noise < 0:
            raise ConfigError(f"noise is a multiple of sigma and must be >= 0, got {self.noise}")
        if self.sigma is not None and self.sigma < 0:
            raise ConfigError(
                f"sigma must be >= 0 (or None for the embedding std), got {self.sigma}"
            )
        if not isinstance(self.samples, int) or self.samples < 1:
            raise ConfigError(
                f"samples (noise draws per prompt) must be an int >= 1, got {self.samples}"
            )
        if not isinstance(self.window, int) or self.window < 1:
            raise ConfigError(
                f"window (layers restored per attn/mlp cell) must be an int >= 1, got {self.window}"
            )
        budget("batch_budget_mb", self.batch_budget_mb)


@dataclass(frozen=True)
class TracingCell:
    """One cell of a tracing summary: the restored site, the position, its token and evidence."""

    site: Site
    position: int
    token: str
    mean: float
    ci_low: float
    ci_high: float
    p_adjusted: float
    significant: bool

    @property
    def label(self) -> str:
        """``L23.resid_post @ 4 ' is'``: the site, the position and its token."""
        return f"{self.site} @ {self.position} {self.token!r}"


@dataclass(frozen=True)
class TracingResult(Result):
    """Per-prompt p(answer) with each cell restored, the clean and corrupted baselines, inputs."""

    technique = "causal_tracing"

    components: tuple[TraceComponent, ...]
    restored: dict[str, np.ndarray]  # component -> [n, layer, pos], mean over samples; NaN past end
    clean: np.ndarray  # [n] p(answer) of the clean run
    corrupted: np.ndarray  # [n] p(answer) of the corrupted run, mean over samples
    corrupted_samples: np.ndarray  # [n, samples]
    tokens: list[list[str]]
    subject_spans: list[tuple[int, int]]  # token positions [start, stop) of each subject
    prompts: list[str] | None
    subjects: list[str] | None
    answers: list[str]
    answer_ids: list[int]
    noise: float  # ν: the noise standard deviation in units of sigma
    sigma: float
    samples: int
    window: int
    method: Literal["suffix", "hooks"]  # suffix: layers and positions that cannot change skipped
    fallback: str  # why the hook path ran ("" when the suffix path ran or hooks were asked for)
    provenance: Provenance

    @property
    def n(self) -> int:
        return len(self.clean)

    @property
    def n_layers(self) -> int:
        return int(next(iter(self.restored.values())).shape[1])

    @property
    def lengths(self) -> list[int]:
        return [len(t) for t in self.tokens]

    @property
    def noise_std(self) -> float:
        """ν·σ: the standard deviation of the noise added to each subject embedding entry."""
        return self.noise * self.sigma

    def site(self, component: str, layer: int) -> Site:
        """Returns the Site a ``component`` cell at ``layer`` restores (its window's centre)."""
        self._restored(component)
        return Site(layer, SITE_OF[component])

    def effect(self, component: str = "resid") -> np.ndarray:
        """Returns the indirect effect per prompt and cell ``[n, layer, pos]`` (NaN past the end)."""
        return self._restored(component) - self.corrupted[:, None, None]

    def window_layers(self, layer: int) -> range:
        """Returns the layers an ``attn``/``mlp`` cell at ``layer`` restores."""
        return window_range(layer, self.window, self.n_layers)

    def summary(
        self,
        component: str = "resid",
        *,
        correction: SummaryCorrection = "holm",
        alpha: float = 0.05,
        seed: int = 0,
        n_resamples: int = 10_000,
    ) -> Summary:
        """Returns per cell ``[layer, pos]`` the mean effect with its CI over prompts, a sign-flip
        test against 0, and Holm correction over the cells; cells before the subject in every
        prompt (exactly 0) are not tested."""
        values = self.aligned(component, "a summary").copy()
        if self.n < 2:
            raise TracingError("a summary needs at least 2 prompts (CIs are over prompts)")
        first = min(start for start, _ in self.subject_spans)
        values[:, :, :first] = np.nan
        return summarize(
            values,
            null=0.0,
            correction=correction,
            alpha=alpha,
            seed=seed,
            n_resamples=n_resamples,
        )

    def summaries(self, **options: Any) -> dict[str, Summary]:
        """Returns the summary of each traced component."""
        return {c: self.summary(c, **options) for c in self.components}

    def top_cells(
        self, component: str = "resid", k: int = 10, *, summary: Summary | None = None
    ) -> list[TracingCell]:
        """Returns the ``k`` cells with the largest mean effect, with CI and Holm-adjusted p."""
        s = summary if summary is not None else self.summary(component)
        mean = np.where(np.isnan(s.mean), -np.inf, s.mean).ravel()
        out = []
        for flat in np.argsort(-mean, kind="stable")[:k]:
            layer, pos = (int(i) for i in np.unravel_index(int(flat), s.cell_shape))
            out.append(
                TracingCell(
                    site=self.site(component, layer),
                    position=pos,
                    token=self.tokens[0][pos],
                    mean=float(s.mean[layer, pos]),
                    ci_low=float(s.ci_low[layer, pos]),
                    ci_high=float(s.ci_high[layer, pos]),
                    p_adjusted=float(s.p_adjusted[layer, pos]),
                    significant=bool(s.significant[layer, pos]),
                )
            )
        return out

    def describe(self, component: str = "resid", *, summary: Summary | None = None) -> str:
        """Returns the summary's sentences with its largest cell named by site and token."""
        s = summary if summary is not None else self.summary(component)
        return name_top_cell(s, lambda cell: self._cell_label(component, cell))

    def aligned(self, component: str, what: str) -> np.ndarray:
        """Returns ``effect(component)``, or raises if the prompts' positions do not line up."""
        if len(set(self.lengths)) > 1:
            raise TracingError(
                f"{what} needs prompts of one token length so that a position means the same "
                f"token in every prompt; these have lengths {sorted(set(self.lengths))}. Trace "
                "prompts of one template and subject length, or pass example= for one prompt"
            )
        return self.effect(component)

    def to_dict(self) -> dict[str, Any]:
        """Returns the fields, plus the effects, ν·σ and (n ≥ 2, one length) the summaries."""
        d = super().to_dict()
        d["axes"] = ["example", "layer", "pos"]
        d["effects"] = encode({c: self.effect(c) for c in self.components})
        d["noise_std"] = self.noise_std
        if self.n >= 2 and len(set(self.lengths)) == 1:
            d["summary"] = encode(self.summaries())
        return d

    def _cell_label(self, component: str, cell: tuple[int, ...]) -> str:
        layer, pos = cell
        return f"{self.site(component, layer)} @ {pos} {self.tokens[0][pos]!r}"

    def _restored(self, component: str) -> np.ndarray:
        if component not in self.restored:
            raise TracingError(
                f"no grid for {component!r}; this result has {', '.join(self.components)}"
            )
        return self.restored[component]


__all__ = [
    "SITE_OF",
    "TRACE_COMPONENTS",
    "TraceComponent",
    "TracingCell",
    "TracingConfig",
    "TracingError",
    "TracingResult",
    "window_range",
]
