"""Steering vectors on a tiny random model: the difference of means, and coefficient 0 is a no-op."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from interplab.techniques.steering import steering_interventions, steering_vector

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
        torch.testing.assert_close(v.vectors[i], manual, rtol=1e-5, atol=1e-6)
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
    rows = 0.0 * v.vectors[None].expand(3, -1, -1)
    for positions in (None, [-1]):
        steered = model.run(ids, interventions=steering_interventions(v, rows, positions=positions))
        assert torch.equal(steered.logits, plain)
    pushed = model.run(ids, interventions=steering_interventions(v, 4.0 * v.vectors[None]))
    assert not torch.equal(pushed.logits, plain)


def test_each_row_gets_its_own_vector(model):
    v = steering_vector(model, tokens(4, 6, seed=5), tokens(4, 6, seed=6), layers=1)
    ids = tokens(1, 8, seed=8).expand(2, -1)
    rows = torch.stack([torch.zeros_like(v.vectors), 3.0 * v.vectors])
    out = model.run(ids, interventions=steering_interventions(v, rows)).logits
    assert torch.equal(out[0], model.forward(ids[:1])[0])
    alone = model.run(ids[:1], interventions=steering_interventions(v, rows[1:])).logits[0]
    torch.testing.assert_close(out[1], alone)
    assert np.isfinite(v.norms).all()
