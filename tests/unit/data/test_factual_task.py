"""Factual-recall pairs from real capital-country facts."""

from __future__ import annotations

from typing import Any

import pytest

from interplab.data import (
    FACTUAL_TEMPLATES,
    PairDataset,
    capital_pairs,
    check_aligned,
    check_single_token_answers,
    factual_pairs,
    token_length,
)


@pytest.fixture(scope="module")
def dataset(tokenizer: Any) -> PairDataset:
    return factual_pairs(tokenizer, seed=0)


def test_france_paris_is_present(dataset: PairDataset) -> None:
    france = [pair for pair in dataset if pair.clean == "The capital of France is"]
    assert len(france) == 1
    assert france[0].answer == " Paris"


def test_answers_and_wrong_answers_are_real_capitals(dataset: PairDataset) -> None:
    capital_of = {fact.country: fact.capital for fact in capital_pairs()}
    for pair in dataset:
        template = FACTUAL_TEMPLATES[int(pair.group.removeprefix("t"))]
        prefix, suffix = template.split("{country}")
        clean_country = pair.clean.removeprefix(prefix).removesuffix(suffix)
        corrupt_country = pair.corrupt.removeprefix(prefix).removesuffix(suffix)
        assert capital_of[clean_country] == pair.answer.strip()
        assert capital_of[corrupt_country] == pair.wrong_answer.strip()
        assert clean_country != corrupt_country


def test_pairs_align_and_answers_are_single_tokens(dataset: PairDataset, tokenizer: Any) -> None:
    assert check_aligned(dataset, tokenizer) == len(dataset)
    assert check_single_token_answers(dataset, tokenizer) == len(dataset)
    assert len(dataset) >= 60


def test_dropped_and_excluded_are_reported(dataset: PairDataset, tokenizer: Any) -> None:
    n_candidates = len(capital_pairs()) * len(FACTUAL_TEMPLATES)
    assert dataset.dropped == n_candidates - len(dataset)
    for country in dataset.params["excluded_countries"]:
        capital = dict((f.country, f.capital) for f in capital_pairs())[country]
        assert token_length(tokenizer, " " + capital) > 1


def test_seeds_reproduce_and_differ(dataset: PairDataset, tokenizer: Any) -> None:
    assert factual_pairs(tokenizer, seed=0).hash == dataset.hash
    assert factual_pairs(tokenizer, seed=1).hash != dataset.hash


def test_n_subsamples(tokenizer: Any) -> None:
    assert len(factual_pairs(tokenizer, n=10)) == 10
    with pytest.raises(ValueError, match="only"):
        factual_pairs(tokenizer, n=100_000)
