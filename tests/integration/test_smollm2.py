"""The foundation on the real embedded model: HF-exact hooks, derived sites, first techniques."""

import json

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM

import interplab as ip
from interplab import results, viz
from interplab.demo import ioi_prompts
from interplab.models import ModelNotFoundError
from interplab.techniques import (
    DLAResult,
    LensConfig,
    LensResult,
    direct_logit_attribution,
    logit_lens,
)

PROMPTS = [
    "The Eiffel Tower is located in the city of",
    "When Mary and John went to the store, John gave a drink to",
]
LAYER_COMPONENTS = [
    "resid_pre",
    "resid_mid",
    "resid_post",
    "attn_out",
    "mlp_out",
    "attn.q",
    "attn.k",
    "attn.v",
    "attn.z",
    "mlp.pre",
    "mlp.post",
]


@pytest.fixture(scope="module")
def plain(smol):
    """Plain HF, loaded independently from the same cached folder: the reference."""
    return AutoModelForCausalLM.from_pretrained(smol.info.source, dtype=torch.float32).eval()


@pytest.fixture(scope="module")
def reference(smol, plain):
    tokens = smol.tokenize(PROMPTS)
    with torch.no_grad():
        return tokens, plain(
            input_ids=tokens.ids, attention_mask=tokens.mask, output_hidden_states=True
        )


@pytest.fixture(scope="module")
def everything(smol):
    sites = ["embed", "final_norm", "logits"] + [
        f"L{i}.{c}" for i in range(30) for c in LAYER_COMPONENTS
    ]
    with smol.capture(sites) as cache:
        logits = smol(PROMPTS)
    return logits, cache


def test_embedded_model_loads_with_provenance(smol):
    assert smol.dims == ip.Dimensions(30, 576, 9, 3, 64, 1536, 49152)
    assert len(smol.info.weights_sha256) == 64
    assert smol.info.licence == "Apache-2.0"
    assert smol.info.n_params > 100_000_000


def test_capturing_every_site_leaves_logits_bit_identical_to_plain_hf(everything, reference):
    logits, _ = everything
    assert torch.equal(logits, reference[1].logits)


def test_captured_residuals_equal_hf_hidden_states(everything, reference):
    _, cache = everything
    hidden = reference[1].hidden_states
    assert torch.equal(cache["embed"], hidden[0])
    for i in range(29):
        assert torch.equal(cache[f"L{i}.resid_post"], hidden[i + 1]), i
        assert torch.equal(cache[f"L{i + 1}.resid_pre"], hidden[i + 1]), i
    assert torch.equal(cache["final_norm"], hidden[30])  # HF's last hidden state is after the norm


def test_components_add_up_to_the_final_residual(everything):
    _, cache = everything
    total = cache["embed"] + sum(
        cache[f"L{i}.attn_out"] + cache[f"L{i}.mlp_out"] for i in range(30)
    )
    torch.testing.assert_close(total, cache["L29.resid_post"], rtol=1e-5, atol=1e-4)
    for i in (0, 14, 29):
        torch.testing.assert_close(
            cache[f"L{i}.resid_pre"] + cache[f"L{i}.attn_out"],
            cache[f"L{i}.resid_mid"],
            rtol=0,
            atol=0,
        )


def test_per_head_z_through_the_output_projection_equals_attn_out(smol, everything):
    _, cache = everything
    for layer in (0, 23):
        w = smol.adapter.o_weight(smol.hf, layer).view(576, 9, 64)
        recon = torch.einsum("bphd,mhd->bpm", cache[f"L{layer}.attn.z"], w)
        torch.testing.assert_close(recon, cache[f"L{layer}.attn_out"], rtol=1e-5, atol=1e-5)


