"""Every adapter against HF itself, on a tiny random model of each family.

These tests are the proof that a Site names the activation it claims to: each derived quantity is
compared with what HF computes or returns, bit for bit wherever the arithmetic is the same.
Independent oracles: HF's ``output_hidden_states`` and ``output_attentions``, the tensors HF
passes to ``apply_rotary_pos_emb`` and to its attention function, and HF's own split of fused and
interleaved projections, re-done here from the modeling source.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch
from torch import Tensor, nn
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

from interplab.core.interventions import Ablate, Patch
from interplab.core.model import Model
from interplab.models.adapter import get_module
from interplab.models.registry import adapter_for
from interplab.sites import PER_HEAD, Site, SiteError, all_sites

from helpers import tiny_model, tokens

CASES: list[tuple[str, dict[str, Any]]] = [
    ("llama", {}),
    ("qwen3", {}),
    ("gpt2", {}),
    ("neox", {"use_parallel_residual": True}),
    ("neox", {"use_parallel_residual": False}),
    ("gemma3", {}),
]
IDS = ["llama", "qwen3", "gpt2", "neox-parallel", "neox-serial", "gemma3"]

# The HF modeling module of each family, for the rotary function its attention calls.
_MODELING = {
    "llama": "transformers.models.llama.modeling_llama",
    "qwen3": "transformers.models.qwen3.modeling_qwen3",
    "neox": "transformers.models.gpt_neox.modeling_gpt_neox",
    "gemma3": "transformers.models.gemma3.modeling_gemma3",
}


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Iterator[None]:
    # A tiny model's matmuls take microseconds on one thread; on a busy machine, waking a second
    # thread per op costs milliseconds, which made this file ten times slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module", params=CASES, ids=IDS)
def model(request: pytest.FixtureRequest) -> Model:
    family, overrides = request.param
    return tiny_model(family, **overrides)


@pytest.fixture(scope="module")
def ids() -> Tensor:
    return tokens(batch=2, length=9)


def _has_mid(m: Model) -> bool:
    return not m.adapter.parallel_residual(m.hf.config)


def _sites(m: Model) -> list[Site]:
    """Every whole-layer site of the model except patterns (which need eager attention)."""
    return [
        s
        for s in all_sites(m.dims)
        if s.component != "attn.pattern" and (s.component != "resid_mid" or _has_mid(m))
    ]


def _plain_logits(m: Model, ids: Tensor) -> Tensor:
    with torch.no_grad():
        return m.hf(input_ids=ids, use_cache=False).logits


class _Recorder:
    """Records a module's output (or input) with an ordinary hook, outside interplab."""

    def __init__(self, module: nn.Module, *, inputs: bool = False) -> None:
        self.value: Any = None
        if inputs:
            self._h = module.register_forward_pre_hook(self._keep_input)
        else:
            self._h = module.register_forward_hook(self._keep_output)

    def _keep_input(self, module: nn.Module, args: tuple[Any, ...]) -> None:
        self.value = args[0]

    def _keep_output(self, module: nn.Module, args: Any, output: Any) -> None:
        self.value = output

    def remove(self) -> None:
        self._h.remove()


def _hook_count(root: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in root.modules())


# -- registry ---------------------------------------------------------------------------------


def test_registry_picks_the_adapter_for_each_model_type(model: Model) -> None:
    expected = {"llama": "llama", "qwen3": "qwen3", "gpt2": "gpt2", "gpt_neox": "neox"}
    family = expected.get(model.hf.config.model_type, "gemma3")
    assert adapter_for(model.hf.config).family == family == model.adapter.family


# -- capture is free --------------------------------------------------------------------------


def test_capturing_every_site_keeps_logits_bit_identical_and_shapes_canonical(
    model: Model, ids: Tensor
) -> None:
    sites = _sites(model)
    heads = [s.with_head(h) for s in sites if s.component in PER_HEAD for h in (0, 3)]
    run = model.run(ids, capture=sites + heads)
    assert torch.equal(run.logits, _plain_logits(model, ids))
    d = model.dims
    b, p = ids.shape
    shapes = {
        "attn.q": (b, p, d.n_heads, d.d_head),
        "attn.k": (b, p, d.n_kv_heads, d.d_head),
        "attn.v": (b, p, d.n_kv_heads, d.d_head),
        "attn.z": (b, p, d.n_heads, d.d_head),
        "mlp.pre": (b, p, d.d_mlp),
        "mlp.post": (b, p, d.d_mlp),
        "logits": (b, p, d.d_vocab),
    }
    for s in sites:
        assert tuple(run.cache[s].shape) == shapes.get(s.component, (b, p, d.d_model)), s
    for s in heads:
        whole = run.cache[s.with_head(None)]
        assert s.head is not None
        kv = s.head // d.group_size if s.component in ("attn.k", "attn.v") else s.head
        assert torch.equal(run.cache[s], whole[:, :, kv]), s


