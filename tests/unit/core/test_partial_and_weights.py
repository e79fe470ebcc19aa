"""Core's partial-forward, weight and padded-batch API against plain HF on tiny models."""

from __future__ import annotations

import pytest
import torch

from interplab.core.model import InputError, Tokens
from interplab.core.partial import PartialUnsupported
from interplab.sites import Site

from helpers import tiny_model

FAMILIES = ["llama", "qwen3", "gpt2", "neox", "gemma3"]


def _ids(n: int = 3, length: int = 9, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(1, 256, (n, length), generator=g)


@pytest.mark.parametrize("family", ["llama", "qwen3"])
@pytest.mark.parametrize("start", [0, 4])
def test_partial_layers_from_a_cached_prefix_equal_the_full_forward(
    family: str, start: int
) -> None:
    model = tiny_model(family)
    ids = _ids()
    base = model.base_run(ids)
    n = model.dims.n_layers
    part = model.partial(start, ids.shape[1], base)
    rows = torch.tensor([2, 0, 1])
    hidden = base.resid[0][rows, start:]
    hidden = part.layers(0, n, hidden, rows)
    torch.testing.assert_close(hidden, base.resid[n][rows, start:], rtol=1e-5, atol=1e-5)
    logits = model.unembed(hidden[:, -1])
    torch.testing.assert_close(logits, base.logits[rows, -1], rtol=1e-5, atol=1e-5)
    cols = torch.tensor([[3, 7], [1, 2], [5, 5]])
    picked = model.unembed(hidden[:, -1], cols)
    torch.testing.assert_close(picked, logits.gather(1, cols), rtol=1e-5, atol=1e-5)


def test_partial_layer_applies_active_interventions() -> None:
    model = tiny_model("llama")
    ids = _ids()
    from interplab.core.interventions import Scale

    base = model.base_run(ids)
    with model.intervene([Scale("L1.mlp_out", 0.0)]):
        part = model.partial(0, ids.shape[1])
        out = part.layers(0, 2, base.resid[0])
    expected = model.run(ids, capture=["L1.resid_post"], interventions=[Scale("L1.mlp_out", 0.0)])
    torch.testing.assert_close(out, expected.cache["L1.resid_post"], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("family", ["gpt2", "neox", "gemma3"])
def test_partial_forwards_refuse_other_families_with_the_reason(family: str) -> None:
    model = tiny_model(family)
    assert not model.supports_partial()
    reason = model.partial_support()
    assert reason
    with pytest.raises(PartialUnsupported, match=reason.split(",")[0][:20]):
        model.base_run(_ids())


def test_partial_support_refuses_padded_batches() -> None:
    model = tiny_model("llama")
    mask = torch.ones(3, 9, dtype=torch.long)
    mask[0, 7:] = 0
    assert "padding" in (model.partial_support(model.tokens(_ids(), mask)) or "")


@pytest.mark.parametrize("family", FAMILIES)
def test_weights_reproduce_attn_out_and_the_logits(family: str) -> None:
    model = tiny_model(family)
    ids = _ids(2, 6)
    w = model.weights
    run = model.run(ids, capture=["L0.attn.z", "L0.mlp.post", "final_norm", "embed"])
    z = run.cache["L0.attn.z"]  # [b, pos, head, d_head]
    out = torch.einsum("bphd,hdm->bpm", z, w.W_O(0))
    if w.b_O(0) is not None:
        out = out + w.b_O(0)
    norm = w.attn_out_norm(0)
    if norm is not None:
        out = norm.apply(out)
    attn = model.run(ids, capture=["L0.attn_out"]).cache["L0.attn_out"]
    torch.testing.assert_close(out, attn, rtol=1e-4, atol=1e-5)
    mlp = run.cache["L0.mlp.post"] @ w.W_out(0)
    if w.b_out(0) is not None:
        mlp = mlp + w.b_out(0)
    norm = w.mlp_out_norm(0)
    if norm is not None:
        mlp = norm.apply(mlp)
    mlp_out = model.run(ids, capture=["L0.mlp_out"]).cache["L0.mlp_out"]
    torch.testing.assert_close(mlp, mlp_out, rtol=1e-4, atol=1e-5)
    logits = run.cache["final_norm"] @ w.W_U
    if w.b_U is not None:
        logits = logits + w.b_U
    torch.testing.assert_close(logits, run.logits, rtol=1e-4, atol=1e-5)
    assert w.W_E.shape == (model.dims.d_vocab, model.dims.d_model)
    assert w.W_in(0).shape == (model.dims.d_model, model.dims.d_mlp)
    assert (w.W_gate(0) is None) == (family in ("gpt2", "neox"))


def test_weight_views_write_through() -> None:
    model = tiny_model("llama").copy()
    before = model(_ids(1, 5))
    with torch.no_grad():
        model.weights.W_O(1).mul_(0.0)
    after = model.run(_ids(1, 5), capture=["L1.attn_out"])
    assert torch.count_nonzero(after.cache["L1.attn_out"]) == 0
    assert not torch.equal(before, after.logits)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("side", ["left", "right"])
def test_a_padded_row_computes_what_it_computes_alone(family: str, side: str) -> None:
    model = tiny_model(family)
    long, short = _ids(1, 8, 1)[0], _ids(1, 5, 2)[0]
    ids = torch.zeros(2, 8, dtype=torch.long)
    mask = torch.zeros(2, 8, dtype=torch.long)
    ids[0], mask[0] = long, 1
    sl = slice(3, 8) if side == "left" else slice(0, 5)
    ids[1, sl], mask[1, sl] = short, 1
    tokens = model.tokens(ids, mask)
    assert tokens.padding_side == side
    run = model.run(tokens, capture=["L1.resid_post"])
    alone = model.run(short, capture=["L1.resid_post"])
    torch.testing.assert_close(run.logits[1, sl], alone.logits[0], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(run.at(position=-1)[1], alone.logits[0, -1], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(
        run.at(Site(1, "resid_post"), 0)[1],
        alone.cache["L1.resid_post"][0, 0],
        rtol=1e-4,
        atol=1e-4,
    )
    assert tokens.index(-1).tolist() == [7, 7 if side == "left" else 4]


def test_tokens_reject_mismatched_masks_and_out_of_range_positions() -> None:
    with pytest.raises(InputError, match="same shape"):
        Tokens(torch.zeros(2, 3, dtype=torch.long), torch.ones(2, 4, dtype=torch.long))
    with pytest.raises(InputError, match="all zeros"):
        Tokens(torch.zeros(1, 3, dtype=torch.long), torch.zeros(1, 3, dtype=torch.long))
    t = Tokens(torch.zeros(1, 3, dtype=torch.long), torch.ones(1, 3, dtype=torch.long))
    with pytest.raises(InputError, match="valid positions"):
        t.index(5)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("sites", [["embed"], ["L0.resid_post", "L0.mlp.post"], ["L1.attn.z"]])
def test_activations_stop_after_the_deepest_site_and_equal_a_full_capture(
    family: str, sites: list[str]
) -> None:
    model = tiny_model(family)
    ids = _ids()
    full = model.run(ids, capture=sites).cache
    calls: list[int] = []
    last = model.hf.lm_head.register_forward_hook(lambda *_: calls.append(1))  # type: ignore[union-attr]
    try:
        early = model.activations(ids, sites)
    finally:
        last.remove()
    for s in sites:
        assert torch.equal(early[s], full[s])
    assert calls == []  # the unembedding never ran
