"""Architectures: shapes, the sparse kernels against dense autograd, folding, JumpReLU's STE."""

import pytest
import torch

from interplab.configs import ConfigError
from interplab.dictionaries import DictionaryConfig, DictionaryError, build
from interplab.dictionaries.registry import REGISTRY, architecture_class
from interplab.dictionaries.sparse import code_values, decode_code, select_batch_topk, select_topk
from interplab.sites import Site

ARCHS = sorted(REGISTRY)
KINDS = ("sae", "transcoder", "skip_transcoder")


def config(arch: str, kind: str = "sae", **kw) -> DictionaryConfig:
    return DictionaryConfig(
        arch,  # type: ignore[arg-type]
        d_in=16,
        d_sae=48,
        k=4,
        kind=kind,  # type: ignore[arg-type]
        d_out=None if kind == "sae" else 12,
        matryoshka_widths=(8, 24) if arch == "matryoshka_batchtopk" else (),
        **kw,
    )


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("kind", KINDS)
def test_every_architecture_encodes_decodes_and_trains(arch, kind):
    d = build(config(arch, kind), seed=0)
    x = torch.randn(32, 16, generator=torch.Generator().manual_seed(1))
    target = x if kind == "sae" else torch.randn(32, 12)
    f = d.encode(x)
    assert f.shape == (32, 48) and bool((f >= 0).all())
    assert d(x).shape == (32, d.d_out)
    dead = torch.zeros(48, dtype=torch.bool)
    dead[::4] = True
    step = d.train_step(x, target, dead)
    step.loss.backward()
    for name, p in d.named_parameters():
        assert p.grad is not None and bool(torch.isfinite(p.grad).all()), name
    assert step.recon.shape == target.shape and not step.recon.requires_grad


def test_topk_keeps_k_per_token_and_batchtopk_k_on_average():
    x = torch.randn(64, 16)
    topk = build(config("topk")).eval()
    assert bool(((topk.encode(x) > 0).sum(-1) <= 4).all())
    pre = torch.randn(64, 48)
    code = select_batch_topk(pre, 4)
    assert code.values.numel() == 4 * 64  # every kept pre-activation here is positive enough
    flat = pre.flatten().topk(4 * 64).values
    assert torch.equal(code.values.sort().values, flat.sort().values)


def test_batch_topk_falls_back_when_one_row_owns_more_than_its_candidates():
    pre = torch.randn(8, 48) - 5
    pre[3] = torch.linspace(10, 20, 48)  # row 3 holds the top 48 values of the batch
    code = select_batch_topk(pre, 6)  # 48 kept; row 3 has only 24 candidates
    assert int((code.rows == 3).sum()) == 48
    assert torch.equal(code.dense(), torch.where(code.dense() > 0, pre, 0.0))


@pytest.mark.parametrize("kind", ["sae", "transcoder"])
@pytest.mark.parametrize("select", ["topk", "batch"])
def test_sparse_gradients_equal_dense_autograd(kind, select):
    g = torch.Generator().manual_seed(0)
    W_enc = torch.randn(16, 48, generator=g, requires_grad=True)
    b_enc = torch.randn(48, generator=g, requires_grad=True)
    W_dec = torch.randn(48, 12, generator=g, requires_grad=True)
    b_dec = torch.randn(16, generator=g, requires_grad=True)
    x = torch.randn(20, 16, generator=g)
    upstream = torch.randn(20, 12, generator=g)

    def x_in():
        return x - b_dec if kind == "sae" else x

    with torch.no_grad():
        pre = x_in() @ W_enc + b_enc
    code = select_topk(pre, 5) if select == "topk" else select_batch_topk(pre, 5)
    sparse = decode_code(code_values(code, x_in(), W_enc, b_enc), W_dec)
    (sparse * upstream).sum().backward()
    params = (W_enc, b_enc, W_dec, b_dec)
    grads = [None if p.grad is None else p.grad.clone() for p in params]
    for p in params:
        p.grad = None
    mask = code.dense() != 0
    dense = ((x_in() @ W_enc + b_enc) * mask) @ W_dec
    (dense * upstream).sum().backward()
    assert torch.allclose(sparse, dense, atol=1e-5)
    for a, p in zip(grads, params, strict=True):
        assert (a is None) == (p.grad is None)
        assert a is None or torch.allclose(a, p.grad, atol=1e-4)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("kind", KINDS)
