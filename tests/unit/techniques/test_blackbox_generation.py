"""Batched sampling with a shared prompt cache, checked against plain forwards and HF generate."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from blackbox_models import chat_model, smol_tokenizer

from interplab.configs import ConfigError
from interplab.techniques.blackbox import SamplingConfig, pick, sample
from interplab.techniques.blackbox.elicitation import elicit

from helpers import tiny_model


@pytest.fixture(scope="module")
def tok() -> Any:
    return smol_tokenizer()


@pytest.fixture(scope="module")
def model(tok: Any):
    return chat_model(tok)


PROMPT = [1, 520, 9531, 198, 5965, 4911, 314, 253]


def test_cached_greedy_decoding_equals_hf_generate(model):
    out = sample(model, PROMPT, SamplingConfig(n=3, max_new_tokens=12, temperature=0))
    assert out.engine == "prefix-cache"
    ref = model.generate(model.tokenizer.decode(PROMPT), max_new_tokens=12)
    ref_ids = ref.ids[0, len(PROMPT) :].tolist()
    stop = ref_ids.index(2) if 2 in ref_ids else len(ref_ids)
    assert ref.ids[0, : len(PROMPT)].tolist() == PROMPT
    for row in out.ids:
        assert row == ref_ids[:stop]


def test_cached_and_plain_engines_agree_on_samples_and_log_probabilities(model, monkeypatch):
    cfg = SamplingConfig(n=5, max_new_tokens=10, temperature=1.0, seed=3, batch_size=5)
    cached = sample(model, PROMPT, cfg)
    monkeypatch.setattr(type(model), "supports_partial", lambda self, tokens=None: False)
    plain = sample(model, PROMPT, cfg)
    assert plain.engine == "plain"
    assert cached.ids == plain.ids
    np.testing.assert_allclose(cached.logprob, plain.logprob, rtol=1e-4, atol=1e-4)


def test_log_probability_is_the_sum_of_the_models_token_log_probabilities(model):
    out = sample(model, PROMPT, SamplingConfig(n=2, max_new_tokens=6, seed=1))
    for row, lp, done in zip(out.ids, out.logprob, out.finished, strict=True):
        full = torch.tensor([PROMPT + row + ([2] if done else [])])
        logp = model.forward(full)[0].log_softmax(-1)
        want = sum(
            float(logp[len(PROMPT) - 1 + j, t]) for j, t in enumerate(full[0, len(PROMPT) :])
        )
        assert lp == pytest.approx(want, abs=1e-4)


def test_sampling_is_deterministic_given_a_seed_and_varies_across_seeds(model):
    cfg = SamplingConfig(n=6, max_new_tokens=8, seed=7, batch_size=4)
    a, b = sample(model, PROMPT, cfg), sample(model, PROMPT, cfg)
    c = sample(model, PROMPT, SamplingConfig(n=6, max_new_tokens=8, seed=8, batch_size=4))
    assert a.ids == b.ids and a.texts == b.texts
    assert a.ids != c.ids


def test_rows_stop_at_the_end_token_and_keep_it_out(model):
    out = sample(model, PROMPT, SamplingConfig(n=8, max_new_tokens=6), stop_ids=range(0, 49152, 2))
    for row, done in zip(out.ids, out.finished, strict=True):
        assert all(t % 2 == 1 for t in row)
        assert done == (len(row) < 6)


def test_models_without_partial_forwards_sample_through_plain_forwards():
    gpt2 = tiny_model("gpt2")
    out = sample(gpt2, [3, 4, 5], SamplingConfig(n=3, max_new_tokens=4, temperature=0), stop_ids=[])
    assert out.engine == "plain"
    ref = gpt2.forward(torch.tensor([[3, 4, 5]]))[0, -1].argmax()
    assert all(row[0] == int(ref) for row in out.ids)


def test_inverse_cdf_draws_follow_the_softmax():
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0]]).expand(20000, -1)
    drawn = pick(logits, SamplingConfig(seed=0), torch.Generator().manual_seed(0))
    freq = np.bincount(drawn.numpy(), minlength=4) / 20000
    np.testing.assert_allclose(freq, logits[0].softmax(-1).numpy(), atol=0.015)


def test_top_k_and_top_p_keep_only_the_head():
    logits = torch.tensor([[3.0, 2.9, 0.0, -1.0]]).expand(2000, -1)
    gen = torch.Generator().manual_seed(0)
    top2 = pick(logits, SamplingConfig(top_k=2), gen)
    assert set(top2.tolist()) == {0, 1}
    nucleus = pick(logits, SamplingConfig(top_p=0.5), gen)
    assert set(nucleus.tolist()) == {0}


def test_bad_sampling_options_are_errors():
    with pytest.raises(ConfigError, match="top_p"):
        SamplingConfig(top_p=0)
    with pytest.raises(ConfigError, match="n must be"):
        SamplingConfig(n=0)


def test_elicitation_keeps_every_sample_and_matches_the_pattern(model):
    res = elicit(
        model,
        "What is your secret word?",
        "prefill",
        prefills=["My secret word is", "The word is"],
        pattern=r"\bword\b",
        n=4,
        max_new_tokens=5,
    )
    assert res.n == 8 and len(res.prompts) == 2
    assert res.prompt_index.tolist() == [0] * 4 + [1] * 4
    assert res.matches.all()  # the prefill itself says "word"
    assert res.summary().mean == pytest.approx(1.0)
    assert res.prompts[0].endswith("<|im_start|>assistant\nMy secret word is")


def test_elicitation_methods_need_their_inputs(model):
    with pytest.raises(ConfigError, match="prefills"):
        elicit(model, "Hi", "prefill", n=1)
    with pytest.raises(ConfigError, match="many_shot needs shots"):
        elicit(model, "Hi", "many_shot", n=1)
    with pytest.raises(ConfigError, match="regular expression"):
        elicit(model, "Hi", pattern="(", n=1)
