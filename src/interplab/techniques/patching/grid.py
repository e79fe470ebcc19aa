"""What the patching techniques share: their inputs (aligned token pairs), the cells of a grid,
and the one forward that reads the metric at each prompt's answer position.

1. `prepare` tokenises the clean and corrupt prompt of every pair and checks that they align
   token by token (a clear error names the first pair that does not) and that answers are single
   tokens; with ``per="position"`` every prompt must have one length, so that a position means
   the same token in every example.
2. `cells` enumerates a component's cells (layer, head for ``attn.z``, position with
   ``per="position"``) in grid order; `grid_shape` gives the grid ``[n, layer, (head), (pos)]``.
3. `answer_logits` runs whole forwards through `Model.forward` (padded batches keep their mask)
   and keeps each row's answer position; `max_rows` sizes batches under a memory budget.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from interplab.core.memory import resolve_budget
from interplab.core.model import Model, Tokens
from interplab.data.alignment import check_aligned
from interplab.data.pairs import ContrastPair, PairDataset
from interplab.provenance import Provenance
from interplab.results.patching import PatchingError
from interplab.sites import Dimensions


@dataclass(frozen=True)
class TokenPairs:
    """Aligned clean/corrupt token ids ``[n, pos]`` with answer and wrong-answer ids ``[n]``.

    Use it for models without a tokenizer, or to fix the exact tokens; ``mask`` (``[n, pos]``,
    1 for real tokens, right-padded) is shared by both sides because pairs align token by token.
    """

    clean: Tensor
    corrupt: Tensor
    answer: Tensor
    wrong: Tensor
    mask: Tensor | None = None

    def __post_init__(self) -> None:
        if self.clean.ndim != 2 or self.clean.shape != self.corrupt.shape:
            raise PatchingError(
                f"clean and corrupt ids must both be [n, pos] of one shape, got "
                f"{tuple(self.clean.shape)} and {tuple(self.corrupt.shape)}"
            )
        n = self.clean.shape[0]
        if self.answer.shape != (n,) or self.wrong.shape != (n,):
            raise PatchingError(f"answer and wrong must be [{n}] token ids, one per pair")
        same = (self.answer == self.wrong).nonzero()
        if len(same):
            raise PatchingError(f"pair {int(same[0, 0])}: answer and wrong answer are one token")
        if self.mask is not None and self.mask.shape != self.clean.shape:
            raise PatchingError(
                f"mask must be {tuple(self.clean.shape)}, got {tuple(self.mask.shape)}"
            )

    @property
    def n(self) -> int:
        return int(self.clean.shape[0])

    @property
    def lengths(self) -> Tensor:
        if self.mask is None:
            return torch.full((self.n,), self.clean.shape[1], dtype=torch.long)
        return self.mask.sum(1).long()

    def select(self, rows: Tensor) -> TokenPairs:
        """Returns the pairs at ``rows`` (a long index ``[k]``), in that order."""
        return TokenPairs(
            self.clean[rows],
            self.corrupt[rows],
            self.answer[rows],
            self.wrong[rows],
            None if self.mask is None else self.mask[rows],
        )

    def tokens(self, model: Model, side: str = "clean") -> Tokens:
        """Returns one side's ids (``"clean"`` or ``"corrupt"``) with the mask as a model batch."""
        return model.tokens(self.clean if side == "clean" else self.corrupt, self.mask)


PairsLike = PairDataset | Sequence[ContrastPair] | TokenPairs


@dataclass(frozen=True)
class Inputs:
    """Prepared inputs: token pairs plus what a result records about them."""

    pairs: TokenPairs
    clean_prompts: list[str] | None
    corrupt_prompts: list[str] | None
    answers: list[str]
    wrong_answers: list[str]
    tokens: list[list[str]]  # clean tokens per example, for labels
    data_sha256: str

    def recorded(
        self, technique: str, model: Model, config: Any, seed: int | None = None
    ) -> dict[str, Any]:
        """Returns the fields every patching result records about its inputs (tokens, prompts,
        answers) and the provenance of ``technique`` run with ``config`` on ``model``."""
        return {
            "tokens": self.tokens,
            "clean_prompts": self.clean_prompts,
            "corrupt_prompts": self.corrupt_prompts,
            "answers": self.answers,
            "wrong_answers": self.wrong_answers,
            "provenance": Provenance(
                technique=technique,
                model=model.info.to_dict(),
                config=config if isinstance(config, dict) else config.to_dict(),
                data_sha256=self.data_sha256,
                seed=seed if seed is not None else getattr(config, "seed", None),
            ),
        }


