"""Return induction-task data: repeated sequences of random tokens, seeded.

Induction heads complete "[A][B] ... [A]" with "[B]" by attending to the token after the previous
occurrence of the current token (Elhage et al. 2021, "A Mathematical Framework for Transformer
Circuits"; Olsson et al. 2022, "In-context Learning and Induction Heads"). Random tokens make the
second half predictable only by copying, so loss on it measures induction alone.

`induction_tokens` works on ids directly:
1. Draw `seq_len` ids uniformly from the vocabulary minus special tokens and repeat them once,
   giving an array [batch, 2 * seq_len]; the second half is predictable only by induction.

`induction_pairs` gives the same task as text contrast pairs, for patching:
1. Build a word pool from the vocabulary: tokens that decode to a space plus 3+ lowercase letters
   and re-encode to themselves, so a string of them tokenises back to the same ids.
2. Draw a sequence A of `seq_len` distinct words. The clean prompt is A followed by A without its
   last word; the answer is that last word (what induction predicts).
3. The corrupt prompt replaces the first copy with a sequence B of other words, so the second half
   has no earlier occurrence to copy from; the wrong answer is B's last word, the token a
   position-copying (non-induction) heuristic would predict.
4. Keep a pair only if both prompts tokenise to the same length, and count the rest as dropped.
"""

from __future__ import annotations

import random
import re
from typing import TYPE_CHECKING

import numpy as np

from interplab.data.alignment import encode
from interplab.data.pairs import ContrastPair, PairDataset

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

_WORD_TOKEN = re.compile(r"^ [a-z]{3,}$")


def induction_tokens(
    tokenizer: PreTrainedTokenizerBase, n: int = 64, seq_len: int = 50, seed: int = 0
) -> np.ndarray:
    """Return int64 token ids [n, 2 * seq_len]: random non-special tokens, repeated once."""
    _check_sizes(n, seq_len)
    special = set(tokenizer.all_special_ids)
    vocabulary = np.array([i for i in range(len(tokenizer)) if i not in special], dtype=np.int64)
    rng = np.random.default_rng(seed)
    first_half = rng.choice(vocabulary, size=(n, seq_len), replace=True)
    return np.concatenate([first_half, first_half], axis=1)


def induction_pairs(
    tokenizer: PreTrainedTokenizerBase, n: int = 100, seq_len: int = 10, seed: int = 0
) -> PairDataset:
    """Return `n` aligned pairs "A A[:-1]" -> A[-1] vs "B A[:-1]" -> B[-1] of random words."""
    _check_sizes(n, seq_len)
    pool = word_token_pool(tokenizer)
    if len(pool) < 4 * seq_len:
        raise ValueError(f"only {len(pool)} clean word tokens; need at least {4 * seq_len}")
    rng = random.Random(seed)
    pairs: list[ContrastPair] = []
    dropped = 0
    while len(pairs) < n:
        if dropped > 50 * n:
            raise ValueError(f"gave up: {dropped} induction pairs failed to align")
        words = rng.sample(pool, 2 * seq_len)
        first, other = words[:seq_len], words[seq_len:]
        repeat = "".join(first[:-1])
        clean, corrupt = "".join(first) + repeat, "".join(other) + repeat
        if len(encode(tokenizer, clean)) != len(encode(tokenizer, corrupt)):
            dropped += 1
            continue
        pairs.append(ContrastPair(clean, corrupt, first[-1], other[-1], group=f"len{seq_len}"))
    params = {"n": n, "seq_len": seq_len, "pool_size": len(pool)}
    return PairDataset("induction", tuple(pairs), seed, params, dropped)


def word_token_pool(tokenizer: PreTrainedTokenizerBase) -> list[str]:
    """Return the vocabulary's " word" tokens (3+ lowercase letters) that round-trip as one token."""
    pool = []
    for token_id in range(len(tokenizer)):
        text = tokenizer.decode([token_id])
        if (
            isinstance(text, str)
            and _WORD_TOKEN.match(text)
            and encode(tokenizer, text) == [token_id]
        ):
            pool.append(text)
    return sorted(pool)


def _check_sizes(n: int, seq_len: int) -> None:
    """Raise if the batch or sequence size is not positive (seq_len needs a repeat to predict)."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if seq_len < 2:
        raise ValueError(f"seq_len must be >= 2, got {seq_len}")
