"""Path patching on tiny random models: the batched sweeps (fast and hooks) equal the three steps
written plainly, one sender at a time; a last-layer sender to the logits is activation patching;
with everything frozen the effect on the logits is the sender's direct write."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from interplab import viz
from interplab.configs import ConfigError
from interplab.core.interventions import Patch
from interplab.results import load
from interplab.results.patching import PathPatchingResult
from interplab.sites import Site
from interplab.techniques.patching import (
    PatchingError,
    PathPatchingConfig,
    TokenPairs,
    activation_patching,
    path_patching,
)

from helpers import tiny_model, token_pairs

RECEIVERS = ["L2.attn.q.h1", "L3.attn.v.h0", "L3.attn.k.h3"]


class _IdentityNorm(nn.Module):
    """A final norm that returns its input (a weight and an epsilon, as norms have)."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(1))
        self.eps = 0.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


_pairs = token_pairs


@pytest.fixture(scope="module")
def llama():
    return tiny_model("llama", num_hidden_layers=4)


def _reference(model, tp: TokenPairs, receivers, freeze_mlps: bool) -> dict[str, np.ndarray]:
    """The three steps of the method, one sender at a time, with plain Patch interventions."""
    d = model.dims
    layers = range(d.n_layers)
    sites = [Site(i, c) for i in layers for c in ("attn.z", "mlp_out")]
    clean, corrupt = model.run(tp.clean, capture=sites), model.run(tp.corrupt, capture=sites)

    def metric(logits):
        last = logits[:, -1]
        rows = torch.arange(tp.n)
        return (last[rows, tp.answer] - last[rows, tp.wrong]).double().numpy()

    base = metric(clean.logits)
    frozen = [Patch(Site(i, "attn.z"), clean.cache[Site(i, "attn.z")]) for i in layers]
    if freeze_mlps:
        frozen += [Patch(Site(i, "mlp_out"), clean.cache[Site(i, "mlp_out")]) for i in layers]
    out = {
        "attn.z": np.zeros((tp.n, d.n_layers, d.n_heads)),
        "mlp_out": np.zeros((tp.n, d.n_layers)),
    }
    for layer in layers:
        senders: list[tuple[str, tuple[int, ...], Site]] = [
            ("attn.z", (layer, h), Site(layer, "attn.z", h)) for h in range(d.n_heads)
        ]
        senders.append(("mlp_out", (layer,), Site(layer, "mlp_out")))
        for comp, idx, site in senders:
            value = corrupt.cache[site.with_head(None)]
            value = value[:, :, site.head] if site.head is not None else value
            ivs = [*frozen, Patch(site, value)]
            if receivers == "logits":
                patched = metric(model.run(tp.clean, interventions=ivs).logits)
            else:
                step2 = model.run(tp.clean, capture=receivers, interventions=ivs)
                writes = [Patch(r, step2.cache[r]) for r in receivers]
                patched = metric(model.run(tp.clean, interventions=writes).logits)
            out[comp][(slice(None), *idx)] = patched - base
    return out


@pytest.mark.parametrize("freeze_mlps", [False, True])
@pytest.mark.parametrize("receivers", ["logits", RECEIVERS])
def test_batched_sweeps_equal_one_sender_at_a_time(llama, receivers, freeze_mlps):
    tp = _pairs()
    ref = _reference(llama, tp, receivers, freeze_mlps)
    top = 4 if receivers == "logits" else 3
    for method in ("fast", "hooks"):
        r = path_patching(
            llama,
            tp,
            senders="all",
            receivers=receivers,
            freeze_mlps=freeze_mlps,
            method=method,
            progress=False,
        )
        assert r.method == method
        for c in ("attn.z", "mlp_out"):
            got = r.effect(c)
            assert np.isnan(got[:, top:]).all() and np.isfinite(got[:, :top]).all()
            np.testing.assert_allclose(got[:, :top], ref[c][:, :top], atol=1e-5, err_msg=c)
            # "No path" is real: the reference finds no effect there either.
            np.testing.assert_allclose(ref[c][:, top:], 0.0, atol=1e-5)
        assert np.abs(ref["attn.z"][:, :top]).max() > 1e-2  # the test can see a wrong answer
    assert (r.note != "") == (receivers != "logits")


