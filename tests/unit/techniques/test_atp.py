"""AtP* on tiny random models, each part against an independent reference: exact patching on a
model whose metric is linear in every patched activation; exact patching where a saturated
softmax makes plain attribution blind (the QK fix); HF's own attention pattern with the patched
queries or keys; and GradDrop against backward passes with each layer's contributions detached."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from interplab import viz
from interplab.configs import ConfigError
from interplab.core.interventions import Apply, Patch
from interplab.results import load
from interplab.results.patching_verified import AtPResult
from interplab.sites import Site
from interplab.techniques.patching import PatchingError, activation_patching
from interplab.techniques.patching.atp import atp_star

from helpers import tiny_model, token_pairs

GRID = ("resid_pre", "resid_mid", "resid_post", "attn_out", "mlp_out", "attn.z")


def _linearise(model, *, qk_scale: float | None = None, mlp: bool = False):
    """Makes every path to the logits linear: RMS norms become (to ~1e-8) a fixed scaling (huge
    epsilon), MLPs write nothing (unless ``mlp``), and attention patterns stop depending on the
    input (W_Q = W_K = 0), except layer 0 with ``qk_scale``, whose queries and keys are scaled
    up until its softmax saturates."""
    with torch.no_grad():
        for name, p in model.hf.named_parameters():
            if "norm" in name:
                p.fill_(1000.0)
            if "down_proj" in name and not mlp:
                p.zero_()
            if "q_proj" in name or "k_proj" in name:
                if qk_scale is not None and ".layers.0." in name:
                    p.mul_(qk_scale)
                else:
                    p.zero_()
    for module in model.hf.modules():
        if hasattr(module, "variance_epsilon"):
            module.variance_epsilon = 1e6
    return model


def _logit_diff(model, tp, interventions=()):
    logits = model.run(tp.tokens(model, "corrupt"), interventions=list(interventions)).logits
    rows = torch.arange(tp.n)
    return (logits[rows, -1, tp.answer] - logits[rows, -1, tp.wrong]).detach().double().numpy()


def _exact_head_cells(model, tp, comp: str, layer: int = 0) -> np.ndarray:
    """The reference: one patched forward per (head, position) cell of ``comp`` at ``layer``."""
    d = model.dims
    site = Site(layer, comp)  # type: ignore[arg-type]
    source = model.run(tp.tokens(model, "clean"), capture=[site]).cache
    heads = d.n_heads if comp == "attn.q" else d.n_kv_heads
    base = _logit_diff(model, tp)
    out = np.zeros((tp.n, heads, tp.clean.shape[1]))
    for h in range(heads):
        query_head = h if comp == "attn.q" else h * d.group_size
        value = source[site][:, :, h]
        for p in range(tp.clean.shape[1]):
            iv = Patch(Site(layer, comp, query_head), value, positions=[p])  # type: ignore[arg-type]
            out[:, h, p] = _logit_diff(model, tp, [iv]) - base
    return out


def test_atp_star_equals_exact_patching_on_a_linear_model():
    model = _linearise(tiny_model("llama"))
    tp = token_pairs(3, 7)
    est = atp_star(model, tp, components=(*GRID, "attn.v"), control=False, progress=False)
    exact = activation_patching(
        model, tp, components=GRID, method="loop", control=False, progress=False
    )
    for c in GRID:
        scale = np.abs(exact.effect(c)).max()
        assert scale > 1e-3 or c == "mlp_out", c  # the MLPs write nothing here
        np.testing.assert_allclose(
            est.effect(c), exact.effect(c), atol=1e-4 * max(scale, 1e-3), err_msg=c
        )
    v = _exact_head_cells(model, tp, "attn.v", layer=1)
    np.testing.assert_allclose(est.effect("attn.v")[:, 1], v, atol=1e-4 * np.abs(v).max())
    np.testing.assert_allclose(est.clean, exact.clean, rtol=1e-5)


def test_neuron_estimates_equal_exact_single_neuron_patches_when_downstream_is_linear():
    model = _linearise(tiny_model("llama", num_hidden_layers=1), mlp=True)
    tp = token_pairs(3, 7)
    est = atp_star(model, tp, components=("mlp.post",), control=False, progress=False)
    assert est.effect("mlp.post").shape == (3, 1, model.dims.d_mlp, 7)
    site = Site(0, "mlp.post")
    source = model.run(tp.tokens(model, "clean"), capture=[site]).cache[site]
    base = _logit_diff(model, tp)
    rng = np.random.default_rng(0)
    for j, p in zip(rng.integers(0, model.dims.d_mlp, 12), [2, 4] * 6, strict=True):

        def write(t, j=int(j), p=int(p)):
            t = t.clone()
            t[:, p, j] = source[:, p, j]
            return t

        exact = _logit_diff(model, tp, [Apply(site, write)]) - base
        np.testing.assert_allclose(est.effect("mlp.post")[:, 0, j, p], exact, atol=1e-6)
    assert est.cell("mlp.post", (0, 5, 2)).label.startswith("L0.mlp.post.n5 @ 2")


def test_qk_fix_recovers_saturated_attention_cells_that_plain_attribution_misses():
    # Layer 0's softmax saturates (queries and keys scaled up); everything after it is linear, so
    # the only non-linearity between a q/k cell and the metric is the softmax the fix recomputes.
    model = _linearise(tiny_model("llama"), qk_scale=40.0)
    tp = token_pairs(3, 7)
    est = atp_star(
        model, tp, components=("attn.q", "attn.k"), graddrop=False, control=False, progress=False
    )
    for comp in ("attn.q", "attn.k"):
        exact = _exact_head_cells(model, tp, comp)
        star, plain = est.effect(comp)[:, 0], est.plain[comp][:, 0]
        scale = np.abs(exact).max()
        np.testing.assert_allclose(star, exact, atol=1e-4 * scale, err_msg=comp)
        assert np.abs(plain - exact).max() > 0.3 * scale, comp
        # A cell plain attribution calls (nearly) zero that matters: the saturation failure.
        blind = (np.abs(plain) < 0.1 * np.abs(exact)) & (np.abs(exact) > 0.2 * scale)
        assert blind.any(), comp


def test_qk_fix_matches_the_pattern_hf_computes_with_the_patched_queries():
    # Independent of the rotary rebuild: HF's own pattern with layer 1's queries pinned to the
    # source's and its keys to the base's gives every query row's patched softmax at once.
    model = tiny_model("llama")
    tp = token_pairs(3, 7)
    layer = 1
    est = atp_star(model, tp, components=("attn.q",), graddrop=False, control=False, progress=False)
    q, k, z, v, pat = (
        Site(layer, c) for c in ("attn.q", "attn.k", "attn.z", "attn.v", "attn.pattern")
    )
    src = model.run(tp.tokens(model, "clean"), capture=[q]).cache
    base = model.run(tp.tokens(model, "corrupt"), capture=[k, z, v, pat], grad=True)
    rows = torch.arange(tp.n)
    metric = base.logits[rows, -1, tp.answer] - base.logits[rows, -1, tp.wrong]
    (g_z,) = torch.autograd.grad(metric.sum(), [base.cache[z]])
    pinned = model.run(
        tp.tokens(model, "corrupt"),
        capture=[pat],
        interventions=[Patch(q, src[q]), Patch(k, base.cache[k].detach())],
    ).cache[pat]
    vals = base.cache[v].detach().repeat_interleave(model.dims.group_size, dim=2)
    g_a = torch.einsum("nthd,nshd->nhts", g_z, vals)
    expected = (g_a * (pinned - base.cache[pat].detach())).sum(-1)  # [n, H, T]
    np.testing.assert_allclose(est.effect("attn.q")[:, layer], expected.numpy(), atol=1e-5)


def test_graddrop_equals_backward_passes_with_each_layer_detached():
    model = tiny_model("llama", num_hidden_layers=3)
    tp = token_pairs(3, 7)
    comps = (*GRID, "attn.v", "mlp.post")
    est = atp_star(model, tp, components=comps, graddrop=True, control=False, progress=False)
    L = model.dims.n_layers
    sites = [Site(layer, c) for c in comps for layer in range(L)]  # type: ignore[arg-type]
    source = model.run(tp.tokens(model, "clean"), capture=sites).cache
    rows = torch.arange(tp.n)
    total = {c: np.zeros_like(est.effect(c)) for c in comps}
    for drop in range(L):
        detach = [Apply(Site(drop, c), lambda t: t.detach()) for c in ("attn_out", "mlp_out")]
        run = model.run(tp.tokens(model, "corrupt"), capture=sites, interventions=detach, grad=True)
        metric = run.logits[rows, -1, tp.answer] - run.logits[rows, -1, tp.wrong]
        grads = torch.autograd.grad(metric.sum(), [run.cache[s] for s in sites], allow_unused=True)
        for s, g in zip(sites, grads, strict=True):
            if s.layer == drop and s.component not in ("resid_pre", "resid_mid", "resid_post"):
                continue
            prod = (g * (source[s] - run.cache[s].detach())).detach().double()
            if s.component == "mlp.post":
                cell = prod.transpose(1, 2)
            elif prod.ndim == 4:
                cell = prod.sum(-1).transpose(1, 2)
            else:
                cell = prod.sum(-1)
            total[s.component][:, s.layer] += cell.abs().numpy()
    for c in comps:
        expected = total[c] / (L if c.startswith("resid") else L - 1)
        np.testing.assert_allclose(est.score(c), expected, atol=1e-5, err_msg=c)
    assert (est.score("resid_pre") >= 0).all()


def test_result_round_trips_and_draws(tmp_path):
    model = tiny_model("llama")
    est = atp_star(model, token_pairs(4, 7), components=("resid_pre", "attn.k"), progress=False)
    assert isinstance(est, AtPResult) and est.control is not None
    path = tmp_path / "atp.json"
    est.to_json(path)
    back = load(path)
    assert isinstance(back, AtPResult)
    np.testing.assert_array_equal(back.score("attn.k"), est.score("attn.k"))
    assert back.cell("attn.k", (1, 1, 3)).site == Site(1, "attn.k", 2)
    viz.figure(back)
    viz.figure(back, component="attn.k")
    assert viz.html(back)


def test_bad_input_names_the_problem():
    model = tiny_model("llama")
    with pytest.raises(ConfigError, match="components"):
        atp_star(model, token_pairs(), components=("attn.pattern",), progress=False)
    with pytest.raises(PatchingError, match="qk_fix=False"):
        atp_star(tiny_model("gpt2"), token_pairs(), components=("attn.q",), progress=False)
    plain = atp_star(
        tiny_model("gpt2"), token_pairs(), components=("attn.q",), qk_fix=False, control=False,
        progress=False,
    )  # fmt: skip
    np.testing.assert_array_equal(plain.effect("attn.q"), plain.plain["attn.q"])
