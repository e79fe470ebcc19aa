"""Steering on a tiny random model: the difference of means, coefficient 0 is a no-op, non-finite
vectors and coefficients are refused, and the result round-trips through JSON."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from interplab import viz
from interplab.configs import ConfigError
from interplab.results import load
from interplab.stats import Summary
from interplab.techniques.steering import (
    Behaviour,
    SteerConfig,
    SteeringError,
    SteeringResult,
    SteeringVector,
    steer,
    steering_interventions,
    steering_vector,
)

from helpers import tiny_hf, tiny_model, tokens


@pytest.fixture(scope="module")
def model():
    return tiny_model("llama")


@pytest.mark.parametrize("position", ["last", "mean"])
def test_vector_is_the_difference_of_mean_residuals(model, position):
    pos, neg = tokens(6, 7, seed=1), tokens(5, 7, seed=2)
    v = steering_vector(model, pos, neg, layers=[0, 1], position=position, batch_size=4)
    hf = tiny_hf("llama")
    with torch.no_grad():
        hp = hf(pos, output_hidden_states=True).hidden_states
        hn = hf(neg, output_hidden_states=True).hidden_states
    for i, layer in enumerate([0, 1]):  # hidden_states[L] is the input of block L (resid_pre)
        reduce = (lambda h: h[:, -1]) if position == "last" else (lambda h: h.mean(1))
        manual = reduce(hp[layer]).mean(0) - reduce(hn[layer]).mean(0)
        torch.testing.assert_close(torch.as_tensor(v.vectors[i]), manual, rtol=1e-5, atol=1e-6)
        assert v.norms[i] == pytest.approx(float(manual.norm()), rel=1e-5)
    assert (v.n_positive, v.n_negative) == (6, 5)


def test_resid_post_reads_the_output_of_the_block(model):
    pos, neg = tokens(4, 5, seed=3), tokens(4, 5, seed=4)
    post = steering_vector(model, pos, neg, layers=0, component="resid_post")
    pre_next = steering_vector(model, pos, neg, layers=1, component="resid_pre")
    torch.testing.assert_close(post.vectors, pre_next.vectors)


def test_coefficient_zero_leaves_logits_bit_identical(model):
    v = steering_vector(model, tokens(4, 6, seed=5), tokens(4, 6, seed=6), layers=[0, 1])
    ids = tokens(3, 9, seed=7)
    plain = model.forward(ids)
    vectors = torch.as_tensor(v.vectors)
    rows = 0.0 * vectors[None].expand(3, -1, -1)
    for positions in (None, [-1]):
        steered = model.run(ids, interventions=steering_interventions(v, rows, positions=positions))
        assert torch.equal(steered.logits, plain)
    pushed = model.run(ids, interventions=steering_interventions(v, 4.0 * vectors[None]))
    assert not torch.equal(pushed.logits, plain)


def test_each_row_gets_its_own_vector(model):
    v = steering_vector(model, tokens(4, 6, seed=5), tokens(4, 6, seed=6), layers=1)
    ids = tokens(1, 8, seed=8).expand(2, -1)
    vectors = torch.as_tensor(v.vectors)
    rows = torch.stack([torch.zeros_like(vectors), 3.0 * vectors])
    out = model.run(ids, interventions=steering_interventions(v, rows)).logits
    assert torch.equal(out[0], model.forward(ids[:1])[0])
    alone = model.run(ids[:1], interventions=steering_interventions(v, rows[1:])).logits[0]
    torch.testing.assert_close(out[1], alone)
    assert np.isfinite(v.norms).all()


class _CharTokenizer:
    pad_token_id = 0
    eos_token_id = 0

    def __call__(self, text, add_special_tokens=True):
        return {"input_ids": [1] * add_special_tokens + [2 + ord(ch) % 250 for ch in text]}

    def decode(self, ids, skip_special_tokens=False):
        return "".join(chr(i - 2) if i >= 2 else "" for i in ids)


def _vowels(model, texts):
    """A stand-in behaviour score: the share of vowels in each continuation."""
    return np.array([sum(c in "aeiou" for c in t) / max(len(t), 1) for t in texts])


VOWELS = Behaviour("vowels", _vowels, "Vowels: ", "share of vowels")


@pytest.fixture(scope="module")
def char_model():
    m = tiny_model("llama")
    m.tokenizer = _CharTokenizer()
    return m


@pytest.fixture(scope="module")
def swept(char_model):
    v = steering_vector(char_model, ["happy day", "sunny"], ["rainy day", "gloom"], layers=[1])
    return steer(
        char_model,
        ["abc", "xyz"],
        v,
        coefficients=[0.0, 4.0],
        behaviour=VOWELS,
        n_random=2,
        max_new_tokens=3,
    )


def test_steer_sweep_has_every_condition_and_a_summary(swept):
    assert swept.conditions == ["steered", "random", "none", "prompt"]
    assert swept.steered_scores.shape == (2, 2) and swept.random_scores.shape == (2, 2, 2)
    assert swept.steered_texts[0][0] == swept.none_texts[0]  # coefficient 0 changes nothing
    s = swept.summary()
    assert isinstance(s, Summary) and s.paired and s.n == 2 and s.mean.shape == (2,)
    assert set(swept.summaries()) >= {"steered score", "steered - random score", "prompt score"}
    assert [(r.coefficient, r.condition) for r in swept.table()][:2] == [
        (0.0, "steered"),
        (0.0, "random"),
    ]
    assert swept.provenance.config == SteerConfig(coefficients=(0.0, 4.0), n_random=2,
                                                  max_new_tokens=3).to_dict()  # fmt: skip


def test_steering_result_round_trips_through_json_and_draws(swept, tmp_path):
    loaded = load(swept.to_json(tmp_path / "steer.json"))
    assert isinstance(loaded, SteeringResult)
    for name in ("steered_scores", "random_scores", "prompt_perplexity", "vector_norms"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(swept, name))
    assert loaded.random_texts == swept.random_texts
    assert loaded.vector_provenance == swept.vector_provenance
    assert len(viz.figure(loaded).axes) == 2


def test_steering_vector_round_trips_through_json(model, tmp_path):
    v = steering_vector(model, tokens(4, 6, seed=5), tokens(4, 6, seed=6), layers=[0, 1])
    back = SteeringVector.from_json(v.to_json(tmp_path / "v.json"))
    np.testing.assert_array_equal(back.vectors, v.vectors)
    assert back.vectors.dtype == np.float32 and back.sites == v.sites


def test_non_finite_vectors_and_coefficients_are_refused(char_model, model):
    v = steering_vector(model, tokens(4, 6, seed=5), tokens(4, 6, seed=6), layers=[0, 1])
    for bad in (np.nan, np.inf):
        vectors = v.vectors.copy()
        vectors[1, 3] = bad
        with pytest.raises(SteeringError, match=r"NaN or inf at layers \[1\]"):
            steer(char_model, ["abc"], replace(v, vectors=vectors), max_new_tokens=2)
        with pytest.raises(ConfigError, match="finite"):
            steer(char_model, ["abc"], v, coefficients=[0.0, bad], max_new_tokens=2)
    with pytest.raises(SteeringError, match="NaN or inf"):
        steering_interventions(v, torch.full((1, 2, 64), float("nan")))
    with pytest.raises(ConfigError, match="layers is empty"):
        steering_vector(model, tokens(2, 4), tokens(2, 4), layers=[])
    with pytest.raises(ConfigError, match="'resid_pre', 'resid_post'"):
        steering_vector(model, tokens(2, 4), tokens(2, 4), layers=[0], component="attn_out")  # type: ignore[arg-type]
