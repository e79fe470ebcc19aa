"""Induction data: repeated random tokens and aligned text pairs."""

from __future__ import annotations

from typing import Any

import numpy as np

from interplab.data import (
    check_aligned,
    check_single_token_answers,
    induction_pairs,
    induction_tokens,
)


def test_tokens_repeat_and_avoid_special_ids(tokenizer: Any) -> None:
    tokens = induction_tokens(tokenizer, n=8, seq_len=20, seed=3)
    assert tokens.shape == (8, 40) and tokens.dtype == np.int64
    np.testing.assert_array_equal(tokens[:, :20], tokens[:, 20:])
    assert not set(tokens.ravel().tolist()) & set(tokenizer.all_special_ids)
    np.testing.assert_array_equal(tokens, induction_tokens(tokenizer, n=8, seq_len=20, seed=3))
    assert not np.array_equal(tokens, induction_tokens(tokenizer, n=8, seq_len=20, seed=4))


def test_pairs_repeat_the_clean_sequence_and_align(tokenizer: Any) -> None:
    dataset = induction_pairs(tokenizer, n=30, seq_len=8, seed=0)
    assert check_aligned(dataset, tokenizer) == 30
    assert check_single_token_answers(dataset, tokenizer) == 30
    for pair in dataset:
        words = pair.clean.split(" ")[1:]
        first, second = words[:8], words[8:]
        assert second == first[:-1] and pair.answer == " " + first[-1]
        corrupt_words = pair.corrupt.split(" ")[1:]
        assert corrupt_words[8:] == second
        assert not set(corrupt_words[:8]) & set(first)
        assert pair.wrong_answer == " " + corrupt_words[7]
    assert induction_pairs(tokenizer, n=30, seq_len=8, seed=1).hash != dataset.hash
