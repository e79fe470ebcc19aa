"""IOI contrast pairs: structure, corruptions, alignment and seeding."""

from __future__ import annotations

import re
from typing import Any

import pytest

from interplab.data import (
    IOI_TEMPLATES,
    IOIConfig,
    PairDataset,
    check_aligned,
    check_single_token_answers,
    ioi_pairs,
)

_WORD = re.compile(r"[A-Za-z]+")


def _names_in_order(prompt: str, names: set[str]) -> list[str]:
    return [word for word in _WORD.findall(prompt) if word in names]


@pytest.fixture(scope="module")
def datasets(tokenizer: Any) -> dict[str, PairDataset]:
    return {c: ioi_pairs(tokenizer, n=300, corruption=c, seed=1) for c in ("swap", "abc")}


def test_at_least_eight_templates() -> None:
    assert len(IOI_TEMPLATES) >= 8


@pytest.mark.parametrize("corruption", ["swap", "abc"])
def test_indirect_object_is_the_name_not_repeated(
    datasets: dict[str, PairDataset], corruption: str
) -> None:
    dataset = datasets[corruption]
    for pair in dataset:
        io, s = pair.answer.strip(), pair.wrong_answer.strip()
        names = _names_in_order(pair.clean, {io, s})
        assert names.count(io) == 1 and names.count(s) == 2, pair
        order = pair.group.split("-")[1]
        # ABBA: "IO and S ..., S gave to"; BABA: "S and IO ..., S gave to".
        assert names == ([io, s, s] if order == "ABBA" else [s, io, s]), pair
        assert pair.answer.startswith(" ") and pair.wrong_answer.startswith(" ")


def test_orders_are_balanced_and_templates_varied(datasets: dict[str, PairDataset]) -> None:
    groups = [pair.group for pair in datasets["abc"]]
    assert sum(g.endswith("ABBA") for g in groups) == sum(g.endswith("BABA") for g in groups)
    assert len({g.split("-")[0] for g in groups}) >= 8


def test_swap_exchanges_the_two_names(datasets: dict[str, PairDataset]) -> None:
    for pair in datasets["swap"]:
        io, s = pair.answer.strip(), pair.wrong_answer.strip()
        exchange = {io: s, s: io}
        swapped = _WORD.sub(lambda m, x=exchange: x.get(m.group(0), m.group(0)), pair.clean)
        assert pair.corrupt == swapped


def test_abc_uses_three_other_distinct_names(datasets: dict[str, PairDataset]) -> None:
    for pair in datasets["abc"]:
        io, s = pair.answer.strip(), pair.wrong_answer.strip()
        clean_words, corrupt_words = _WORD.findall(pair.clean), _WORD.findall(pair.corrupt)
        changed = [(a, b) for a, b in zip(clean_words, corrupt_words, strict=True) if a != b]
        new_names = [b for _, b in changed]
        assert [a for a, _ in changed] == _names_in_order(pair.clean, {io, s})
        assert len(set(new_names)) == 3 and not {io, s} & set(new_names)


@pytest.mark.parametrize("corruption", ["swap", "abc"])
def test_every_pair_aligns_with_single_token_answers(
    datasets: dict[str, PairDataset], tokenizer: Any, corruption: str
) -> None:
    dataset = datasets[corruption]
    assert check_aligned(dataset, tokenizer) == len(dataset) == 300
    assert check_single_token_answers(dataset, tokenizer) == 300
    assert dataset.dropped >= 0 and dataset.params["corruption"] == corruption


def test_seed_reproduces_and_different_seeds_differ(tokenizer: Any) -> None:
    first = ioi_pairs(tokenizer, n=50, seed=7)
    assert ioi_pairs(tokenizer, n=50, seed=7).hash == first.hash
    assert ioi_pairs(tokenizer, n=50, seed=8).hash != first.hash
    assert first.seed == 7


def test_single_order_is_respected(tokenizer: Any) -> None:
    dataset = ioi_pairs(tokenizer, n=20, order="BABA")
    assert all(pair.group.endswith("BABA") for pair in dataset)


def test_invalid_config_is_rejected() -> None:
    with pytest.raises(ValueError, match="corruption must be one of"):
        IOIConfig(corruption="shuffle")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n must be"):
        IOIConfig(n=0)
