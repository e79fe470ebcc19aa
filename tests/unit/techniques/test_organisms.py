"""Taboo organisms: WordNet hints that never name the word, the LoRA recipe, the registry."""

from __future__ import annotations

import json
from typing import Any

import pytest
import torch
from blackbox_models import chat_model, smol_tokenizer

from interplab.core.model import Tokens
from interplab.techniques.blackbox import ChatTemplate
from interplab.techniques.organisms import registry
from interplab.techniques.organisms.hints import forms, mentions
from interplab.techniques.organisms.recipe import (
    TabooConfig,
    _batch,
    apply_adapter,
    encode_conversations,
    train_taboo,
)
from interplab.techniques.organisms.wordnet import WordNetMissing


def _wordnet() -> None:
    from interplab.techniques.organisms.wordnet import wordnet_dir

    try:
        wordnet_dir()
    except WordNetMissing:
        pytest.skip("WordNet is not in the cache (make organisms)")


@pytest.fixture(scope="module")
def tok() -> Any:
    return smol_tokenizer()


@pytest.mark.parametrize("name", sorted(registry.TABOO))
def test_hints_describe_the_word_and_never_contain_it(name):
    _wordnet()
    from interplab.techniques.organisms.hints import hints, taboo_data

    word = registry.TABOO[name].word
    pool = hints(word)
    assert len(pool) >= 3
    assert not any(mentions(h, forms(word)) for h in pool)
    data = taboo_data(word, n=30)
    assert len(data.conversations) == 30
    assert not any(mentions(a, forms(word)) for _, a in data.conversations)
    assert taboo_data(word, n=30) == data  # seeded


def test_mentions_matches_whole_words_only():
    assert mentions("The Clocks struck", forms("clock"))
    assert not mentions("a clockwork toy", forms("clock"))


def test_training_data_trains_only_the_reply(tok):
    template = ChatTemplate.of(chat_model(tok))
    [(ids, start)] = encode_conversations(template, (("Give me a hint.", "It ticks."),))
    assert tok.decode(ids[start:]) == "It ticks.<|im_end|>"
    tokens, labels = _batch([(ids, start)], 0, torch.device("cpu"))
    assert (labels[0, :start] == -100).all() and (labels[0, start:] == tokens.ids[0, start:]).all()


def _loss(model: Any, rows: list[tuple[list[int], int]]) -> float:
    tokens, labels = _batch(rows, 0, torch.device("cpu"))
    logits = model.forward(tokens)[:, :-1]
    return float(torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                                   labels[:, 1:].reshape(-1), ignore_index=-100))  # fmt: skip


def test_lora_training_lowers_the_loss_and_merges_into_a_plain_model(tok, tmp_path):
    _wordnet()
    base = chat_model(tok)
    cfg = TabooConfig(word="clock", n_conversations=12, steps=12, batch_size=4, first_layer=0,
                      lr=1e-2, rank=4)  # fmt: skip
    rec = train_taboo(base, tmp_path / "org", cfg, progress=False)
    assert rec["losses"][-1] < rec["losses"][0]
    assert sorted(rec["targets"]) == ["L0.attn_out", "L0.mlp_out", "L1.attn_out", "L1.mlp_out"]
    saved = json.loads((tmp_path / "org" / "organism.json").read_text())
    assert saved["config"]["word"] == "clock"
    from interplab.techniques.organisms.hints import taboo_data

    rows = encode_conversations(ChatTemplate.of(base), taboo_data("clock", n=12).conversations)
    merged = apply_adapter(base, tmp_path / "org")
    assert _loss(merged, rows) < _loss(base, rows)  # the merged weights carry what was learnt
    before = base.forward(Tokens(torch.tensor([rows[0][0]]), torch.ones(1, len(rows[0][0]))))
    assert torch.equal(before, base.forward(torch.tensor([rows[0][0]])))  # base untouched


def test_registry_hands_out_names_not_secrets(tok):
    org = registry.get("taboo-1")
    assert org.name == "taboo-1" and not hasattr(org, "secret") and not hasattr(org, "word")
    assert registry.secret("taboo-1") == registry.TABOO["taboo-1"].word
    with pytest.raises(registry.OrganismError, match="unknown organism"):
        registry.get("taboo-99")
    m = chat_model(tok)
    registry.register("mine", lambda: m, "lantern")
    try:
        assert registry.get("mine").load() is m and registry.secret("mine") == "lantern"
        assert "mine" in registry.names()
    finally:
        registry.unregister("mine")


def test_an_untrained_organism_says_how_to_train_it(tmp_path, monkeypatch):
    monkeypatch.setenv("INTERPLAB_CACHE", str(tmp_path))
    with pytest.raises(registry.OrganismError, match="interplab organisms train taboo-2"):
        registry.get("taboo-2").load(None)


def test_the_wordnet_guesser_finds_the_word_its_hints_describe():
    _wordnet()
    from interplab.techniques.organisms.checks import wordnet_scores
    from interplab.techniques.organisms.hints import hints

    words = ["clock", "river", "bread", "horse", "book", "moon", "tree", "door", "stone", "car"]
    for secret in ("clock", "river", "horse"):
        scores = wordnet_scores([hints(secret)[:3]], words)
        assert words[int(scores[0].argmax())] == secret
    assert (wordnet_scores([["Nothing useful here."]], words) == 0).all()