def prepare(model: Model, pairs: PairsLike, per: str = "all") -> Inputs:
    """Returns tokenised, checked inputs; raises naming the first misaligned pair, or, with
    ``per="position"``, when prompts differ in length (a position must mean one token)."""
    inputs = _prepare(model, pairs)
    lengths = sorted(set(inputs.pairs.lengths.tolist()))
    if per == "position" and len(lengths) > 1:
        raise PatchingError(
            f"per='position' needs every prompt to have the same token length so that a position "
            f"means the same token in every example; these have lengths {lengths}. Use pairs "
            "from one template (interplab.data.selection.same_length picks them), or per='all'"
        )
    return inputs


def _prepare(model: Model, pairs: PairsLike) -> Inputs:
    from interplab.provenance import data_hash

    if isinstance(pairs, TokenPairs):
        tp = pairs
        ids = tp.clean.tolist()
        tokens = [
            [_decode(model, t) for t in row[: int(n)]]
            for row, n in zip(ids, tp.lengths, strict=True)
        ]
        answers = [_decode(model, int(t)) for t in tp.answer]
        wrongs = [_decode(model, int(t)) for t in tp.wrong]
        digest = data_hash(
            {"clean": tp.clean, "corrupt": tp.corrupt, "answer": tp.answer, "wrong": tp.wrong}
        )
        return Inputs(tp, None, None, answers, wrongs, tokens, digest)
    pair_list = list(pairs)
    if not pair_list:
        raise PatchingError("no pairs given")
    if model.tokenizer is None:
        raise PatchingError("this model has no tokenizer; pass TokenPairs of token ids instead")
    check_aligned(pair_list, model.tokenizer)
    clean = model.tokenize([p.clean for p in pair_list])
    corrupt = model.tokenize([p.corrupt for p in pair_list])
    if not torch.equal(clean.mask, corrupt.mask):  # special tokens could still differ
        bad = int((clean.mask != corrupt.mask).any(1).nonzero()[0, 0])
        raise PatchingError(f"pair {bad}: clean and corrupt tokenise to different lengths")
    answer = torch.tensor([model.token_id(p.answer) for p in pair_list])
    wrong = torch.tensor([model.token_id(p.wrong_answer) for p in pair_list])
    tp = TokenPairs(clean.ids, corrupt.ids, answer, wrong, clean.mask if clean.padded else None)
    tokens = [
        model.to_str_tokens(row[: int(n)]) for row, n in zip(tp.clean, tp.lengths, strict=True)
    ]
    return Inputs(
        tp,
        [p.clean for p in pair_list],
        [p.corrupt for p in pair_list],
        [p.answer for p in pair_list],
        [p.wrong_answer for p in pair_list],
        tokens,
        data_hash([p.to_dict() for p in pair_list]),
    )


def _decode(model: Model, token: int) -> str:
    return model.tokenizer.decode([token]) if model.tokenizer is not None else f"<{token}>"


def grid_shape(component: str, per: str, n: int, dims: Dimensions, length: int) -> tuple[int, ...]:
    """Returns the grid's shape ``[n, layer, (head), (pos)]``."""
    shape: tuple[int, ...] = (n, dims.n_layers)
    if component == "attn.z":
        shape += (dims.n_heads,)
    if per == "position":
        shape += (length,)
    return shape


def cells(
    comp: str, per: str, n_layers: int, n_heads: int, length: int
) -> Iterator[tuple[tuple[int, ...], int, int | None, int | None]]:
    """Yields (grid index without the example axis, layer, head, position) of every cell."""
    heads: list[int | None] = list(range(n_heads)) if comp == "attn.z" else [None]
    positions: list[int | None] = list(range(length)) if per == "position" else [None]
    for layer in range(n_layers):
        for h in heads:
            for p in positions:
                idx = (layer,) + ((h,) if h is not None else ()) + ((p,) if p is not None else ())
                yield idx, layer, h, p


def answer_logits(model: Model, tokens: Tokens, answer_pos: Tensor) -> Tensor:
    """Returns the logits ``[n, vocab]`` at each row's answer position (interventions active in
    `Model.intervene` apply)."""
    logits = model.forward(tokens)
    return logits[torch.arange(logits.shape[0], device=logits.device), answer_pos.to(logits.device)]


def max_rows(model: Model, q: int, length: int, budget_mb: float | str) -> int:
    """Returns how many rows of ``q`` query positions over ``length`` keys fit the budget (MiB,
    or ``"auto"``: a share of the device's free memory, `interplab.core.memory`): a layer's
    activations, the copied keys and values, the attention scores."""
    budget_mb = resolve_budget(budget_mb, model.device)
    d = model.dims
    per_row = 4 * (
        q * (8 * d.d_model + 4 * d.d_mlp + 3 * d.n_heads * length)
        + 4 * d.n_kv_heads * length * d.d_head
    )
    return max(1, int(budget_mb * 2**20 // per_row))


__all__ = [
    "Inputs",
    "PairsLike",
    "TokenPairs",
    "answer_logits",
    "cells",
    "grid_shape",
    "max_rows",
    "prepare",
]