def test_resid_post_matches_hf_hidden_states(model: Model, ids: Tensor) -> None:
    n = model.dims.n_layers
    final_norm = get_module(model.hf, model.adapter.final_norm)
    norm_input = _Recorder(final_norm, inputs=True)
    try:
        with torch.no_grad():
            hidden = model.hf(input_ids=ids, output_hidden_states=True).hidden_states
    finally:
        norm_input.remove()
    sites = ["embed", "final_norm"] + [
        f"L{i}.{c}" for i in range(n) for c in ("resid_pre", "resid_post")
    ]
    cache = model.run(ids, capture=sites).cache
    # HF returns n_layers + 1 states: the embedding, then each block's output except the last,
    # which it replaces with the final norm's output (checked for every family here).
    assert len(hidden) == n + 1
    assert torch.equal(hidden[0], cache["embed"])
    assert torch.equal(cache["embed"], cache["L0.resid_pre"])
    for i in range(n - 1):
        assert torch.equal(hidden[i + 1], cache[f"L{i}.resid_post"])
        assert torch.equal(cache[f"L{i}.resid_post"], cache[f"L{i + 1}.resid_pre"])
    assert torch.equal(hidden[n], cache["final_norm"])
    assert torch.equal(cache[f"L{n - 1}.resid_post"], norm_input.value)
    with torch.no_grad():
        assert torch.equal(final_norm(cache[f"L{n - 1}.resid_post"]), hidden[n])


def test_logits_site_is_the_unembedding_output(model: Model, ids: Tensor) -> None:
    run = model.run(ids, capture=["logits", "final_norm"])
    assert torch.equal(run.cache["logits"], run.logits)
    with torch.no_grad():
        unembed = get_module(model.hf, model.adapter.unembed)
        assert torch.equal(unembed(run.cache["final_norm"]), run.logits)


# -- the residual stream adds up --------------------------------------------------------------


def test_components_add_up_to_the_final_residual(model: Model, ids: Tensor) -> None:
    n = model.dims.n_layers
    comps = ["attn_out", "mlp_out", "resid_pre", "resid_post"] + (
        ["resid_mid"] if _has_mid(model) else []
    )
    cache = model.run(ids, capture=["embed"] + [f"L{i}.{c}" for i in range(n) for c in comps]).cache
    total = cache["embed"] + sum(cache[f"L{i}.attn_out"] + cache[f"L{i}.mlp_out"] for i in range(n))
    torch.testing.assert_close(total, cache[f"L{n - 1}.resid_post"], rtol=1e-5, atol=1e-5)
    for i in range(n):
        pre, attn, mlp, post = (
            cache[f"L{i}.{c}"] for c in ("resid_pre", "attn_out", "mlp_out", "resid_post")
        )
        # Each block's own additions, in HF's order, reproduce its output exactly.
        if _has_mid(model):
            mid = cache[f"L{i}.resid_mid"]
            assert torch.equal(mid, pre + attn)
            assert torch.equal(post, mid + mlp)
        else:
            assert torch.equal(post, mlp + attn + pre)


def test_resid_mid_is_the_input_of_the_pre_mlp_norm(model: Model, ids: Tensor) -> None:
    if not _has_mid(model):
        pytest.skip("parallel residual: no resid_mid (tested below)")
    assert model.adapter.mlp_in is not None
    rec = _Recorder(get_module(model.adapter.block(model.hf, 1), model.adapter.mlp_in), inputs=True)
    try:
        cache = model.run(ids, capture=["L1.resid_mid"]).cache
    finally:
        rec.remove()
    assert torch.equal(cache["L1.resid_mid"], rec.value)


