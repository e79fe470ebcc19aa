"""Attribution edges against a plain-PyTorch reference: a Llama forward written out by hand, in
float64, with attention patterns and RMS scales frozen at their clean values and the MLP outputs
held at features + error; every edge is the change of every target when one source's vector is
injected (exact, since that frozen model is linear)."""

import math

import pytest
import torch

from interplab.dictionaries import DictionaryConfig, build
from interplab.sites import Site
from interplab.techniques.graphs.attribution import attribute
from interplab.techniques.graphs.replacement import prepare, replacement_logits, transcoder_set

from helpers import tiny_model, tokens

N_POS = 7


def make_transcoders(skip: bool, layers=(0, 1)):
    out = {}
    for layer in layers:
        c = DictionaryConfig(
            "topk",
            d_in=64,
            d_sae=48,
            k=5,
            kind="skip_transcoder" if skip else "transcoder",
            d_out=64,
            site=Site(layer, "mlp.in"),
            target=Site(layer, "mlp_out"),
        )
        d = build(c, seed=10 + layer).eval()
        g = torch.Generator().manual_seed(20 + layer)
        with torch.no_grad():
            d.W_enc.mul_(3.0)
            d.b_enc.copy_(0.1 * torch.randn(48, generator=g))
            d.b_dec.copy_(0.05 * torch.randn(64, generator=g))
            if d.W_skip is not None:
                d.W_skip.copy_(0.1 * torch.randn(64, 64, generator=g))
        out[layer] = d
    return out


@pytest.fixture(scope="module")
def model():
    return tiny_model("llama")


def _rotate(x):
    a, b = x.chunk(2, -1)
    return torch.cat([-b, a], -1)


class Reference:
    """A hand-written Llama forward on the HF weights (float64) that can freeze, at the values of
    a clean run, every RMS scale and attention pattern, and hold the MLP outputs fixed."""

    def __init__(self, hf):
        self.hf = hf.double()
        cfg = hf.config
        self.n_heads, self.n_kv = cfg.num_attention_heads, cfg.num_key_value_heads
        self.d_head = cfg.hidden_size // self.n_heads
        self.eps = cfg.rms_norm_eps
        self.frozen: dict | None = None

    def rms(self, x, norm, key, record):
        scale = torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        if self.frozen is not None:
            scale = self.frozen[key]
        record[key] = scale
        return norm.weight * (x * scale)

    def forward(self, ids, mlp_out=None, inject=None, mlp_fn=None):
        """Returns (final normed residual, mlp inputs, mlp outputs, record of scales/patterns).
        ``inject[(site, pos)]`` adds a vector there; ``mlp_out[l]`` replaces the MLP output, or
        ``mlp_fn(l, mlp_in)`` computes it."""
        inject = inject or {}
        m = self.hf.model
        record, ins, outs = {}, {}, {}
        x = m.embed_tokens(ids)[0]
        x = x + inject.get("embed", 0)
        T = x.shape[0]
        cos, sin = m.rotary_emb(x[None], torch.arange(T)[None])
        cos, sin = cos[0], sin[0]
        mask = torch.full((T, T), -math.inf, dtype=x.dtype).triu(1)
        for i, layer in enumerate(m.layers):
            a = layer.self_attn
            h = self.rms(x, layer.input_layernorm, ("ln1", i), record)
            q = (h @ a.q_proj.weight.T).view(T, self.n_heads, self.d_head).transpose(0, 1)
            k = (h @ a.k_proj.weight.T).view(T, self.n_kv, self.d_head).transpose(0, 1)
            v = (h @ a.v_proj.weight.T).view(T, self.n_kv, self.d_head).transpose(0, 1)
            q, k = q * cos + _rotate(q) * sin, k * cos + _rotate(k) * sin
            rep = self.n_heads // self.n_kv
            k, v = k.repeat_interleave(rep, 0), v.repeat_interleave(rep, 0)
            pattern = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(self.d_head) + mask, -1)
            if self.frozen is not None:
                pattern = self.frozen[("attn", i)]
            record[("attn", i)] = pattern
            z = (pattern @ v).transpose(0, 1).reshape(T, -1)
            x = x + z @ a.o_proj.weight.T
            h2 = self.rms(x, layer.post_attention_layernorm, ("ln2", i), record)
            ins[i] = h2
            if mlp_fn is not None:
                out = mlp_fn(i, h2)
            elif mlp_out is not None:
                out = mlp_out[i]
            else:
                mlp = layer.mlp
                gate = torch.nn.functional.silu(h2 @ mlp.gate_proj.weight.T)
                out = (gate * (h2 @ mlp.up_proj.weight.T)) @ mlp.down_proj.weight.T
            outs[i] = out
            x = x + out + inject.get(i, 0)
        final = self.rms(x, m.norm, ("final", 0), record)
        return final, ins, outs, record


