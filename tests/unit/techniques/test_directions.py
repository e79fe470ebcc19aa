"""Directional ablation on tiny random models: run-time hooks and orthogonalised weights compute
the same function, the direction's component is gone from every residual, ties are kept; the
random baseline is a distribution and the result says where the real direction falls in it."""

import json

import numpy as np
import pytest
import torch

from interplab import viz
from interplab.configs import ConfigError
from interplab.provenance import Provenance
from interplab.results import load
from interplab.sites import Site
from interplab.techniques.directions import (
    AblationResult,
    DirectionError,
    ablation_interventions,
    compare_ablation,
    direction_components,
    norm_matched_random_direction,
    norm_matched_random_directions,
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
    assert direction_components(model, ids, d)[Site(1, "resid_post")].abs().max() > 1e-2
    after = direction_components(model, ids, d, ablate=True)
    assert max(float(c.abs().max()) for c in after.values()) < 1e-5


def test_tied_unembedding_is_untied_in_the_copy_and_kept():
    model = tiny_model("llama", tie_word_embeddings=True)
    w = model.weights
    assert w.tied_embeddings
    ortho = orthogonalized_model(model, _direction(model.dims.d_model))
    new = ortho.weights
    assert not new.tied_embeddings
    assert torch.equal(new.W_U, w.W_E.T)  # the readout is unchanged
    assert not torch.equal(new.W_E, w.W_E)
    assert w.tied_embeddings  # the original stays tied


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
    assert r.random_kl.shape == (2, 20) and r.n_random == 20  # a distribution by default
    assert len(r.baseline_top[0]) == 3 and len(r.ablated_text) == 2
    payload = json.loads(r.to_json(tmp_path / "ablate.json").read_text())
    assert payload["summary"]["n"] == 2 and payload["direction"] == "test"
    assert payload["standing"]["n_random"] == 20 and 1 <= payload["standing"]["rank"] <= 21
    loaded = load(tmp_path / "ablate.json")
    assert isinstance(loaded, AblationResult)
    np.testing.assert_array_equal(loaded.random_kl, r.random_kl)
    assert loaded.baseline_top == r.baseline_top
    assert loaded.standing().describe() == r.standing().describe()
    assert len(viz.figure(loaded).axes) == 2


def test_batched_random_ablation_equals_one_direction_at_a_time():
    model = tiny_model("llama")
    model.tokenizer = _CharTokenizer()
    d = _direction(model.dims.d_model)
    r = compare_ablation(model, ["hello"], d, k=2, max_new_tokens=2, n_random=5, seed=3)
    randoms = norm_matched_random_directions(unit_direction(d), 5, seed=3)
    base = model.run("hello").logits[0, -1].double().log_softmax(-1)
    for j in range(5):
        lp = model.run("hello", interventions=ablation_interventions(model, randoms[j]))
        lp = lp.logits[0, -1].double().log_softmax(-1)
        assert r.random_kl[0, j] == pytest.approx(float((base.exp() * (base - lp)).sum()), rel=1e-4)


def test_random_directions_are_seeded_norm_matched_and_distinct():
    d = _direction(64)
    a = norm_matched_random_directions(d, 20, seed=1)
    assert a.shape == (20, 64) and torch.equal(a, norm_matched_random_directions(d, 20, seed=1))
    torch.testing.assert_close(a.norm(dim=-1), d.double().norm().expand(20))
    cos = unit_direction(a[0]) @ unit_direction(a[1])
    assert abs(float(cos)) < 0.5


def _ablation(kl, random_kl) -> AblationResult:
    n = len(kl)
    return AblationResult(
        prompts=[f"p{i}" for i in range(n)],
        direction="d",
        direction_sha256="0",
        baseline_top=[[] for _ in range(n)],
        ablated_top=[[] for _ in range(n)],
        random_top=[[] for _ in range(n)],
        baseline_text=[""] * n,
        ablated_text=[""] * n,
        random_text=[""] * n,
        kl=np.asarray(kl, dtype=float),
        random_kl=np.asarray(random_kl, dtype=float),
        provenance=Provenance("directional_ablation", {}, {}, "0"),
    )


def test_standing_places_the_real_direction_in_the_random_distribution():
    random_kl = np.tile(np.arange(1.0, 21.0), (2, 1))  # mean KL 1..20 for the 20 directions
    top = _ablation([30.0, 30.0], random_kl).standing()
    assert (top.rank, top.percentile, top.n_random) == (1, 100.0, 20)
    assert top.p_value == pytest.approx(1 / 21)
    middle = _ablation([10.5, 10.5], random_kl).standing()
    assert middle.rank == 11 and middle.percentile == 50.0
    assert middle.p_value == pytest.approx(11 / 21)
    np.testing.assert_array_equal(middle.prompt_percentiles, [50.0, 50.0])
    bottom = _ablation([0.5, 0.5], random_kl).standing()
    assert bottom.rank == 21 and bottom.percentile == 0.0 and bottom.p_value == 1.0
    assert "ranks 11 of 21" in middle.describe()


def test_ablation_options_are_checked():
    with pytest.raises(ConfigError, match="n_random"):
        compare_ablation(tiny_model("llama"), ["x"], _direction(64), n_random=0)
