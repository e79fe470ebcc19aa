"""The GPT-NeoX family: Pythia, GPT-NeoX-20B (LayerNorm, interleaved q/k/v, partial rotary).

``query_key_value`` emits, per head, q, k and v side by side: HF views it as
``[batch, pos, heads, 3 * d_head]`` and chunks the last axis in three. Rotary embeddings touch
only the first ``partial_rotary_factor`` of each head's q and k, and are applied after the point
where ``attn.q`` / ``attn.k`` are read, as for every family.

With ``use_parallel_residual`` (every Pythia) a block computes
``resid_pre + attn(ln1(resid_pre)) + mlp(ln2(resid_pre))``: there is no resid_mid. Without it,
``post_attention_layernorm`` reads ``resid_pre + attn_out``, which is resid_mid.
"""

from __future__ import annotations

from typing import Any

from interplab.models.adapter import Adapter, Projection
from interplab.sites import Dimensions


def _dims(config: Any) -> Dimensions:
    n_heads = config.num_attention_heads
    return Dimensions(
        n_layers=config.num_hidden_layers,
        d_model=config.hidden_size,
        n_heads=n_heads,
        n_kv_heads=n_heads,
        d_head=config.hidden_size // n_heads,
        d_mlp=config.intermediate_size,
        d_vocab=config.vocab_size,
    )


def _parallel_residual(config: Any) -> bool:
    return bool(config.use_parallel_residual)


NEOX = Adapter(
    family="neox",
    model_types=("gpt_neox",),
    dims=_dims,
    layers="gpt_neox.layers",
    final_norm="gpt_neox.final_layer_norm",
    unembed="lm_head",
    attn="attention",
    attn_out="attention",
    mlp_in="post_attention_layernorm",
    mlp_out="mlp",
    q=Projection("attention.query_key_value", "interleaved", 0),
    k=Projection("attention.query_key_value", "interleaved", 1),
    v=Projection("attention.query_key_value", "interleaved", 2),
    o_proj="attention.dense",
    mlp_pre="mlp.dense_h_to_4h",
    mlp_post="mlp.dense_4h_to_h",
    norm="layer",
    parallel_residual=_parallel_residual,
    embed="gpt_neox.embed_in",
    rotary="gpt_neox.rotary_emb",
)
