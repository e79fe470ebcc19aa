"""A tiny Llama with a character tokenizer and a cheap behaviour, importable by Ray workers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from interplab.techniques.steering import Behaviour

from helpers import tiny_model


class CharTokenizer:
    """One token per character (id = 2 + code point), BOS = 1, pad = EOS = 0."""

    pad_token_id = 0
    eos_token_id = 0

    def __call__(self, text: str, add_special_tokens: bool = True) -> dict[str, list[int]]:
        return {"input_ids": [1] * add_special_tokens + [2 + ord(ch) % 250 for ch in text]}

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False) -> str:
        return "".join(chr(int(i) - 2) if i >= 2 else "" for i in ids)


def char_llama() -> Any:
    """The tiny random Llama of `helpers.tiny_model` with `CharTokenizer` (reads text)."""
    model = tiny_model("llama")
    model.tokenizer = CharTokenizer()
    return model


def vowels(model: Any, texts: Sequence[str]) -> np.ndarray:
    """A stand-in behaviour score: the share of vowels in each continuation."""
    del model
    return np.array([sum(c in "aeiou" for c in t) / max(len(t), 1) for t in texts])


VOWELS = Behaviour("vowels", vowels, "Vowels: ", "share of vowels")