def test_fold_makes_a_scaled_dictionary_read_raw_activations(arch, kind):
    d = build(config(arch, kind), seed=2).eval()
    with torch.no_grad():
        d.b_enc.normal_()
        d.b_dec.normal_()
        if d.W_skip is not None:
            d.W_skip.normal_()
        if getattr(d, "threshold", None) is not None:
            d.threshold.uniform_(0, 0.3)
    x = torch.randn(40, 16)
    s_in, s_out = 3.0, 0.5 if kind != "sae" else 3.0
    before_f = d.encode(x * s_in)
    before = d(x * s_in) / s_out
    d.fold(s_in, s_out)
    assert torch.allclose(d(x), before, atol=1e-4)
    assert torch.equal(d.encode(x) > 0, before_f > 0)
    assert torch.allclose(d.W_dec.norm(dim=1), torch.ones(48), atol=1e-5)


def test_decoder_gradient_projection_keeps_rows_unit_norm_to_first_order():
    d = build(config("topk"))
    d.W_dec.grad = torch.randn_like(d.W_dec)
    d.project_decoder_grad()
    assert torch.allclose((d.W_dec.grad * d.W_dec).sum(1), torch.zeros(48), atol=1e-5)
    with torch.no_grad():
        d.W_dec.mul_(3)
    d.normalize_decoder()
    assert torch.allclose(d.W_dec.norm(dim=1), torch.ones(48), atol=1e-6)


def test_jumprelu_threshold_gradient_is_the_straight_through_estimate():
    d = build(
        config("jumprelu", jumprelu_bandwidth=0.5, jumprelu_init_threshold=0.2, l0_coefficient=1.0)
    )
    x = torch.randn(50, 16)
    step = d.train_step(x, x, torch.zeros(48, dtype=torch.bool))
    step.loss.backward()
    with torch.no_grad():
        pre = (x - d.b_dec) @ d.W_enc + d.b_enc
        window = ((pre - 0.2).abs() < 0.25).double()
        recon = (pre * (pre > 0.2)) @ d.W_dec + d.b_dec
        grad_f = (2 * (recon - x) / 50) @ d.W_dec.T  # d mse / d f
        expected = (-(0.2 / 0.5) * window * grad_f - (1 / 0.5) * window / 50).sum(0)
    assert torch.allclose(d.threshold.grad.double(), expected, atol=1e-4)


def test_bad_configs_are_refused_with_the_valid_choices():
    with pytest.raises(ConfigError, match="topk"):
        DictionaryConfig("relu")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="k=64 exceeds"):
        DictionaryConfig("topk", d_in=8, d_sae=32, k=64)
    with pytest.raises(ConfigError, match="SAE reconstructs"):
        DictionaryConfig("topk", d_in=8, d_sae=32, k=4, d_out=4)
    with pytest.raises(ConfigError, match="increase"):
        DictionaryConfig("matryoshka_batchtopk", d_in=8, d_sae=32, k=4, matryoshka_widths=(8, 4))
    with pytest.raises(DictionaryError, match="known"):
        architecture_class("gated")


def test_dictionary_refuses_vectors_of_the_wrong_width():
    d = build(config("topk", site=Site(3, "resid_post")))
    with pytest.raises(DictionaryError, match=r"width 16.*width 10"):
        d.encode(torch.randn(4, 10))


def test_sites_may_be_given_as_strings():
    c = DictionaryConfig(
        "topk",
        d_in=16,
        d_sae=48,
        k=4,
        site="L3.mlp.in",
        target="L3.mlp_out",  # type: ignore[arg-type]
        kind="transcoder",
        d_out=16,
    )
    assert (c.site, c.write_site) == (Site(3, "mlp.in"), Site(3, "mlp_out"))
