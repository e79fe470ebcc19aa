"""Interventions on a tiny random Llama (GQA 4/2): semantics, restriction, gradients, cleanup, errors."""

import pytest
import torch

import interplab as ip
from interplab.core.interventions import InterventionError

from helpers import tiny_model


@pytest.fixture(scope="module")
def model():
    return tiny_model("llama")


@pytest.fixture(scope="module")
def tokens(model):
    g = torch.Generator().manual_seed(1)
    return torch.randint(model.dims.d_vocab, (3, 7), generator=g)


def _hook_count(model) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.hf.modules())


def test_capture_changes_nothing_and_patch_with_other_run_moves_logits(model, tokens):
    clean = model.run(tokens, capture=["L1.resid_post"])
    other = model.run(tokens.flip(0), capture=["L1.resid_post"])
    assert torch.equal(clean.logits, model(tokens))
    patched = model.run(
        tokens, interventions=[ip.Patch("L1.resid_post", other.cache["L1.resid_post"])]
    )
    assert not torch.equal(patched.logits, clean.logits)
    # Patching the last block's output with another run's is that run's logits, exactly.
    last = f"L{model.dims.n_layers - 1}.resid_post"
    full = model.run(tokens.flip(0), capture=[last])
    swapped = model.run(tokens, interventions=[ip.Patch(last, full.cache[last])])
    assert torch.equal(swapped.logits, full.logits)


def test_patch_restricted_to_positions_and_heads_edits_only_those_entries(model, tokens):
    other = model.run(tokens.flip(0), capture=["L1.attn.z"]).cache["L1.attn.z"]
    run = model.run(
        tokens,
        capture=["L1.attn.z"],
        interventions=[ip.Patch("L1.attn.z", other, positions=[2, -1], heads=[1, 3])],
    )
    clean = model.run(tokens, capture=["L1.attn.z"]).cache["L1.attn.z"]
    z = run.cache["L1.attn.z"]
    expected = clean.clone()
    for p in (2, 6):
        for h in (1, 3):
            expected[:, p, h] = other[:, p, h]
    assert torch.equal(z, expected)


def test_value_of_the_selected_region_or_a_broadcastable_vector_is_accepted(model, tokens):
    d = model.dims.d_model
    vec = torch.randn(d)
    a = model.run(
        tokens,
        capture=["L0.resid_post"],
        interventions=[ip.Patch("L0.resid_post", vec, positions=[0, 1])],
    )
    region = vec.expand(3, 2, d).clone()
    b = model.run(
        tokens,
        capture=["L0.resid_post"],
        interventions=[ip.Patch("L0.resid_post", region, positions=[0, 1])],
    )
    assert torch.equal(a.cache["L0.resid_post"], b.cache["L0.resid_post"])
    assert torch.equal(a.cache["L0.resid_post"][:, 0], vec.expand(3, d))


def test_add_scale_ablate_apply_do_what_they_say(model, tokens):
    site = "L1.mlp_out"
    clean = model.run(tokens, capture=[site]).cache[site]
    vec = torch.randn(model.dims.d_model)
    added = model.run(
        tokens, capture=[site], interventions=[ip.Add(site, vec, coefficient=2.0)]
    ).cache[site]
    torch.testing.assert_close(added, clean + 2 * vec)
    scaled = model.run(
        tokens, capture=[site], interventions=[ip.Scale(site, 0.5, positions=[3])]
    ).cache[site]
    torch.testing.assert_close(scaled[:, 3], clean[:, 3] * 0.5)
    assert torch.equal(scaled[:, :3], clean[:, :3])
    zero = model.run(tokens, capture=[site], interventions=[ip.Ablate(site)]).cache[site]
    assert torch.count_nonzero(zero) == 0
    applied = model.run(tokens, capture=[site], interventions=[ip.Apply(site, torch.neg)]).cache[
        site
    ]
    assert torch.equal(applied, -clean)


def test_add_with_coefficient_zero_is_exactly_a_no_op(model, tokens):
    run = model.run(
        tokens,
        interventions=[
            ip.Add("L0.resid_mid", torch.full((model.dims.d_model,), -3e38), coefficient=0.0)
        ],
    )
    assert torch.equal(run.logits, model(tokens))


def test_mean_and_resample_ablation_use_the_reference(model, tokens):
    site = "L0.attn_out"
    ref_tokens = torch.randint(
        model.dims.d_vocab, (5, 7), generator=torch.Generator().manual_seed(3)
    )
    ref = model.run(ref_tokens, capture=[site]).cache[site]
    mean = model.run(
        tokens, capture=[site], interventions=[ip.Ablate(site, "mean", reference=ref)]
    ).cache[site]
    torch.testing.assert_close(mean, ref.mean(0, keepdim=True).expand_as(mean))
    res = model.run(
        tokens, capture=[site], interventions=[ip.Ablate(site, "resample", reference=ref, seed=4)]
    ).cache[site]
    for row in res:
        assert any(torch.equal(row, r) for r in ref)
    again = model.run(
        tokens, capture=[site], interventions=[ip.Ablate(site, "resample", reference=ref, seed=4)]
    ).cache[site]
    assert torch.equal(res, again)


