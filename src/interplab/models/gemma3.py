"""The Gemma 3 family (text): sandwich norms, RMSNorm scaled by ``1 + weight``, q/k norms, GQA.

Gemma 3 normalises each sub-layer's output before adding it to the residual stream
(``post_attention_layernorm``, ``post_feedforward_layernorm``), so ``attn_out`` and ``mlp_out`` are
those norms' outputs, and per-head z through ``o_proj`` gives ``o_proj``'s output, not attn_out.
``embed`` is the input to block 0: the token embedding already multiplied by ``sqrt(d_model)``.
``logits`` is the ``lm_head`` output; where a config sets ``final_logit_softcapping`` (Gemma 3
checkpoints do not) HF returns ``tanh(logits / c) * c``, applied after this site.
"""

from __future__ import annotations

from interplab.models.adapter import Adapter, Projection
from interplab.models.llama import llama_dims

GEMMA3 = Adapter(
    family="gemma3",
    # "gemma3_text" is the text-only CausalLM (the 270M checkpoint and its GGUF); the multimodal
    # "gemma3" wrapper nests the same blocks under another root and is not described here.
    model_types=("gemma3_text",),
    dims=llama_dims,
    layers="model.layers",
    final_norm="model.norm",
    unembed="lm_head",
    attn="self_attn",
    attn_out="post_attention_layernorm",
    mlp_in="pre_feedforward_layernorm",
    mlp_out="post_feedforward_layernorm",
    # q_norm / k_norm run on [batch, heads, pos, d_head], after the transpose and before rotary.
    q=Projection("self_attn.q_norm", "heads_first"),
    k=Projection("self_attn.k_norm", "heads_first"),
    v=Projection("self_attn.v_proj"),
    o_proj="self_attn.o_proj",
    mlp_pre="mlp.gate_proj",
    mlp_post="mlp.down_proj",
    norm="rms_plus_one",
    attn_out_norm="post_attention_layernorm",
    mlp_out_norm="post_feedforward_layernorm",
    mlp_up="mlp.up_proj",
    embed="model.embed_tokens",
    rotary="model.rotary_emb",
)
