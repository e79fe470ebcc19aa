"""Results of sparse dictionaries (SAEs, transcoders): training curves, evaluations, feature pages.

Plain data (numpy, Sites, provenance), written and read by the shared JSON codec; `interplab.viz`
draws them (`viz/dictionaries.py`). The metrics' definitions live with the code that computes them
(`interplab.dictionaries.evaluate`); each per-batch array here has one value per evaluation batch,
so every headline number comes with a bootstrap CI over batches (`summaries`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from interplab.errors import UserError
from interplab.provenance import Provenance
from interplab.results.base import Result
from interplab.sites import Site
from interplab.stats import Summary, summarize

EVAL_METRICS = ("fve", "mse", "l0", "ce_clean", "ce_spliced", "ce_zero", "ce_recovered", "kl")


class DictionaryResultError(UserError):
    """A question a dictionary result cannot answer (a metric it did not measure)."""


@dataclass(frozen=True)
class TrainingCurve(Result):
    """Live training metrics of one dictionary against training tokens, and periodic evaluations.

    ``mse`` is in the units of the raw activations; ``fve`` is per batch, about the batch mean;
    ``dead_fraction`` counts latents that have not fired for ``dead_after_tokens`` tokens.
    """

    technique = "dictionary_training"

    name: str
    config: dict[str, Any]
    train: dict[str, Any]
    tokens: np.ndarray  # [points]
    mse: np.ndarray
    fve: np.ndarray
    l0: np.ndarray
    dead_fraction: np.ndarray
    lr: np.ndarray
    eval_tokens: np.ndarray  # [evals]
    eval_metrics: dict[str, np.ndarray]  # metric -> [evals]
    seconds: float
    provenance: Provenance | None = None

    def summary(self) -> Summary:
        """The FVE of the last tenth of logged intervals (at least two), with a bootstrap CI."""
        n = len(self.fve)
        if n < 2:
            raise DictionaryResultError(
                f"{self.name}: {n} logged interval(s); a summary needs at least two"
            )
        return summarize(self.fve[-max(2, n // 10) :])

    def table(self) -> list[dict[str, float]]:
        """Returns the evaluation rows: tokens and each evaluated metric."""
        rows = []
        for i, t in enumerate(self.eval_tokens.tolist()):
            rows.append(
                {"tokens": float(t), **{k: float(v[i]) for k, v in self.eval_metrics.items()}}
            )
        return rows


@dataclass(frozen=True)
class DictionaryEval(Result):
    """Reconstruction and downstream metrics of one dictionary on held-out corpus windows.

    Headline numbers pool every evaluation token; ``batches`` holds one value per evaluation
    batch for each metric (NaN when not measured), which `summaries` turns into CIs.
    """

    technique = "dictionary_eval"

    name: str
    site: Site
    target: Site
    architecture: str
    kind: str
    d_sae: int
    n_tokens: int
    skip_first: int
    fve: float
    mse: float
    l0: float
    dead_fraction: float
    dense_fraction: float
    dense_threshold: float
    ce_clean: float
    ce_spliced: float
    ce_zero: float
    ce_recovered: float
    kl: float
    batches: dict[str, np.ndarray]
    density: np.ndarray  # [d_sae]: fraction of evaluation tokens each latent fires on
    provenance: Provenance
    notes: tuple[str, ...] = field(default=())

    def summary(self) -> Summary:
        """Fraction of variance explained per batch (about the evaluation mean), with its CI."""
        return self.summaries()["fve"]

    def summaries(self) -> dict[str, Summary]:
        """Returns a Summary (mean over batches, bootstrap CI) of every measured metric."""
        out = {}
        for name in EVAL_METRICS:
            values = np.asarray(self.batches.get(name, np.array([])), dtype=np.float64)
            if values.size >= 2 and np.isfinite(values).all():
                out[name] = summarize(values)
        if "fve" not in out:
            raise DictionaryResultError(f"{self.name}: fewer than two evaluation batches")
        return out

    def describe(self) -> str:
        """Returns one line per headline metric."""
        lines = [
            f"{self.name} ({self.architecture} {self.kind}, {self.d_sae} latents) at {self.site}"
            + ("" if self.target == self.site else f" -> {self.target}")
            + f", {self.n_tokens} tokens:",
            f"  FVE {self.fve:.4f}  MSE {self.mse:.4g}  L0 {self.l0:.1f}  silent on these tokens "
            f"{self.dead_fraction:.2%}  dense (> {self.dense_threshold:g}) {self.dense_fraction:.2%}",
        ]
        if np.isfinite(self.ce_recovered):
            lines.append(
                f"  CE clean {self.ce_clean:.4f}  spliced {self.ce_spliced:.4f}  zero-ablated "
                f"{self.ce_zero:.4f}  recovered {self.ce_recovered:.4f}  KL {self.kl:.4f}"
            )
        return "\n".join([*lines, *(f"  {n}" for n in self.notes)])


@dataclass(frozen=True)
class Example:
    """Tokens around one activating token: ``tokens[center]`` is the token itself."""

    window: int
    position: int
    activation: float
    tokens: list[str]
    activations: list[float]
    center: int


@dataclass(frozen=True)
class QuantileBin:
    """Examples drawn from one activation interval (``low`` to ``high``)."""

    low: float
    high: float
    fraction: float  # of active tokens in this interval
    examples: list[Example]


@dataclass(frozen=True)
class FeaturePage(Result):
    """One feature: where it fires, how strongly, what it writes, and its nearest neighbours."""

    technique = "dictionary_feature"

    dictionary: str
    site: Site
    feature: int
    n_tokens: int
    density: float  # fraction of tokens on which it fires
    mean_activation: float  # over active tokens
    max_activation: float
    top: list[Example]
    random: list[Example]  # uniform over active tokens
    quantiles: list[QuantileBin]
    histogram_edges: np.ndarray  # [bins + 1], over active tokens
    histogram_counts: np.ndarray  # [bins]
    sample_activations: np.ndarray  # activations on uniformly sampled tokens (zeros included)
    boosted: list[tuple[str, float]]  # output tokens the decoder direction promotes most
    suppressed: list[tuple[str, float]]
    neighbours: list[tuple[int, float]]  # (feature, decoder cosine)
    provenance: Provenance | None = None

    @property
    def label(self) -> str:
        return f"{self.site}.sae[{self.dictionary}].f{self.feature}"

    def summary(self) -> Summary:
        """Mean activation of the feature on uniformly sampled corpus tokens, with its CI."""
        return summarize(self.sample_activations.astype(np.float64))


@dataclass(frozen=True)
class FeatureIndex(Result):
    """Every feature of a dictionary at a glance: density, strength, top token; pages written."""

    technique = "dictionary_features"

    dictionary: str
    site: Site
    n_tokens: int
    density: np.ndarray  # [d_sae]
    max_activation: np.ndarray  # [d_sae]
    top_token: list[str]  # [d_sae]: the token at each feature's strongest activation
    pages: dict[int, str]  # feature -> page file name (relative to the index)
    random_features: list[int]  # the randomly drawn features among the pages
    provenance: Provenance | None = None

    def summary(self) -> Summary:
        """Feature density (fraction of tokens a feature fires on), averaged over features."""
        return summarize(self.density.astype(np.float64))


@dataclass(frozen=True)
class EncodedPrompts(Result):
    """Per-token feature activations of prompts: for each prompt and token, the active features
    (strongest first, at most ``top`` of them) and their activations."""

    technique = "dictionary_encode"

    dictionary: str
    site: Site
    prompts: list[str]
    tokens: list[list[str]]
    features: list[list[list[int]]]  # [prompt][token][k]
    activations: list[list[list[float]]]
    l0: list[list[int]]  # [prompt][token]: how many features are active (may exceed top)
    provenance: Provenance | None = None

    def summary(self) -> Summary:
        """Active features per token (L0), over every token of every prompt."""
        return summarize(np.asarray([n for row in self.l0 for n in row], dtype=np.float64))


__all__ = [
    "EVAL_METRICS",
    "DictionaryEval",
    "DictionaryResultError",
    "EncodedPrompts",
    "Example",
    "FeatureIndex",
    "FeaturePage",
    "QuantileBin",
    "TrainingCurve",
]
