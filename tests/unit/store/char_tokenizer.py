"""A tokenizer for tiny random models in the store's tests: one token per character."""

from __future__ import annotations


class CharTokenizer:
    """One token per character (id = 2 + code point mod 250), BOS = 1, pad = EOS = 0."""

    pad_token_id = 0
    eos_token_id = 0
    all_special_ids = (0, 1)

    def __len__(self) -> int:
        return 252

    def __call__(self, text, add_special_tokens=True):
        if isinstance(text, list):
            return {"input_ids": [self(t, add_special_tokens)["input_ids"] for t in text]}
        return {"input_ids": [1] * add_special_tokens + [2 + ord(ch) % 250 for ch in text]}

    def decode(self, ids, skip_special_tokens=False):
        return "".join(chr(i - 2) if i >= 2 else "" for i in ids)

    def get_vocab(self) -> dict[str, int]:
        return {chr(i): i + 2 for i in range(250)}