def test_mlp_in_is_what_the_mlp_reads_and_the_mlp_maps_it_to_its_output(
    model: Model, ids: Tensor
) -> None:
    cache = model.run(ids, capture=["L1.mlp.in", "L1.mlp.post", "L1.resid_pre"]).cache
    mlp = get_module(model.adapter.block(model.hf, 1), model.adapter.mlp)
    with torch.no_grad():
        out = mlp(cache["L1.mlp.in"])
    post = model.run(ids, capture=["L1.mlp_out"]).cache["L1.mlp_out"]
    norm = model.weights.mlp_out_norm(1)
    if norm is not None:
        out = norm.apply(out)
    torch.testing.assert_close(out, post, rtol=1e-5, atol=1e-6)
    if _has_mid(model):
        mid = model.run(ids, capture=["L1.resid_mid"]).cache["L1.resid_mid"]
        assert model.adapter.mlp_in is not None
        norm_module = get_module(model.adapter.block(model.hf, 1), model.adapter.mlp_in)
        with torch.no_grad():
            assert torch.equal(norm_module(mid), cache["L1.mlp.in"])


def test_parallel_residual_has_no_resid_mid_and_says_why() -> None:
    m = tiny_model("neox", use_parallel_residual=True)
    with pytest.raises(SiteError, match="parallel residual"):
        m.run(tokens(), capture=["L0.resid_mid"])
    with pytest.raises(SiteError, match="use resid_pre, attn_out and mlp_out"):
        m.run(tokens(), interventions=[Patch("L0.resid_mid", torch.zeros(64))])


# -- heads ------------------------------------------------------------------------------------


def test_per_head_z_through_the_output_projection_equals_attn_out(
    model: Model, ids: Tensor
) -> None:
    d = model.dims
    for layer in range(d.n_layers):
        block = model.adapter.block(model.hf, layer)
        o_proj = _Recorder(get_module(block, model.adapter.o_proj))
        try:
            cache = model.run(ids, capture=[f"L{layer}.attn.z", f"L{layer}.attn_out"]).cache
        finally:
            o_proj.remove()
        w = model.adapter.o_weight(model.hf, layer).unflatten(1, (d.n_heads, d.d_head))
        per_head = torch.einsum("bphd,mhd->bphm", cache[f"L{layer}.attn.z"], w.detach())
        bias = model.adapter.o_bias(model.hf, layer)
        out = per_head.sum(2) + (bias.detach() if bias is not None else 0)
        if model.adapter.attn_out_norm is None:
            torch.testing.assert_close(out, cache[f"L{layer}.attn_out"], rtol=1e-5, atol=1e-5)
        else:
            # Gemma 3 normalises o_proj's output before the residual: z through o_proj gives
            # o_proj's output, and the post-attention norm of that is exactly attn_out.
            torch.testing.assert_close(out, o_proj.value, rtol=1e-5, atol=1e-5)
            norm = get_module(block, model.adapter.attn_out_norm)
            with torch.no_grad():
                assert torch.equal(norm(o_proj.value), cache[f"L{layer}.attn_out"])


def test_q_k_v_z_are_what_hf_feeds_rotary_and_attention(
    model: Model, ids: Tensor, monkeypatch: pytest.MonkeyPatch
) -> None:
    family = model.adapter.family
    rotary: list[tuple[Tensor, Tensor]] = []
    attention: list[tuple[Tensor, Tensor, Tensor, Tensor]] = []
    if family in _MODELING:
        modeling = importlib.import_module(_MODELING[family])
        original_rotary: Callable[..., Any] = modeling.apply_rotary_pos_emb

        def record_rotary(q: Tensor, k: Tensor, *args: Any, **kwargs: Any) -> Any:
            rotary.append((q, k))
            return original_rotary(q, k, *args, **kwargs)

        monkeypatch.setattr(modeling, "apply_rotary_pos_emb", record_rotary)
    impl = model.hf.config._attn_implementation
    original_attention = ALL_ATTENTION_FUNCTIONS[impl]

    def record_attention(
        module: nn.Module, q: Tensor, k: Tensor, v: Tensor, *args: Any, **kwargs: Any
    ) -> Any:
        out = original_attention(module, q, k, v, *args, **kwargs)
        attention.append((q, k, v, out[0]))
        return out

    monkeypatch.setitem(ALL_ATTENTION_FUNCTIONS, impl, record_attention)
    n = model.dims.n_layers
    sites = [f"L{i}.attn.{c}" for i in range(n) for c in ("q", "k", "v", "z")]
    cache = model.run(ids, capture=sites).cache
    assert len(attention) == n
    for i, (q, k, v, z) in enumerate(attention):
        # HF hands attention [batch, heads, pos, d_head]; z comes back [batch, pos, heads, d_head].
        assert torch.equal(cache[f"L{i}.attn.v"], v.transpose(1, 2))
        assert torch.equal(cache[f"L{i}.attn.z"], z)
        if family not in _MODELING:  # no rotary (GPT-2): attention sees q and k as projected
            assert torch.equal(cache[f"L{i}.attn.q"], q.transpose(1, 2))
            assert torch.equal(cache[f"L{i}.attn.k"], k.transpose(1, 2))
    if family in _MODELING:
        assert len(rotary) == n
        for i, (q, k) in enumerate(rotary):
            assert torch.equal(cache[f"L{i}.attn.q"], q.transpose(1, 2))
            assert torch.equal(cache[f"L{i}.attn.k"], k.transpose(1, 2))