def test_other_families_take_the_hook_path_and_agree_with_the_reference():
    model = tiny_model("gpt2")
    tp = _pairs(2, 6)
    r = path_patching(model, tp, senders="all", receivers=["L1.attn.q.h2"], progress=False)
    assert r.method == "hooks" and "hook path used" in r.note
    ref = _reference(model, tp, ["L1.attn.q.h2"], False)
    np.testing.assert_allclose(r.effect("attn.z")[:, 0], ref["attn.z"][:, 0], atol=1e-5)
    np.testing.assert_allclose(r.effect("mlp_out")[:, 0], ref["mlp_out"][:, 0], atol=1e-5)


def test_a_last_layer_sender_to_the_logits_is_activation_patching(llama):
    tp = _pairs(4)
    r = path_patching(llama, tp, senders="all", progress=False)
    act = activation_patching(
        llama, tp, components=("attn.z", "mlp_out"), per="all", direction="noise", progress=False
    )
    for c in ("attn.z", "mlp_out"):
        np.testing.assert_allclose(r.effect(c)[:, -1], act.effect(c)[:, -1], atol=1e-5)
    np.testing.assert_allclose(r.clean, act.clean, atol=1e-6)
    np.testing.assert_allclose(r.corrupt, act.corrupt, atol=1e-6)


def test_identical_prompts_give_exactly_zero_effects(llama):
    p = _pairs()
    same = TokenPairs(p.clean, p.clean, p.answer, p.wrong)
    for receivers in ("logits", RECEIVERS):
        r = path_patching(llama, same, senders="all", receivers=receivers, progress=False)
        for c in ("attn.z", "mlp_out"):
            e = r.effect(c)
            assert np.all(e[np.isfinite(e)] == 0.0)


def test_with_everything_frozen_the_logit_effect_is_the_senders_direct_write():
    # With MLPs frozen too, only the sender's own write reaches the final residual; with the final
    # norm made the identity the logit difference is linear in it, so the effect is exactly
    # (z_corrupt - z_clean) W_O (u_answer - u_wrong) at the answer position: a direct logit
    # attribution difference. Recomputed MLPs pass the change on, so they must give other numbers.
    model = tiny_model("llama", num_hidden_layers=4)
    model.hf.model.norm = _IdentityNorm()  # type: ignore[union-attr]
    tp = _pairs(4)
    d = model.dims
    frozen = path_patching(model, tp, senders="all", freeze_mlps=True, progress=False)
    free = path_patching(model, tp, senders="all", freeze_mlps=False, progress=False)
    sites = [Site(i, c) for i in range(d.n_layers) for c in ("attn.z", "mlp_out")]
    clean, corrupt = model.run(tp.clean, capture=sites), model.run(tp.corrupt, capture=sites)
    u = model.weights.W_U.detach().T  # [vocab, d_model]
    direction = (u[tp.answer] - u[tp.wrong]).double()  # [n, d_model]
    for i in range(d.n_layers):
        dz = (corrupt.cache[Site(i, "attn.z")] - clean.cache[Site(i, "attn.z")])[:, -1].double()
        w_o = model.weights.W_O(i).detach().double()  # [head, d_head, d_model]
        direct = torch.einsum("nhk,hkd,nd->nh", dz, w_o, direction).numpy()
        np.testing.assert_allclose(frozen.effect("attn.z")[:, i], direct, atol=1e-5)
        dm = (corrupt.cache[Site(i, "mlp_out")] - clean.cache[Site(i, "mlp_out")])[:, -1]
        mlp_direct = (dm.double() * direction).sum(-1).numpy()
        np.testing.assert_allclose(frozen.effect("mlp_out")[:, i], mlp_direct, atol=1e-5)
    assert np.abs(free.effect("attn.z") - frozen.effect("attn.z")).min(0).max() > 1e-3
    # Only the last MLP has nothing downstream to recompute.
    np.testing.assert_allclose(free.effect("mlp_out")[:, -1], frozen.effect("mlp_out")[:, -1])


def test_chunks_under_a_tiny_budget_give_the_same_effects(llama):
    for receivers in ("logits", RECEIVERS):
        big = path_patching(llama, _pairs(), senders="all", receivers=receivers, progress=False)
        small = path_patching(
            llama,
            _pairs(),
            senders="all",
            receivers=receivers,
            batch_budget_mb=0.001,
            progress=False,
        )
        for c in ("attn.z", "mlp_out"):
            # Other batch shapes round differently (measured up to 1.3e-6 on two CPU threads).
            np.testing.assert_allclose(small.effect(c), big.effect(c), atol=1e-5)