def test_patterns_sum_to_one_and_match_hf_eager(smol, plain):
    tokens = smol.tokenize(PROMPTS[1])
    with smol.capture(["L5.attn.pattern", "L5.attn.pattern.h4"]) as cache:
        smol(PROMPTS[1])
    pattern = cache["L5.attn.pattern"]
    torch.testing.assert_close(pattern.sum(-1), torch.ones(pattern.shape[:-1]))
    plain.set_attn_implementation("eager")
    try:
        with torch.no_grad():
            ref = plain(input_ids=tokens.ids, output_attentions=True).attentions[5]
    finally:
        plain.set_attn_implementation("sdpa")
    assert torch.equal(pattern, ref)
    assert torch.equal(cache["L5.attn.pattern.h4"], ref[:, 4])


def test_gqa_key_heads_are_shared_by_their_query_heads(everything):
    _, cache = everything
    assert cache["L3.attn.q"].shape[2:] == (9, 64)
    assert cache["L3.attn.k"].shape[2:] == (3, 64)
    with_head = ip.Site.parse("L3.attn.k.h7")
    assert with_head.head == 7  # query head 7 reads kv head 7 // 3 = 2


@pytest.mark.parametrize("component", LAYER_COMPONENTS)
def test_patching_a_site_with_its_own_clean_value_changes_nothing(
    smol, everything, reference, component
):
    _, cache = everything
    site = f"L7.{component}"
    for positions in (None, [-1], [0, 3]):
        run = smol.run(PROMPTS, interventions=[ip.Patch(site, cache[site], positions=positions)])
        assert torch.equal(run.logits, reference[1].logits), (site, positions)


def test_resid_mid_patch_reaches_the_block_output(smol):
    other = smol.run(PROMPTS[::-1], capture=["L7.resid_mid"]).cache["L7.resid_mid"]
    run = smol.run(
        PROMPTS,
        capture=["L7.resid_mid", "L7.resid_post", "L7.mlp_out"],
        interventions=[ip.Patch("L7.resid_mid", other)],
    )
    assert torch.equal(run.cache["L7.resid_mid"], other)
    assert torch.equal(run.cache["L7.resid_post"], other + run.cache["L7.mlp_out"])


def test_steering_during_generation_applies_at_every_step(smol):
    prompt = "The capital of France is"
    base = smol.generate(prompt, max_new_tokens=6, capture=["L10.resid_post"])
    again = smol.generate(
        prompt,
        max_new_tokens=6,
        interventions=[ip.Add("L10.resid_post", torch.ones(576), coefficient=0.0)],
    )
    assert again.texts == base.texts
    # The capture continues one sequence through the KV-cache steps: prompt + 5 generated tokens.
    n_prompt = base.prompt_length
    assert base.cache["L10.resid_post"].shape[1] == n_prompt + 5
    full = smol.run(base.ids[:, :-1], capture=["L10.resid_post"]).cache["L10.resid_post"]
    torch.testing.assert_close(base.cache["L10.resid_post"], full, rtol=1e-4, atol=1e-4)
    direction = smol.run(" Berlin Germany Berlin", capture=["L10.resid_post"]).cache[
        "L10.resid_post"
    ][0, -1]
    steered = smol.generate(
        prompt,
        max_new_tokens=6,
        interventions=[ip.Add("L10.resid_post", direction, coefficient=8.0, positions=[-1])],
    )
    assert steered.texts != base.texts


def test_logit_lens_finds_paris_late_and_reproduces_the_logits(smol):
    result = logit_lens(smol, PROMPTS[0], target=" Paris")
    assert result.sites[0] == ip.Site(None, "embed") and result.sites[-1] == ip.Site(
        29, "resid_post"
    )
    assert result.at_last(result.target_rank)[0, -1] == 0  # the model's answer
    assert result.at_last(result.target_prob)[0, -1] > 0.5
    first = result.first_layer_top1()[0]
    # assembled late, as in the literature on small models; the Site carries the true layer
    assert first is not None and first.component == "resid_post"
    assert first.layer is not None and first.layer >= 20
    ranks = result.at_last(result.target_rank)[0]
    assert ranks[result.row(first)] == 0 and (ranks[: result.row(first)] != 0).all()
    assert ranks[result.row("L4.resid_post")] > 100  # and absent early
    logits = smol(PROMPTS[0])[0, -1]
    assert result.top_ids[0, -1, -1, 0] == int(logits.argmax())
    torch.testing.assert_close(
        torch.tensor(result.at_last(result.target_prob)[0, -1]),
        logits.softmax(-1)[smol.token_id(" Paris")].double(),
    )