def test_fused_and_interleaved_projections_split_as_hf_does(model: Model, ids: Tensor) -> None:
    layout = model.adapter.q.layout
    if layout not in ("fused", "interleaved"):
        pytest.skip(f"{model.adapter.family} has separate q/k/v projections")
    d = model.dims
    b, p = ids.shape
    rec = _Recorder(get_module(model.adapter.block(model.hf, 1), model.adapter.q.module))
    try:
        cache = model.run(ids, capture=["L1.attn.q", "L1.attn.k", "L1.attn.v"]).cache
    finally:
        rec.remove()
    if layout == "fused":  # GPT2Attention: c_attn(x).split(split_size, dim=2), then view per head
        q, k, v = (t.view(b, p, -1, d.d_head) for t in rec.value.split(d.d_model, dim=2))
    else:  # GPTNeoXAttention: view(*shape, -1, 3 * head_size), then chunk(3, dim=-1)
        q, k, v = rec.value.view(b, p, -1, 3 * d.d_head).chunk(3, dim=-1)
    assert torch.equal(cache["L1.attn.q"], q)
    assert torch.equal(cache["L1.attn.k"], k)
    assert torch.equal(cache["L1.attn.v"], v)


def test_query_heads_map_to_their_kv_heads(model: Model, ids: Tensor) -> None:
    d = model.dims
    sites = ["L0.attn.k", "L0.attn.v"] + [
        f"L0.attn.{c}.h{h}" for c in ("k", "v") for h in range(d.n_heads)
    ]
    cache = model.run(ids, capture=sites).cache
    for c in ("k", "v"):
        assert cache[f"L0.attn.{c}"].shape[2] == d.n_kv_heads
        for h in range(d.n_heads):
            assert torch.equal(
                cache[f"L0.attn.{c}.h{h}"], cache[f"L0.attn.{c}"][:, :, h // d.group_size]
            )
    if model.adapter.family in ("llama", "qwen3", "gemma3"):
        assert (d.n_heads, d.n_kv_heads, d.group_size) == (4, 2, 2)


def test_patterns_sum_to_one_and_equal_hf_eager_attentions(model: Model, ids: Tensor) -> None:
    n = model.dims.n_layers
    # attn_out is the other element of the attention module's output: capturing both must
    # read each from its own element.
    sites = [f"L{i}.{c}" for i in range(n) for c in ("attn.pattern", "attn_out")]
    run = model.run(ids, capture=[*sites, "L0.attn.pattern.h1"])
    assert model.hf.config._attn_implementation == "sdpa"  # restored after the capture
    model.hf.set_attn_implementation("eager")
    try:
        with torch.no_grad():
            # use_cache=False as Model.run: with a cache, GPT-2's keys are concatenated into it,
            # and eager attention over that copy differs from the no-cache forward in the last bit.
            out = model.hf(input_ids=ids, output_attentions=True, use_cache=False)
    finally:
        model.hf.set_attn_implementation("sdpa")
    assert torch.equal(run.logits, out.logits)
    for i in range(n):
        pattern = run.cache[f"L{i}.attn.pattern"]
        assert pattern.shape == (ids.shape[0], model.dims.n_heads, ids.shape[1], ids.shape[1])
        torch.testing.assert_close(
            pattern.sum(-1), torch.ones(pattern.shape[:-1]), rtol=0, atol=1e-5
        )
        assert torch.equal(pattern, out.attentions[i])
        assert torch.equal(pattern.triu(1), torch.zeros_like(pattern))  # causal
        assert run.cache[f"L{i}.attn_out"].shape == (*ids.shape, model.dims.d_model)
    assert torch.equal(run.cache["L0.attn.pattern.h1"], run.cache["L0.attn.pattern"][:, 1])


# -- interventions ----------------------------------------------------------------------------


def _head_sites(m: Model) -> Iterator[Site]:
    for s in _sites(m):
        if s.component in PER_HEAD:
            yield from (s.with_head(h) for h in range(m.dims.n_heads))


def test_patching_every_site_with_its_own_value_is_exact(model: Model, ids: Tensor) -> None:
    sites = _sites(model)
    clean = model.run(ids, capture=sites + list(_head_sites(model)))
    assert torch.equal(clean.logits, _plain_logits(model, ids))
    for s in sites:
        for positions in (None, [-1]):
            run = model.run(ids, interventions=[Patch(s, clean.cache[s], positions=positions)])
            assert torch.equal(run.logits, clean.logits), (s, positions)
    for s in _head_sites(model):
        run = model.run(ids, interventions=[Patch(s, clean.cache[s], positions=[-1])])
        assert torch.equal(run.logits, clean.logits), s
    every = [Patch(s, clean.cache[s]) for s in sites]
    assert torch.equal(model.run(ids, interventions=every).logits, clean.logits)


def test_patching_resid_mid_reaches_the_block_output(model: Model, ids: Tensor) -> None:
    if not _has_mid(model):
        pytest.skip("parallel residual: no resid_mid")
    clean = model.run(ids, capture=["L0.resid_mid", "L0.mlp_out"])
    value = clean.cache["L0.resid_mid"] + 1.0
    run = model.run(
        ids,
        capture=["L0.resid_mid", "L0.mlp_out", "L0.resid_post"],
        interventions=[Patch("L0.resid_mid", value)],
    )
    assert torch.equal(run.cache["L0.resid_mid"], value)
    assert torch.equal(run.cache["L0.resid_post"], value + run.cache["L0.mlp_out"])
    assert not torch.equal(run.logits, clean.logits)


def test_zero_ablating_a_head_changes_only_that_head(model: Model, ids: Tensor) -> None:
    d = model.dims
    kv = 2 // d.group_size  # the kv head query head 2 reads
    watched = ["L1.attn.q", "L1.attn.k", "L1.attn.v", "L1.attn.z"]
    clean = model.run(ids, capture=watched)
    for site, changed in (
        ("L1.attn.z.h2", {2}),
        ("L1.attn.q.h2", {2}),
        # a kv head is shared by its group of query heads
        ("L1.attn.k.h2", {h for h in range(d.n_heads) if h // d.group_size == kv}),
    ):
        run = model.run(ids, capture=watched, interventions=[Ablate(site)])
        z, z0 = run.cache["L1.attn.z"], clean.cache["L1.attn.z"]
        for h in range(d.n_heads):
            assert torch.equal(z[:, :, h], z0[:, :, h]) == (h not in changed), (site, h)
        assert not torch.equal(run.logits, clean.logits), site
        # q, k and v share one tensor in fused layouts: an edit reaches only its own entries.
        component = site.split(".")[2]
        head = kv if component in ("k", "v") else 2
        for c in ("q", "k", "v"):
            got, want = run.cache[f"L1.attn.{c}"], clean.cache[f"L1.attn.{c}"].clone()
            if c == component:
                want[:, :, head] = 0
            assert torch.equal(got, want), (site, c)
    run = model.run(ids, capture=["L1.attn.z"], interventions=[Ablate("L1.attn.z.h2")])
    assert torch.equal(run.cache["L1.attn.z"][:, :, 2], torch.zeros_like(z0[:, :, 2]))


# -- cleanup ----------------------------------------------------------------------------------


def test_every_hook_is_removed_when_the_body_raises(model: Model, ids: Tensor) -> None:
    before = _hook_count(model.hf)
    value = model.run(ids, capture=["L0.mlp_out"]).cache["L0.mlp_out"]
    sites = [*all_sites(model.dims)]
    if not _has_mid(model):
        sites = [s for s in sites if s.component != "resid_mid"]
    edits = [Patch("L0.mlp_out", value)] + (
        [Patch("L0.resid_mid", value)] if _has_mid(model) else []
    )
    with pytest.raises(RuntimeError, match="boom"), model.capture(sites, interventions=edits):
        assert _hook_count(model.hf) > before
        assert model.hf.config._attn_implementation == "eager"  # patterns are captured
        model(ids)
        raise RuntimeError("boom")
    assert _hook_count(model.hf) == before
    assert model.hf.config._attn_implementation == "sdpa"


def test_gemma3_logits_site_is_before_final_softcapping(ids: Tensor) -> None:
    m = tiny_model("gemma3", final_logit_softcapping=2.0)
    run = m.run(ids, capture=["logits"])
    assert torch.equal(run.logits, _plain_logits(m, ids))
    cap = m.hf.config.final_logit_softcapping
    assert torch.equal(torch.tanh(run.cache["logits"] / cap) * cap, run.logits)
    assert not torch.equal(run.cache["logits"], run.logits)
