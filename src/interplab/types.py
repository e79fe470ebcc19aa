"""Tensor shape aliases: the one vocabulary for axes.

Every tensor that crosses a public boundary is annotated with these names, and the same names are
used in configs, in the store and in figures:

- ``batch``      examples in a forward pass
- ``pos``        token positions (query positions, for attention patterns)
- ``key_pos``    key positions of an attention pattern
- ``d_model``    the residual stream width
- ``head``       query heads of an attention layer
- ``kv_head``    key/value heads (fewer than ``head`` under grouped-query attention)
- ``d_head``     the width of one head
- ``d_mlp``      MLP neurons (the hidden width of the feed-forward block)
- ``vocab``      vocabulary entries (logits)
- ``layer``      transformer blocks
- ``n``          examples in a dataset or sweep, when not a forward-pass batch
"""

from __future__ import annotations

from jaxtyping import Float, Int
from torch import Tensor

Tokens = Int[Tensor, "batch pos"]
Mask = Int[Tensor, "batch pos"]
Residual = Float[Tensor, "batch pos d_model"]
HeadActs = Float[Tensor, "batch pos head d_head"]
KVActs = Float[Tensor, "batch pos kv_head d_head"]
Pattern = Float[Tensor, "batch head pos key_pos"]
Neurons = Float[Tensor, "batch pos d_mlp"]
Logits = Float[Tensor, "batch pos vocab"]
Direction = Float[Tensor, " d_model"]

__all__ = [
    "Direction",
    "HeadActs",
    "KVActs",
    "Logits",
    "Mask",
    "Neurons",
    "Pattern",
    "Residual",
    "Tokens",
]
