"""Counterfactual datasets: (base, source) pairs with the high-level model's interchange answer.

1. Draw a base and a source example from the task's sampler (one seeded `random.Random`).
2. The label is the slot, among the base's candidate tokens, of the causal model's output on the
   base with the chosen variables set to their values on the source
   (`CausalModel.counterfactual`); ``base_labels`` is the slot of its plain output on the base.
3. With ``filter_correct`` (the default) keep only pairs where the network already gives the
   high-level model's answer on the base and on the source: IIA asks whether the network
   computes the answer the way the causal model says, which only means something where it
   computes the answer at all. The number dropped is kept, so the filter is visible.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch

from interplab.core.model import Model
from interplab.progress import progress_bar
from interplab.provenance import data_hash
from interplab.results.causal_abstraction import AbstractionError
from interplab.techniques.causal_abstraction.causal_model import (
    AbstractionTask,
    Example,
    Prompt,
    Token,
)


@dataclass(frozen=True)
class CounterfactualDataset:
    """Pairs of token sequences (base, source), each base's candidate next tokens ``[n, C]``, and
    the slot the high-level model answers after the interchange (``labels``) and without it
    (``base_labels``)."""

    task: str
    variables: tuple[str, ...]
    base_prompts: list[str]
    source_prompts: list[str]
    base_ids: list[list[int]]
    source_ids: list[list[int]]
    candidates: np.ndarray  # [n, C] int64 token ids
    labels: np.ndarray  # [n] counterfactual slot
    base_labels: np.ndarray  # [n] slot of the plain output on the base
    slots: tuple[str, ...]
    seed: int
    drawn: int  # pairs drawn in all
    dropped: int  # pairs dropped because the network got the base or the source wrong

    def __post_init__(self) -> None:
        n = len(self.base_ids)
        sizes = {
            len(self.source_ids),
            len(self.base_prompts),
            len(self.source_prompts),
            len(self.candidates),
            len(self.labels),
            len(self.base_labels),
        }
        if sizes != {n}:
            raise AbstractionError(f"a counterfactual dataset's fields differ in length: {sizes}")

    @property
    def n(self) -> int:
        return len(self.base_ids)

    @property
    def n_candidates(self) -> int:
        return int(self.candidates.shape[1])

    @property
    def sha256(self) -> str:
        return data_hash(
            {
                "base": self.base_ids,
                "source": self.source_ids,
                "candidates": self.candidates,
                "labels": self.labels,
                "variables": self.variables,
            }
        )

    def subset(self, rows: Sequence[int] | np.ndarray) -> CounterfactualDataset:
        """Returns the pairs at ``rows``, in that order."""
        idx = [int(i) for i in rows]
        return replace(
            self,
            base_prompts=[self.base_prompts[i] for i in idx],
            source_prompts=[self.source_prompts[i] for i in idx],
            base_ids=[self.base_ids[i] for i in idx],
            source_ids=[self.source_ids[i] for i in idx],
            candidates=self.candidates[idx],
            labels=self.labels[idx],
            base_labels=self.base_labels[idx],
        )

    def split(
        self, test_fraction: float = 0.3, *, seed: int = 0
    ) -> tuple[CounterfactualDataset, CounterfactualDataset]:
        """Returns (train, test): a seeded random split with ``test_fraction`` of pairs held out."""
        if not 0.0 < test_fraction < 1.0:
            raise AbstractionError(
                f"test_fraction must lie strictly between 0 and 1, got {test_fraction}"
            )
        n_test = round(self.n * test_fraction)
        if n_test < 2 or self.n - n_test < 2:
            raise AbstractionError(
                f"{self.n} pairs cannot be split into train and test of 2+ pairs each at "
                f"test_fraction={test_fraction}; build a larger dataset"
            )
        order = np.random.default_rng(seed).permutation(self.n)
        return self.subset(order[n_test:]), self.subset(order[:n_test])

    def with_labels(self, labels: np.ndarray) -> CounterfactualDataset:
        """Returns the same pairs with other labels (the control task's)."""
        labels = np.asarray(labels, dtype=np.int64)
        if labels.shape != self.labels.shape:
            raise AbstractionError(
                f"labels must have shape {self.labels.shape}, got {labels.shape}"
            )
        return replace(self, labels=labels)

    def shuffled_labels(self, seed: int = 0) -> np.ndarray:
        """Returns the labels permuted across pairs (seeded): the control task keeps the label
        frequencies and breaks their link to the pair."""
        return self.labels[np.random.default_rng(seed).permutation(self.n)]


@torch.no_grad()
def counterfactual_dataset(
    model: Model,
    task: AbstractionTask,
    variables: Sequence[str] | str,
    *,
    n: int = 256,
    seed: int = 0,
    filter_correct: bool = True,
    batch_size: int = 64,
    progress: bool = True,
) -> CounterfactualDataset:
    """Returns ``n`` (base, source) pairs drawn from ``task`` with the causal model's answer after
    interchanging ``variables``; with ``filter_correct`` only pairs the network answers right on
    both inputs (drawing up to 20 × n pairs)."""
    names = task.causal_model.check_variables(variables)
    if n < 2:
        raise AbstractionError(f"n must be at least 2 pairs, got {n}")
    rng = random.Random(seed)
    kept: list[tuple] = []
    drawn = dropped = 0
    with progress_bar(n, f"counterfactual pairs ({task.name})", progress) as advance:
        while len(kept) < n:
            if drawn >= 20 * n:
                raise AbstractionError(
                    f"only {len(kept)} of {drawn} drawn pairs had the network right on both base "
                    f"and source ({dropped} dropped); the model does not do task {task.name!r} "
                    "reliably (pass filter_correct=False to keep every pair)"
                )
            want = n - len(kept)
            batch = [_pair(model, task, names, rng) for _ in range(max(want + want // 2, 4))]
            drawn += len(batch)
            if filter_correct:
                base_ok = _answers(model, [b[1] for b in batch], [b[3] for b in batch], batch_size)
                src_ok = _answers(model, [b[2] for b in batch], [b[4] for b in batch], batch_size)
                good = [
                    b
                    for b, p, q in zip(batch, base_ok, src_ok, strict=True)
                    if p == b[6] and q == b[7]
                ]
                dropped += len(batch) - len(good)
                batch = good
            batch = batch[:want]
            kept += batch
            advance(len(batch))
    decode = _decoder(model)
    return CounterfactualDataset(
        task=task.name,
        variables=names,
        base_prompts=[k[0][0] if isinstance(k[0][0], str) else decode(k[1]) for k in kept],
        source_prompts=[k[0][1] if isinstance(k[0][1], str) else decode(k[2]) for k in kept],
        base_ids=[k[1] for k in kept],
        source_ids=[k[2] for k in kept],
        candidates=np.asarray([k[3] for k in kept], dtype=np.int64),
        labels=np.asarray([k[5] for k in kept], dtype=np.int64),
        base_labels=np.asarray([k[6] for k in kept], dtype=np.int64),
        slots=tuple(task.slots),
        seed=seed,
        drawn=drawn,
        dropped=dropped,
    )


def _pair(model: Model, task: AbstractionTask, names: tuple[str, ...], rng: random.Random) -> tuple:
    """Returns ((base prompt, source prompt), base ids, source ids, base candidates, source
    candidates, counterfactual slot, base slot, source slot)."""
    base, source = task.sample(rng), task.sample(rng)
    cm = task.causal_model
    base_c = _candidate_ids(model, task, base)
    source_c = _candidate_ids(model, task, source)
    if len(base_c) != len(source_c):
        raise AbstractionError(
            f"task {task.name!r} gives {len(base_c)} candidates for one example and "
            f"{len(source_c)} for another; every example needs the same number"
        )
    label = _slot(model, task, base_c, cm.counterfactual(base, source, names), "counterfactual")
    base_label = _slot(model, task, base_c, cm.predict(base), "base")
    source_label = _slot(model, task, source_c, cm.predict(source), "source")
    bp, sp = task.prompt(base), task.prompt(source)
    return (
        (bp, sp),
        _ids(model, bp),
        _ids(model, sp),
        base_c,
        source_c,
        label,
        base_label,
        source_label,
    )


def _token(model: Model, token: Token) -> int:
    if isinstance(token, bool) or not isinstance(token, str | int | np.integer):
        raise AbstractionError(f"a candidate is a token string or id, got {token!r}")
    if isinstance(token, str):
        if model.tokenizer is None:
            raise AbstractionError(
                f"this model has no tokenizer; give candidate {token!r} as an id"
            )
        return model.token_id(token)
    if not 0 <= int(token) < model.dims.d_vocab:
        raise AbstractionError(f"candidate id {token} is outside 0..{model.dims.d_vocab - 1}")
    return int(token)


def _candidate_ids(model: Model, task: AbstractionTask, example: Example) -> list[int]:
    ids = [_token(model, t) for t in task.candidates(example)]
    if len(ids) < 2:
        raise AbstractionError(f"task {task.name!r} must give 2+ candidate tokens, got {ids}")
    if len(set(ids)) != len(ids):
        raise AbstractionError(f"task {task.name!r} gave repeated candidates {ids} for {example!r}")
    return ids


def _slot(
    model: Model, task: AbstractionTask, candidates: list[int], output: Token, what: str
) -> int:
    tid = _token(model, output)
    if tid not in candidates:
        raise AbstractionError(
            f"the {what} output {output!r} of {task.causal_model.name!r} is not among the "
            f"candidates of task {task.name!r}; candidates must include every answer"
        )
    return candidates.index(tid)


def _ids(model: Model, prompt: Prompt) -> list[int]:
    if isinstance(prompt, str):
        if model.tokenizer is None:
            raise AbstractionError("this model has no tokenizer; give prompts as token ids")
        return [int(i) for i in model.tokenize(prompt).ids[0].tolist()]
    ids = [int(i) for i in prompt]
    if not ids:
        raise AbstractionError("a prompt is empty; it needs at least one token")
    if min(ids) < 0 or max(ids) >= model.dims.d_vocab:
        raise AbstractionError(f"prompt token ids must lie in 0..{model.dims.d_vocab - 1}")
    return ids


def _decoder(model: Model):
    if model.tokenizer is None:
        return lambda ids: " ".join(str(i) for i in ids)
    return lambda ids: model.tokenizer.decode(ids)


def padded(model: Model, rows: Sequence[Sequence[int]]):
    """Returns `Tokens` of id rows, right-padded (every position index keeps its meaning)."""
    width = max(len(r) for r in rows)
    ids = torch.zeros((len(rows), width), dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(list(r), dtype=torch.long)
        mask[i, : len(r)] = 1
    return model.tokens(ids, mask)


def _answers(
    model: Model, rows: list[list[int]], candidates: list[list[int]], batch_size: int
) -> list[int]:
    """Returns the slot of the largest candidate logit at each row's last token."""
    out: list[int] = []
    for lo in range(0, len(rows), batch_size):
        toks = padded(model, rows[lo : lo + batch_size])
        logits = model.run(toks).logits
        last = logits[torch.arange(len(toks.ids)), toks.last]
        cols = torch.tensor(candidates[lo : lo + batch_size], device=last.device)
        out += last.gather(1, cols).argmax(1).tolist()
    return out


__all__ = ["CounterfactualDataset", "counterfactual_dataset", "padded"]