def test_dla_parts_sum_to_the_logit_difference_and_point_to_mary(smol):
    prompts, io, s = ioi_prompts()
    result = direct_logit_attribution(smol, prompts, target=io, baseline=s)
    assert (result.actual > 0).mean() > 0.9
    assert result.error.max() < 1e-3 * (1 + np.abs(result.actual).max())
    heads_plus_bias = result.heads.sum(2) + result.head_bias
    np.testing.assert_allclose(heads_plus_bias, result.by_layer("attn_out"), atol=1e-3)
    summary = result.summary()
    assert int(np.asarray(summary.significant).sum()) >= 1
    top = int(np.argmax(np.asarray(summary.mean)))
    assert result.sites[top].component == "attn_out"  # name movers: attention writes the name
    np.testing.assert_array_equal(result.component(result.sites[top]), result.contributions[:, top])
    assert result.top_components(1, summary=summary)[0].site in result.sites
    assert "at cell (" not in result.describe(summary=summary)
    mary = direct_logit_attribution(smol, PROMPTS[1], target=" Mary", baseline=" John")
    assert mary.actual[0] > 2 and mary.total[0] > 2


def test_results_serialise_with_provenance(smol, tmp_path):
    result = logit_lens(smol, PROMPTS, target=" Paris")
    data = json.loads(result.to_json(tmp_path / "lens.json").read_text())
    prov = data["provenance"]
    assert prov["model"]["weights_sha256"] == smol.info.weights_sha256
    assert prov["versions"]["torch"].startswith("2.13.0")
    assert len(prov["data_sha256"]) == 64
    assert prov["config"] == LensConfig(target=" Paris").to_dict()
    assert data["summary"]["n"] == 2
    assert data["target_prob"]["shape"][0] == 2


def test_lens_and_dla_round_trip_through_json_and_draw(smol, tmp_path):
    prompts, io, s = ioi_prompts()
    written = [
        logit_lens(smol, PROMPTS, target=" Paris", k=3),
        direct_logit_attribution(smol, prompts[:4], target=io[:4], baseline=s[:4]),
    ]
    for result in written:
        path = result.to_json(tmp_path / f"{result.technique}.json")
        loaded = results.load(path)
        assert type(loaded) is type(result)
        assert isinstance(loaded, LensResult | DLAResult)
        for name, value in vars(result).items():
            if isinstance(value, np.ndarray):
                np.testing.assert_array_equal(getattr(loaded, name), value)
        assert loaded.sites == result.sites
        assert viz.figure(loaded).axes
        files = viz.save(loaded, tmp_path / f"{result.technique}.png")
        assert [p.suffix for p in files] == [".png", ".html"]  # the promised interactive page
        assert "<svg" in files[1].read_text()
    described = written[0].describe()
    assert "at L29.resid_post" in described and "at cell (" not in described


def test_bad_inputs_get_clear_errors(smol):
    with pytest.raises(ModelNotFoundError, match="smollm2-135m"):
        ip.load("no-such-model")
    with pytest.raises(ModelNotFoundError, match="no model hub is reachable"):
        ip.load("someone/some-model")
    with pytest.raises(ip.InputError, match="empty"):
        smol("")
    with pytest.raises(ip.InputError, match=r"' Eiffel' is 2 tokens"):
        logit_lens(smol, PROMPTS[0], target=" Eiffel")
    with pytest.raises(ValueError, match="unknown dtype"):
        ip.load(dtype="float8")
    with pytest.raises(ValueError, match="no CUDA GPU"):
        if torch.cuda.is_available():
            pytest.skip("a GPU is present")
        ip.load(device="cuda")
    with pytest.raises(ip.SiteError, match=r"valid layers are 0\.\.29"):
        smol.run(PROMPTS[0], capture=["L30.resid_post"])