def test_sender_lists_fill_only_their_cells(llama):
    r = path_patching(
        llama, _pairs(), senders=["L1.attn.z.h2", "L0.mlp_out", "L2.attn.z"], progress=False
    )
    full = path_patching(llama, _pairs(), senders="all", progress=False)
    assert r.note == ""  # unlisted cells are NaN without being "no path"
    heads = r.effect("attn.z")
    done = np.isfinite(heads[0])
    assert done.sum() == 1 + 4 and done[1, 2] and done[2].all()
    np.testing.assert_allclose(heads[:, done], full.effect("attn.z")[:, done], atol=1e-6)
    assert np.isfinite(r.effect("mlp_out")[0]).tolist() == [True, False, False, False]
    assert path_patching(llama, _pairs(), senders="mlps", progress=False).components == ("mlp_out",)


def test_result_summary_json_figure_and_heatmaps(llama, tmp_path):
    r = path_patching(llama, _pairs(4), receivers=RECEIVERS, progress=False)
    assert r.effect().shape == (4, 4, 4) and r.axes() == ("example", "layer", "head")
    s = r.summary(n_resamples=500)
    assert s.n_tests == 3 * 4  # senders in layers 0-2 only: the rest have no path
    top = r.top_cells(k=3, summary=s)
    assert top[0].site.component == "attn.z" and top[0].site.layer < 3  # type: ignore[operator]
    assert top[0].position is None and np.isfinite(top[0].mean)
    assert top[0].mean == s.mean[top[0].site.layer, top[0].site.head]
    data = r.to_dict()
    assert data["receivers"] == RECEIVERS and data["provenance"]["config"]["freeze_mlps"] is False
    back = load(r.to_json(tmp_path / "r.json"))
    assert isinstance(back, PathPatchingResult) and back.receivers == r.receivers
    np.testing.assert_array_equal(back.effect(), r.effect())  # NaN where no path, kept
    assert back.note == r.note and back.method == r.method
    viz.figure(r)
    viz.figure(back)
    assert "L2.attn.q.h1" in viz.heatmaps(r)[0].title


def test_a_config_runs_what_the_keywords_run(llama):
    by_keywords = path_patching(
        llama, _pairs(), senders=["L1.attn.z", "L0.mlp_out"], progress=False
    )
    config = PathPatchingConfig(
        senders="sites", sender_sites=(Site(1, "attn.z"), Site(0, "mlp_out"))
    )
    by_config = path_patching(llama, _pairs(), config=config, progress=False)
    assert by_config.provenance.config == by_keywords.provenance.config
    assert by_config.provenance.config["sender_sites"] == ["L1.attn.z", "L0.mlp_out"]
    for c in ("attn.z", "mlp_out"):
        np.testing.assert_array_equal(by_config.effect(c), by_keywords.effect(c))


def test_errors_name_the_problem(llama):
    p = _pairs()
    with pytest.raises(PatchingError, match="not one head's q, k or v"):
        path_patching(llama, p, receivers=["L2.attn.z.h1"], progress=False)
    with pytest.raises(PatchingError, match="not one head's q, k or v"):
        path_patching(llama, p, receivers=["L2.attn.q"], progress=False)
    with pytest.raises(PatchingError, match="no path"):
        path_patching(llama, p, senders=["L2.attn.z.h0"], receivers=["L2.attn.q.h1"])
    with pytest.raises(PatchingError, match="senders must be 'heads'"):
        path_patching(llama, p, senders="neurons", progress=False)  # type: ignore[arg-type]
    with pytest.raises(PatchingError, match="senders must be 'heads'"):
        path_patching(llama, p, senders=["L1.resid_pre"], progress=False)
    with pytest.raises(PatchingError, match="out of range"):
        path_patching(llama, p, senders=["L9.attn.z.h0"], progress=False)
    with pytest.raises(ConfigError, match="method"):
        path_patching(llama, p, method="magic", progress=False)  # type: ignore[arg-type]
    with pytest.raises(PatchingError, match="fast path cannot run"):
        path_patching(tiny_model("gpt2"), p, method="fast", progress=False)
