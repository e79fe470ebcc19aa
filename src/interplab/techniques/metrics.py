"""Metrics of a patched run, per example, read at each prompt's answer position.

Patching experiments compare one number per example across runs (Heimersheim & Nanda 2024, "How
to use and interpret activation patching", section 3):

1. ``logit_diff``: ``logit(answer) - logit(wrong_answer)``, the IOI paper's metric; linear in the
   logits, so it sees both the answer rising and the wrong answer falling.
2. ``prob``: the answer's probability (softmax over the whole vocabulary).
3. ``kl``: ``KL(clean || run)`` between the clean run's next-token distribution and this run's,
   in nats; 0 on the clean run itself, so a patch that restores the clean behaviour drives it to 0.
4. `normalised_recovery`: ``(patched - corrupt) / (clean - corrupt)`` per example: 0 means no
   effect, 1 means the patch restores the clean metric (denoising) or, when noising, that it
   moves the clean run all the way to the corrupt one. It works on numpy arrays and lives with
   the results (`interplab.results.patching`), which need no torch; it is re-exported here.

A `Metric` is a frozen value. `Metric.columns` tells a fast path which unembedding rows it needs,
so ``logit_diff`` never computes the other 49,150 logits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import torch
from torch import Tensor

from interplab.results.patching import RECOVERY_MIN_GAP, MetricError, normalised_recovery

MetricName = Literal["logit_diff", "prob", "kl"]
METRICS: tuple[str, ...] = get_args(MetricName)


@dataclass(frozen=True)
class Targets:
    """Per example: the answer and wrong-answer token ids and, for KL, the clean log-probs."""

    answer: Tensor  # [n] long
    wrong: Tensor  # [n] long
    clean_logprobs: Tensor | None = None  # [n, vocab]

    def __post_init__(self) -> None:
        if self.answer.ndim != 1 or self.answer.shape != self.wrong.shape:
            raise MetricError(
                f"answer and wrong ids must be [n] of one length, got {tuple(self.answer.shape)} "
                f"and {tuple(self.wrong.shape)}"
            )
        same = (self.answer == self.wrong).nonzero()
        if len(same):
            i = int(same[0, 0])
            raise MetricError(f"example {i}: answer and wrong answer are the same token")


@dataclass(frozen=True)
class Metric:
    """One of `METRICS`, computed per example from logits at the answer position."""

    name: MetricName = "logit_diff"

    def __post_init__(self) -> None:
        if self.name not in METRICS:
            raise MetricError(f"unknown metric {self.name!r}; valid metrics: {', '.join(METRICS)}")

    @property
    def needs_full_logits(self) -> bool:
        """Whether the metric reads the whole vocabulary (a softmax) or only target columns."""
        return self.name != "logit_diff"

    def columns(self, targets: Targets, examples: Tensor) -> Tensor:
        """Returns the vocabulary ids ``[rows, 2]`` a ``logit_diff`` needs for these rows."""
        return torch.stack([targets.answer[examples], targets.wrong[examples]], 1)

    def from_columns(self, cols: Tensor) -> Tensor:
        """Returns ``logit_diff`` from the two gathered logits ``[rows, 2]``."""
        if self.name != "logit_diff":
            raise MetricError(f"{self.name} reads the whole vocabulary, not two columns")
        return cols[:, 0] - cols[:, 1]

    def __call__(self, logits: Tensor, targets: Targets, examples: Tensor | None = None) -> Tensor:
        """Returns the metric ``[rows]`` of logits ``[rows, vocab]``; row r is example
        ``examples[r]`` (default: row i is example i)."""
        if logits.ndim != 2:
            raise MetricError(
                f"logits must be [rows, vocab] at the answer position, got {logits.ndim}-d"
            )
        rows = torch.arange(logits.shape[0], device=logits.device)
        ex = rows if examples is None else examples
        logits = logits.float()
        if self.name == "logit_diff":
            return logit_diff(logits, targets.answer[ex], targets.wrong[ex])
        if self.name == "prob":
            return target_prob(logits, targets.answer[ex])
        if targets.clean_logprobs is None:
            raise MetricError(
                "the kl metric needs the clean run's log-probs (Targets.clean_logprobs)"
            )
        return kl_from_clean(targets.clean_logprobs[ex], logits)


def logit_diff(logits: Tensor, answer: Tensor, wrong: Tensor) -> Tensor:
    """Returns ``logit(answer) - logit(wrong)`` per row of ``logits [rows, vocab]``."""
    rows = torch.arange(logits.shape[0], device=logits.device)
    return logits[rows, answer] - logits[rows, wrong]


def target_prob(logits: Tensor, answer: Tensor) -> Tensor:
    """Returns the softmax probability of ``answer`` per row of ``logits [rows, vocab]``."""
    rows = torch.arange(logits.shape[0], device=logits.device)
    return torch.softmax(logits.float(), -1)[rows, answer]


def kl_from_clean(clean_logprobs: Tensor, logits: Tensor) -> Tensor:
    """Returns ``KL(clean || run)`` in nats per row, from clean log-probs and this run's logits."""
    logp = torch.log_softmax(logits.float(), -1)
    return (clean_logprobs.exp() * (clean_logprobs - logp)).sum(-1)


__all__ = [
    "METRICS",
    "RECOVERY_MIN_GAP",
    "Metric",
    "MetricError",
    "MetricName",
    "Targets",
    "kl_from_clean",
    "logit_diff",
    "normalised_recovery",
    "target_prob",
]