@pytest.mark.parametrize("skip", [False, True])
def test_every_edge_equals_the_effect_of_its_source_in_a_frozen_reference(model, skip):
    ids = tokens(1, N_POS, seed=3)
    tcs = transcoder_set(make_transcoders(skip), model, name="tiny")
    rep = prepare(model, tcs, ids)
    graph = attribute(model, tcs, rep, batch_size=16, progress=False)

    ref = Reference(tiny_model("llama").hf)
    final, ins, outs, record = ref.forward(ids)
    # The reference's clean run is the real model's (checks the hand-written forward).
    W_U = ref.hf.lm_head.weight
    assert torch.allclose((final @ W_U.T).float(), rep.logits, atol=1e-4)
    ref.frozen = record
    n_layers, T = 2, N_POS
    clean_in = {i: ins[i].detach() for i in ins}

    def mlp_fn(i, h2):  # features + error stay; a skip transcoder's linear path responds
        out = outs[i].detach()
        if skip:
            W = tcs.by_layer[i].W_skip
            assert W is not None
            out = out + (h2 - clean_in[i]) @ W.double().T
        return out

    active = rep.active
    enc = rep.encoders.double()
    vecs = graph.logits.vectors.double()

    def targets(final_, ins_):
        feats = torch.stack(
            [ins_[int(lay)][int(p)] @ enc[j] for j, (lay, p, _) in enumerate(active.tolist())]
        )
        return torch.cat([feats, vecs @ final_[-1]])

    base = targets(*ref.forward(ids, mlp_fn=mlp_fn)[:2])
    n_f = len(active)
    sources = []  # (column, inject dict)
    for j, (lay, p, _) in enumerate(active.tolist()):
        v = torch.zeros(T, 64, dtype=torch.float64)
        v[p] = rep.decoders[j].double()
        sources.append((j, {lay: v}))
    for lay in range(n_layers):
        for p in range(T):
            v = torch.zeros(T, 64, dtype=torch.float64)
            v[p] = rep.errors[lay, p].double()
            sources.append((n_f + lay * T + p, {lay: v}))
    for p in range(T):
        v = torch.zeros(T, 64, dtype=torch.float64)
        v[p] = rep.embeddings[p].double()
        sources.append((n_f + n_layers * T + p, {"embed": v}))
    n_src = n_f + n_layers * T + T
    expected = torch.zeros(n_f + graph.n_logits, n_src, dtype=torch.float64)
    with torch.no_grad():
        for col, inj in sources:
            expected[:, col] = targets(*ref.forward(ids, mlp_fn=mlp_fn, inject=inj)[:2]) - base
    got = torch.cat([graph.adjacency[:n_f, :n_src], graph.adjacency[-graph.n_logits :, :n_src]])
    scale = expected.abs().max()
    assert scale > 0
    assert (got.double() - expected).abs().max() <= 1e-4 * scale
    # Same-layer and upward edges are exactly zero; error and token rows are empty.
    assert bool((graph.adjacency[n_f : -graph.n_logits] == 0).all())


def test_replacement_reproduces_the_real_logits(model):
    ids = tokens(1, N_POS, seed=4)
    for skip in (False, True):
        tcs = transcoder_set(make_transcoders(skip, layers=(1,)), model, name="tiny")
        rep = prepare(model, tcs, ids)
        logits = replacement_logits(model, tcs, rep)
        assert torch.allclose(logits, rep.logits, atol=1e-5, rtol=1e-5)
        # Layer 0 has no transcoder: all error.
        assert torch.equal(rep.errors[0, 1:], rep.mlp_out[0, 1:])
        # Features plus error are the MLP output at every attributed position.
        recon = rep.reconstruction[1] + rep.errors[1]
        assert torch.allclose(recon[1:], rep.mlp_out[1, 1:], atol=1e-5)


def test_linearised_forward_leaves_logits_bit_identical(model):
    from interplab.core.linearise import linearised

    ids = tokens(2, N_POS, seed=5)
    plain = model.forward(ids)
    with linearised(model):
        same = model.forward(ids, grad=True)
    assert torch.equal(plain, same)
    assert all(p.requires_grad for p in model.hf.parameters())
