"""Directional ablation on tiny random models: run-time hooks and orthogonalised weights compute
the same function, the direction's component is gone from every residual, ties are kept."""

import json

import numpy as np
import pytest
import torch

from interplab.techniques.directions import (
    DirectionError,
    ablation_interventions,
    compare_ablation,
    direction_components,
    norm_matched_random_direction,
    orthogonalized_model,
    unit_direction,
)

from helpers import tiny_model, tokens, weights_sha256

# float32 forwards through differently rounded (but equal) weights: logits agree to this.
LOGIT_ATOL = 1e-4
# What is left along the direction, relative to the residual's norm, after ablation.
RESIDUAL_RTOL = 1e-5


def _direction(d_model: int, seed: int = 7) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return 3.0 * torch.randn(d_model, generator=g)  # not unit: the functions normalise


@pytest.mark.parametrize(
    "family,overrides",
    [
        ("llama", {}),
        ("llama", {"tie_word_embeddings": True}),
        ("qwen3", {}),
        ("gpt2", {}),
        ("neox", {}),
    ],
)
def test_runtime_ablation_equals_orthogonalised_weights(family, overrides):
    model = tiny_model(family, **overrides)
    before = weights_sha256(model.hf)
    d = _direction(model.dims.d_model)
    ids = tokens(3, 11)
    ortho = orthogonalized_model(model, d)
    runtime = model.run(ids, interventions=ablation_interventions(model, d)).logits
    baked = ortho.run(ids).logits
    torch.testing.assert_close(runtime, baked, atol=LOGIT_ATOL, rtol=LOGIT_ATOL)
    assert not torch.allclose(runtime, model.run(ids).logits, atol=1e-3)  # it did something
    for m, ablate in ((model, True), (ortho, False)):
        comps = direction_components(m, ids, d, ablate=ablate)
        assert len(comps) >= 1 + 2 * model.dims.n_layers
        for site, c in comps.items():
            norms = m.run(ids, capture=[site]).cache[site].norm(dim=-1)
            assert (c.abs() <= RESIDUAL_RTOL * (1 + norms)).all(), site
    assert weights_sha256(model.hf) == before  # the original is never modified
    assert ortho.info.weights_sha256 != model.info.weights_sha256


def test_ablation_removes_exactly_the_direction_component():
    model = tiny_model("llama")
    d = _direction(model.dims.d_model, seed=3)
    u = unit_direction(d).float()
    ids = tokens(2, 9)
    plain = model.run(ids, capture=["embed"]).cache["embed"]
    ablated = model.run(ids, capture=["embed"], interventions=ablation_interventions(model, d))
    expected = plain - (plain @ u)[..., None] * u
    torch.testing.assert_close(ablated.cache["embed"], expected, atol=1e-6, rtol=1e-6)
    # Everything orthogonal to d is untouched: only the component along d changed.
    residual = plain - ablated.cache["embed"]
    cos = torch.nn.functional.cosine_similarity(
        residual, u.expand_as(residual).contiguous(), dim=-1
    )
    assert (cos.abs() > 1 - 1e-4).all()
    # Before ablation the component is far from zero; after it, zero everywhere downstream.
    assert direction_components(model, ids, d)["L1.resid_post"].abs().max() > 1e-2
    after = direction_components(model, ids, d, ablate=True)
    assert max(float(c.abs().max()) for c in after.values()) < 1e-5


def test_tied_unembedding_is_untied_in_the_copy_and_kept():
    model = tiny_model("llama", tie_word_embeddings=True)
    hf = model.hf
    assert hf.get_output_embeddings().weight is hf.get_input_embeddings().weight
    ortho = orthogonalized_model(model, _direction(model.dims.d_model))
    new_in, new_out = ortho.hf.get_input_embeddings(), ortho.hf.get_output_embeddings()
    assert new_out.weight is not new_in.weight
    assert torch.equal(new_out.weight, hf.get_input_embeddings().weight)  # readout unchanged
    assert not torch.equal(new_in.weight, hf.get_input_embeddings().weight)
    assert hf.get_output_embeddings().weight is hf.get_input_embeddings().weight  # original tied


def test_orthogonalisation_refuses_post_norm_architectures():
    model = tiny_model("gemma3")
    with pytest.raises(DirectionError, match="normalises attention and MLP outputs"):
        orthogonalized_model(model, _direction(model.dims.d_model))


def test_norm_matched_random_direction_is_seeded_and_norm_matched():
    d = _direction(64)
    a, b = norm_matched_random_direction(d, seed=1), norm_matched_random_direction(d, seed=1)
    assert torch.equal(a, b) and a.dtype == d.dtype
    assert torch.isclose(a.norm(), d.norm())
    assert not torch.equal(a, norm_matched_random_direction(d, seed=2))
    assert abs(float(unit_direction(a) @ unit_direction(d))) < 0.5


def test_bad_directions_are_refused():
    model = tiny_model("llama")
    with pytest.raises(DirectionError, match="d_model"):
        ablation_interventions(model, torch.ones(model.dims.d_model + 1))
    with pytest.raises(DirectionError, match="zero"):
        ablation_interventions(model, np.zeros(model.dims.d_model))


class _CharTokenizer:
    pad_token_id = 0
    eos_token_id = 0

    def __call__(self, text, add_special_tokens=True):
        return {"input_ids": [1] * add_special_tokens + [2 + ord(ch) % 250 for ch in text]}

    def decode(self, ids, skip_special_tokens=False):
        return "".join(chr(i - 2) if i >= 2 else "" for i in ids)


def test_compare_ablation_reports_the_random_baseline(tmp_path):
    model = tiny_model("llama")
    model.tokenizer = _CharTokenizer()
    d = _direction(model.dims.d_model)
    r = compare_ablation(model, ["hello", "world"], d, label="test", k=3, max_new_tokens=4)
    assert r.n == 2 and r.kl.shape == (2,) and (r.kl > 0).all() and (r.random_kl > 0).all()
    assert len(r.baseline_top[0]) == 3 and len(r.ablated_text) == 2
    payload = json.loads(r.to_json(tmp_path / "ablate.json").read_text())
    assert payload["summary"]["n"] == 2 and payload["direction"] == "test"
