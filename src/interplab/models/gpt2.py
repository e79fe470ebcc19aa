"""The GPT-2 family: learned positions, LayerNorm, fused ``c_attn``, Conv1D weights.

``embed`` is the input to block 0, ``wte(tokens) + wpe(positions)`` (dropout is off in eval).
Conv1D stores weights as ``[in, out]``, hence ``o_weight_transposed``. ``c_attn`` emits q, k and v
concatenated on the last axis, each ``[heads * d_head]`` (HF splits it with ``.split(d_model)``).
"""

from __future__ import annotations

from typing import Any

from interplab.models.adapter import Adapter, Projection
from interplab.sites import Dimensions


def _dims(config: Any) -> Dimensions:
    return Dimensions(
        n_layers=config.n_layer,
        d_model=config.n_embd,
        n_heads=config.n_head,
        n_kv_heads=config.n_head,
        d_head=config.n_embd // config.n_head,
        d_mlp=config.n_inner if config.n_inner is not None else 4 * config.n_embd,
        d_vocab=config.vocab_size,
    )


GPT2 = Adapter(
    family="gpt2",
    model_types=("gpt2",),
    dims=_dims,
    layers="transformer.h",
    final_norm="transformer.ln_f",
    unembed="lm_head",
    attn="attn",
    attn_out="attn",
    mlp_in="ln_2",
    mlp_out="mlp",
    q=Projection("attn.c_attn", "fused", 0),
    k=Projection("attn.c_attn", "fused", 1),
    v=Projection("attn.c_attn", "fused", 2),
    o_proj="attn.c_proj",
    mlp_pre="mlp.c_fc",
    mlp_post="mlp.c_proj",
    norm="layer",
    o_weight_transposed=True,
    embed="transformer.wte",
)
