"""The Llama family: Llama, SmolLM2, Mistral, Qwen2, Qwen3 (pre-norm, RMSNorm, gated MLP, GQA)."""

from __future__ import annotations

from typing import Any

from interplab.models.adapter import Adapter, Projection
from interplab.sites import Dimensions


def llama_dims(config: Any) -> Dimensions:
    """Returns the dimensions of a Llama-style config (also Gemma 3's: same field names)."""
    n_heads = config.num_attention_heads
    return Dimensions(
        n_layers=config.num_hidden_layers,
        d_model=config.hidden_size,
        n_heads=n_heads,
        n_kv_heads=getattr(config, "num_key_value_heads", None) or n_heads,
        d_head=getattr(config, "head_dim", None) or config.hidden_size // n_heads,
        d_mlp=config.intermediate_size,
        d_vocab=config.vocab_size,
    )


LLAMA = Adapter(
    family="llama",
    model_types=("llama", "mistral", "qwen2"),
    dims=llama_dims,
    layers="model.layers",
    final_norm="model.norm",
    unembed="lm_head",
    attn="self_attn",
    attn_out="self_attn",
    mlp_in="post_attention_layernorm",
    mlp_out="mlp",
    q=Projection("self_attn.q_proj"),
    k=Projection("self_attn.k_proj"),
    v=Projection("self_attn.v_proj"),
    o_proj="self_attn.o_proj",
    mlp_pre="mlp.gate_proj",
    mlp_post="mlp.down_proj",
    norm="rms",
    mlp_up="mlp.up_proj",
    embed="model.embed_tokens",
    rotary="model.rotary_emb",
    partial=True,
)

# Qwen3 normalises q and k per head after the projection; read them there, as for Gemma 3.
QWEN3 = Adapter(
    **{
        **LLAMA.__dict__,
        "family": "qwen3",
        "model_types": ("qwen3",),
        "q": Projection("self_attn.q_norm", "split"),
        "k": Projection("self_attn.k_norm", "split"),
    }
)
