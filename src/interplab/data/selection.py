"""Choosing pairs whose prompts share one token length, so that a position means one token.

Per-position patching (and any per-position grid) compares position p across examples; that is
only meaningful when every prompt has the same number of tokens. Generated tasks mix templates
of different lengths, so `same_length`:

1. tokenises each pair's clean prompt as the model sees it (special tokens included);
2. keys each pair by (group, length): generated tasks name the template and order in ``group``
   ("t00-ABBA"), and prompts of one template and order put the same role (IO, S1, S2, END) at
   the same position, while two templates of one length do not;
3. keeps the most common key (the shortest length, then the first group, on a tie);
4. returns up to ``n`` pairs with that key, in their original order, with the length, the group
   and how many pairs were looked at, so a caller can say what was kept.

The tokenizer is any Hugging Face tokenizer (it is called, nothing else).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from interplab.data.pairs import ContrastPair, PairDataset
from interplab.errors import UserError


@dataclass(frozen=True)
class SameLength:
    """Pairs of one token length: the kept pairs, their length, and how many were looked at."""

    pairs: PairDataset | list[ContrastPair]
    length: int
    drawn: int
    group: str = ""

    def __len__(self) -> int:
        return len(self.pairs)


def same_length(
    pairs: PairDataset | Sequence[ContrastPair], tokenizer: Any, n: int | None = None
) -> SameLength:
    """Returns up to ``n`` pairs (all with None) of the most common token length of their clean
    prompts; a `PairDataset` stays a `PairDataset` (its subset), a list stays a list."""
    items = list(pairs)
    if not items:
        raise UserError("no pairs to choose from")
    lengths = [len(tokenizer(p.clean, add_special_tokens=True)["input_ids"]) for p in items]
    keys = [(length, p.group) for p, length in zip(items, lengths, strict=True)]
    best = max(sorted(set(keys)), key=keys.count)
    keep = [i for i, key in enumerate(keys) if key == best][:n]
    chosen = pairs.subset(keep) if isinstance(pairs, PairDataset) else [items[i] for i in keep]
    return SameLength(chosen, best[0], len(items), best[1])


__all__ = ["SameLength", "same_length"]