def test_kv_head_sites_name_query_heads(model, tokens):
    cache = model.run(tokens, capture=["L0.attn.k", "L0.attn.k.h3", "L0.attn.v.h0"]).cache
    assert cache["L0.attn.k"].shape == (3, 7, 2, model.dims.d_head)
    assert torch.equal(
        cache["L0.attn.k.h3"], cache["L0.attn.k"][:, :, 1]
    )  # 4 q heads over 2 kv heads
    zeroed = model.run(
        tokens, capture=["L0.attn.k"], interventions=[ip.Ablate("L0.attn.k.h2")]
    ).cache["L0.attn.k"]
    assert torch.count_nonzero(zeroed[:, :, 1]) == 0
    assert torch.equal(zeroed[:, :, 0], cache["L0.attn.k"][:, :, 0])


def test_gradients_reach_every_captured_site_including_head_views(model, tokens):
    sites = ["L0.resid_mid", "L1.attn.z.h2", "L0.attn.q", "L1.mlp.post"]
    run = model.run(tokens, capture=sites, grad=True)
    metric = run.logits[:, -1, 5].sum()
    grads = torch.autograd.grad(metric, [run.cache[s] for s in sites])
    for s, g in zip(sites, grads, strict=True):
        assert g.shape == run.cache[s].shape
        assert g.abs().sum() > 0, s
    assert torch.equal(run.logits.detach(), model(tokens))


def test_hooks_are_removed_even_when_the_body_raises(model, tokens):
    before = _hook_count(model)
    with (
        pytest.raises(RuntimeError, match="user code"),
        model.capture(["L0.resid_post", "L1.attn.pattern"]),
    ):
        model(tokens)
        raise RuntimeError("user code")
    assert _hook_count(model) == before
    assert model.hf.config._attn_implementation == "sdpa"
    with (
        pytest.raises(InterventionError),
        model.capture(
            ["L0.resid_post"], interventions=[ip.Patch("L0.resid_post", torch.zeros(2, 2))]
        ),
    ):
        model(tokens)
    assert _hook_count(model) == before


def test_pattern_capture_sums_to_one_and_restores_sdpa(model, tokens):
    cache = model.run(tokens, capture=["L1.attn.pattern", "L1.attn.pattern.h2"]).cache
    pat = cache["L1.attn.pattern"]
    assert pat.shape == (3, 4, 7, 7)
    torch.testing.assert_close(pat.sum(-1), torch.ones(3, 4, 7))
    assert torch.equal(cache["L1.attn.pattern.h2"], pat[:, 2])
    assert torch.triu(pat, diagonal=1).abs().max() == 0  # causal
    assert model.hf.config._attn_implementation == "sdpa"


@pytest.mark.parametrize(
    ("intervention", "message"),
    [
        (lambda d: ip.Patch("L0.resid_post", torch.zeros(2, 7, d.d_model)), "batch size 2"),
        (
            lambda d: ip.Patch("L0.resid_post", torch.zeros(3, 7, d.d_model + 1)),
            "expected the site's shape",
        ),
        (
            lambda d: ip.Patch("L0.resid_post", torch.zeros(d.d_model, dtype=torch.float64)),
            "dtype torch.float64",
        ),
        (lambda d: ip.Patch("L0.resid_post", torch.zeros(d.d_model, device="meta")), "is on meta"),
        (
            lambda d: ip.Scale("L0.resid_post", 2.0, positions=[9]),
            "position 9 of Scale on L0.resid_post is out of range",
        ),
        (lambda d: ip.Scale("L0.attn.z", 2.0, heads=[7]), r"valid heads are 0\.\.3"),
        (lambda d: ip.Scale("L9.attn_out", 2.0), r"valid layers are 0\.\.1"),
        (lambda d: ip.Scale("L0.attn.pattern", 2.0), "read-only"),
        (
            lambda d: ip.Apply("L0.mlp_out", lambda t: t[..., :2]),
            "must return a tensor of the selected shape",
        ),
    ],
)
def test_bad_interventions_say_what_was_wrong(model, tokens, intervention, message):
    with pytest.raises((InterventionError, ip.SiteError), match=message):
        model.run(tokens, interventions=[intervention(model.dims)])


def test_bad_intervention_construction_is_rejected_early():
    with pytest.raises(InterventionError, match="has no heads"):
        ip.Scale("L0.resid_post", 2.0, heads=[0])
    with pytest.raises(InterventionError, match="valid methods"):
        ip.Ablate("L0.resid_post", "median")  # type: ignore[arg-type]
    with pytest.raises(InterventionError, match="needs reference"):
        ip.Ablate("L0.resid_post", "mean")
    with pytest.raises(InterventionError, match="already names head"):
        ip.Ablate("L0.attn.z.h1", heads=[2])


def test_bad_token_inputs_are_rejected(model):
    with pytest.raises(ip.InputError, match="empty"):
        model(torch.zeros(1, 0, dtype=torch.long))
    with pytest.raises(ip.InputError, match="integer tensor"):
        model(torch.zeros(1, 3))
    with pytest.raises(ip.InputError, match="token ids must lie in"):
        model(torch.full((1, 3), 10_000))
