"""Steering results as data: the vector, and scores, perplexities and texts per condition.

`SteeringVector` is a difference of mean residuals per layer (numpy, so it can be stored and read
back without torch). `SteeringResult` holds, per prompt and coefficient, the behaviour score and
the perplexity of continuations under four conditions: steered, norm-matched random vectors (the
baseline for "any push of that size"), no steering, and an instruction prompt.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from interplab.configs import Config, ConfigError, positive
from interplab.provenance import Provenance, write_text
from interplab.results.base import Result, ResultError, decode_dataclass, encode
from interplab.sites import Site
from interplab.stats import Summary, summarize

Condition = Literal["steered", "random", "none", "prompt"]
CONDITIONS: tuple[Condition, ...] = ("steered", "random", "none", "prompt")
ResidComponent = Literal["resid_pre", "resid_post"]
Reduction = Literal["last", "mean"]


@dataclass(frozen=True)
class SteeringVectorConfig(Config):
    """Where a steering vector is read: ``layers``, the residual ``component``, each prompt's
    ``position`` (last token or mean over tokens), and the batch size of the forwards."""

    layers: tuple[int, ...]
    component: ResidComponent = "resid_pre"
    position: Reduction = "mean"
    batch_size: int = 32

    def check(self) -> None:
        if not self.layers:
            raise ConfigError("layers is empty; give at least one layer")
        positive("batch_size", self.batch_size)


@dataclass(frozen=True)
class SteerConfig(Config):
    """A coefficient sweep: the ``coefficients``, the token ``positions`` the vector is added at
    (None: every token), ``n_random`` norm-matched random vectors, the prompt baseline, the
    continuation length, sampling ``temperature`` (0: greedy) and the ``seed``."""

    coefficients: tuple[float, ...] = (0.0, 2.0, 4.0, 8.0)
    positions: tuple[int, ...] | None = None
    n_random: int = 3
    prompt_baseline: bool = True
    max_new_tokens: int = 24
    temperature: float = 0.0
    seed: int = 0

    def check(self) -> None:
        if not self.coefficients:
            raise ConfigError("coefficients is empty; give at least one coefficient")
        bad = [c for c in self.coefficients if not np.isfinite(c)]
        if bad:
            raise ConfigError(f"coefficients must be finite numbers, got {bad}")
        if self.n_random < 0:
            raise ConfigError(f"n_random must be >= 0, got {self.n_random}")
        if self.max_new_tokens < 1:
            raise ConfigError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if not self.temperature >= 0:
            raise ConfigError(f"temperature must be >= 0, got {self.temperature}")


@dataclass(frozen=True)
class SteeringVector:
    """A difference-of-means direction per layer, its norm, and how it was made.

    ``vectors``, ``positive_mean`` and ``negative_mean`` are ``[layer, d_model]`` float32.
    """

    layers: list[int]
    component: ResidComponent
    position: Reduction
    vectors: np.ndarray
    positive_mean: np.ndarray
    negative_mean: np.ndarray
    n_positive: int
    n_negative: int
    provenance: Provenance

    @property
    def norms(self) -> np.ndarray:
        """Returns the L2 norm of the vector at each layer (float64)."""
        return np.linalg.norm(self.vectors.astype(np.float64), axis=-1)

    def at(self, layer: int) -> np.ndarray:
        """Returns the ``[d_model]`` vector of one layer."""
        if layer not in self.layers:
            raise KeyError(f"no vector at layer {layer}; layers: {self.layers}")
        return self.vectors[self.layers.index(layer)]

    def site(self, layer: int) -> Site:
        """Returns the site the vector of ``layer`` is added to."""
        return Site(layer, self.component)

    @property
    def sites(self) -> list[Site]:
        return [self.site(layer) for layer in self.layers]

    def to_dict(self) -> dict[str, Any]:
        return {"technique": "steering_vector", **encode(self), "norms": encode(self.norms)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SteeringVector:
        if data.get("technique") not in (None, "steering_vector"):
            raise ResultError(f"this is a {data.get('technique')!r} file, not a steering vector")
        return decode_dataclass(cls, data)

    def to_json(self, path: str | Path) -> Path:
        """Writes the vector as JSON atomically and returns the path."""
        return write_text(path, json.dumps(self.to_dict(), indent=1, allow_nan=False))

    @classmethod
    def from_json(cls, path: str | Path) -> SteeringVector:
        try:
            return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
        except FileNotFoundError:
            raise ResultError(f"no steering vector file at {path}") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ResultError(f"{path} is not a steering vector JSON file: {e}") from None


@dataclass(frozen=True)
class SteeringRow:
    """One coefficient and condition: mean score and perplexity with 95% CI ends, over prompts."""

    coefficient: float
    condition: Condition
    n: int
    score: float
    score_low: float
    score_high: float
    perplexity: float
    perplexity_low: float
    perplexity_high: float


@dataclass(frozen=True)
class SteeringResult(Result):
    """Scores, perplexities and texts per prompt × coefficient × condition, with provenance."""

    technique = "steering"

    prompts: list[str]
    coefficients: list[float]
    behaviour: str
    behaviour_description: str
    instruction: str
    layers: list[int]
    component: str
    vector_norms: np.ndarray  # [layer]
    steered_scores: np.ndarray  # [prompt, coefficient]
    random_scores: np.ndarray  # [prompt, coefficient, draw]
    none_scores: np.ndarray  # [prompt]
    prompt_scores: np.ndarray  # [prompt]
    steered_perplexity: np.ndarray  # [prompt, coefficient]
    random_perplexity: np.ndarray  # [prompt, coefficient, draw]
    none_perplexity: np.ndarray  # [prompt]
    prompt_perplexity: np.ndarray  # [prompt]
    steered_texts: list[list[str]]  # [prompt][coefficient]
    random_texts: list[list[list[str]]]  # [prompt][coefficient][draw]
    none_texts: list[str]
    prompt_texts: list[str]
    vector_provenance: Provenance
    provenance: Provenance

    @property
    def n(self) -> int:
        return len(self.prompts)

    @property
    def conditions(self) -> list[Condition]:
        """Returns the conditions this result holds (random and prompt can be switched off)."""
        return [
            c
            for c in CONDITIONS
            if (c != "random" or self.random_scores.shape[-1] > 0)
            and (c != "prompt" or not np.isnan(self.prompt_scores).all())
        ]

    def per_coefficient(self, condition: Condition, *, perplexity: bool = False) -> np.ndarray:
        """Returns ``[prompt, coefficient]`` values of a condition: random draws averaged per
        prompt; the coefficient-free conditions (none, prompt) repeated along coefficients."""
        if condition not in CONDITIONS:
            raise KeyError(f"unknown condition {condition!r}; conditions: {CONDITIONS}")
        values = {
            ("steered", False): self.steered_scores,
            ("random", False): self.random_scores,
            ("none", False): self.none_scores,
            ("prompt", False): self.prompt_scores,
            ("steered", True): self.steered_perplexity,
            ("random", True): self.random_perplexity,
            ("none", True): self.none_perplexity,
            ("prompt", True): self.prompt_perplexity,
        }[condition, perplexity]
        if condition == "random":
            return values.mean(-1)
        if condition in ("none", "prompt"):
            return np.repeat(values[:, None], len(self.coefficients), axis=1)
        return values

    @property
    def baseline(self) -> Condition:
        """The condition the main summary compares with: random vectors, or none without them."""
        return "random" if "random" in self.conditions else "none"

    def summary(self, *, seed: int = 0) -> Summary:
        """Returns the paired difference steered − random score per coefficient (steered − none
        when no random vectors ran): mean, CI over prompts, sign-flip test, Holm across
        coefficients. `summaries` gives every condition's."""
        return summarize(
            self.per_coefficient("steered"), baseline=self.per_coefficient(self.baseline), seed=seed
        )

    def summaries(self, *, seed: int = 0) -> dict[str, Summary]:
        """Returns per-coefficient summaries (mean, CI over prompts, n) of each condition's score
        and perplexity (``"steered score"``, ``"random perplexity"``, ...), and of the paired
        differences ``"steered - random score"`` and ``"steered - none score"``."""
        out: dict[str, Summary] = {}
        for c in self.conditions:
            out[f"{c} score"] = summarize(self.per_coefficient(c), seed=seed)
            out[f"{c} perplexity"] = summarize(self.per_coefficient(c, perplexity=True), seed=seed)
        steered = self.per_coefficient("steered")
        bases: list[Condition] = [c for c in self.conditions if c in ("random", "none")]
        for base in bases:
            out[f"steered - {base} score"] = summarize(
                steered, baseline=self.per_coefficient(base), seed=seed
            )
        return out

    def table(self, *, seed: int = 0) -> list[SteeringRow]:
        """Returns one row per coefficient and condition: mean score and perplexity with CIs."""
        s = self.summaries(seed=seed)
        rows = []
        for j, coef in enumerate(self.coefficients):
            for c in self.conditions:
                sc, pp = s[f"{c} score"], s[f"{c} perplexity"]
                rows.append(
                    SteeringRow(
                        coefficient=coef,
                        condition=c,
                        n=sc.n,
                        score=float(sc.mean[j]),
                        score_low=float(sc.ci_low[j]),
                        score_high=float(sc.ci_high[j]),
                        perplexity=float(pp.mean[j]),
                        perplexity_low=float(pp.ci_low[j]),
                        perplexity_high=float(pp.ci_high[j]),
                    )
                )
        return rows

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        if self.n >= 2:
            d["summary"] = {k: v.to_dict() for k, v in self.summaries().items()}
            d["table"] = encode(self.table())
        return d


__all__ = [
    "CONDITIONS",
    "Condition",
    "Reduction",
    "ResidComponent",
    "SteerConfig",
    "SteeringResult",
    "SteeringRow",
    "SteeringVector",
    "SteeringVectorConfig",
]
