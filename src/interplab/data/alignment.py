"""Return token-level checks that a contrast-pair dataset is fit for activation patching.

Patching copies activations position by position from one prompt's forward into the other's, so
the clean and corrupt prompts must tokenise to the same number of tokens; padding one side would
silently shift every position after the pad. And a logit-difference metric reads one logit per
answer, so each answer must be exactly one token.

1. Tokenise without special tokens (`add_special_tokens=False`): a BOS, where a tokenizer adds
   one, is the same on both sides and says nothing about alignment.
2. `check_aligned` raises `AlignmentError` on the first pair whose lengths differ, naming the pair
   index, both token lists (decoded, so a reader sees where they diverge) and the reason.
3. `check_single_token_answers` raises on the first pair whose answer or wrong answer is not a
   single token, naming the pieces it splits into.
4. `single_token_id` returns the id of a string that must be one token; generators use it, and
   `token_length`, to filter candidate names and subjects before they build pairs.

The tokenizer is any Hugging Face `PreTrainedTokenizerBase`; only `encode` and `decode` are used.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from interplab.errors import UserError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from interplab.data.pairs import ContrastPair


class AlignmentError(UserError):
    """Raised when a pair's prompts tokenise to different lengths or an answer is multi-token."""


def encode(tokenizer: PreTrainedTokenizerBase, text: str) -> list[int]:
    """Return the token ids of `text` without special tokens."""
    return list(tokenizer.encode(text, add_special_tokens=False))


def token_length(tokenizer: PreTrainedTokenizerBase, text: str) -> int:
    """Return how many tokens `text` is, without special tokens."""
    return len(encode(tokenizer, text))


def single_token_id(tokenizer: PreTrainedTokenizerBase, text: str) -> int | None:
    """Return the id of `text` if it is exactly one token, else None."""
    ids = encode(tokenizer, text)
    return ids[0] if len(ids) == 1 else None


def check_aligned(pairs: Iterable[ContrastPair], tokenizer: PreTrainedTokenizerBase) -> int:
    """Return the number of pairs checked; raise `AlignmentError` on the first misaligned pair."""
    count = 0
    for index, pair in enumerate(pairs):
        clean, corrupt = encode(tokenizer, pair.clean), encode(tokenizer, pair.corrupt)
        if len(clean) != len(corrupt):
            raise AlignmentError(
                f"pair {index}: clean and corrupt prompts tokenise to different lengths "
                f"({len(clean)} vs {len(corrupt)} tokens), so positions cannot be patched "
                f"one-to-one; interplab never pads to hide this.\n"
                f"  clean   {pair.clean!r}\n    -> {_pieces(tokenizer, clean)}\n"
                f"  corrupt {pair.corrupt!r}\n    -> {_pieces(tokenizer, corrupt)}"
            )
        count += 1
    return count


def check_single_token_answers(
    pairs: Iterable[ContrastPair], tokenizer: PreTrainedTokenizerBase
) -> int:
    """Return the number of pairs checked; raise if an answer or wrong answer is multi-token."""
    count = 0
    for index, pair in enumerate(pairs):
        for field_name in ("answer", "wrong_answer"):
            text = getattr(pair, field_name)
            ids = encode(tokenizer, text)
            if len(ids) != 1:
                raise AlignmentError(
                    f"pair {index}: {field_name} {text!r} is {len(ids)} tokens "
                    f"{_pieces(tokenizer, ids)}, but a logit-difference metric needs exactly one; "
                    "pick a single-token answer (mind the leading space)"
                )
        count += 1
    return count


def _pieces(tokenizer: PreTrainedTokenizerBase, ids: list[int]) -> str:
    """Return `ids` and their one-by-one decoded text, for error messages."""
    return f"{ids} = {[tokenizer.decode([token]) for token in ids]}"
