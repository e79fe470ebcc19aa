"""Black-box results: sampled elicitations, chain-of-thought resampling, prompt-variation sweeps.

Every result keeps each sample (its prompt, text, length, log-probability), so a summary can be
recomputed and a reader can see the samples behind a rate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from interplab.provenance import Provenance
from interplab.results.base import Result
from interplab.stats import Summary, summarize

ELICITATION_METHODS: tuple[str, ...] = (
    "direct",
    "prefill",
    "persona",
    "high_temperature",
    "many_shot",
)


@dataclass(frozen=True)
class ElicitationResult(Result):
    """Samples from one elicitation method: per sample its prompt, text and whether it matched.

    ``matches[i]`` says whether sample ``i`` matched ``pattern`` (a regular expression, searched
    case-insensitively in prefill + text); without a pattern every entry is False.
    """

    technique = "elicitation"

    method: str
    prompts: list[str]  # the rendered chat prompts (prefill included)
    prefills: list[str]  # the text forced into each prompt's open turn ("" if none)
    prompt_index: np.ndarray  # [n_samples] which prompt each sample continues
    texts: list[str]
    n_tokens: np.ndarray  # [n_samples]
    finished: np.ndarray  # [n_samples] bool: ended its turn before max_new_tokens
    logprob: np.ndarray  # [n_samples] summed log-probability at temperature 1
    pattern: str | None
    matches: np.ndarray  # [n_samples] bool
    provenance: Provenance

    @property
    def n(self) -> int:
        return len(self.texts)

    def summary(self, *, seed: int = 0) -> Summary:
        """Returns the match rate with a bootstrap CI over samples (whole prompts resampled when
        there are several); without a pattern, the mean log-probability per token."""
        groups = self.prompt_index if len(self.prompts) > 1 else None
        if self.pattern is not None:
            values = self.matches.astype(np.float64)
        else:
            values = self.logprob / np.maximum(self.n_tokens, 1)
        return summarize(values, seed=seed, groups=groups)

    def matching(self) -> list[str]:
        """Returns the texts of the samples that matched the pattern."""
        return [t for t, m in zip(self.texts, self.matches, strict=True) if m]


@dataclass(frozen=True)
class ResamplingResult(Result):
    """Thought-anchor resampling: per sentence of a trace, answers when it is kept or replaced.

    Row ``i`` of the ``[n_sentences + 1, n_resamples]`` arrays holds the resamples drawn from just
    before sentence ``i`` (row ``n_sentences``: the whole trace kept, which reaches its own answer). ``importance[i]`` is the
    match rate with sentence ``i`` kept (row ``i + 1``, all resamples) minus the rate with it
    replaced by a different sentence (row ``i``, resamples whose first sentence is ``different``).
    """

    technique = "thought_anchors"

    prompt: str
    trace: str
    sentences: list[str]
    answer: str  # the original trace's final answer (what matches compare to)
    replacements: list[list[str]]  # [n_sentences + 1][n_resamples] first new sentence
    answers: list[list[str]]  # [n_sentences + 1][n_resamples] extracted answer ("" if none)
    different: np.ndarray  # [n_sentences + 1, n_resamples] bool
    same_answer: np.ndarray  # [n_sentences + 1, n_resamples] bool
    importance: np.ndarray  # [n_sentences]
    ci_low: np.ndarray  # [n_sentences]
    ci_high: np.ndarray  # [n_sentences]
    p_value: np.ndarray  # [n_sentences] two-sample permutation test, kept vs replaced
    n_replaced: np.ndarray  # [n_sentences] resamples kept as different
    provenance: Provenance

    def summary(self, *, seed: int = 0) -> Summary:
        """Returns, per resampling point, the rate of resamples that reach the original answer
        (mean, CI over resamples): row ``i`` is the trace cut just before sentence ``i``."""
        return summarize(self.same_answer.T.astype(np.float64), seed=seed)


@dataclass(frozen=True)
class SweepResult(Result):
    """A prompt-variation sweep: samples per prompt variant, each matched against a pattern."""

    technique = "prompt_sweep"

    variants: list[str]  # the variant prompts (user text)
    labels: list[str]  # a short name per variant
    pattern: str
    texts: list[list[str]]  # [n_variants][n_samples]
    matches: np.ndarray  # [n_samples, n_variants] bool
    difference: np.ndarray  # [n_variants] match rate minus the reference variant's
    ci_low: np.ndarray  # [n_variants] CI of the difference (two independent samples)
    ci_high: np.ndarray
    p_value: np.ndarray  # [n_variants] two-sample permutation test against the reference
    reference: int
    provenance: Provenance

    def summary(self, *, seed: int = 0) -> Summary:
        """Returns the match rate per variant (mean, CI over samples, Holm across variants)."""
        return summarize(self.matches.astype(np.float64), seed=seed)


__all__ = ["ELICITATION_METHODS", "ElicitationResult", "ResamplingResult", "SweepResult"]
