"""Tensor shape aliases: the one vocabulary for axes.

Core's public signatures are annotated with these names (and `jaxtyping.Float`/`Int` with the same
axis names where no alias fits), and the same names are used in configs, in the store and in
figures. The test suite checks them at run time: ``tests/conftest.py`` installs jaxtyping's
import hook with beartype on `interplab.core`, so within one call every ``batch`` is one size.

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
- ``k``          chosen logit columns (the entries a metric reads), or the whole vocabulary

This module imports torch: only torch-using code (core, models, techniques) imports it.
"""

from __future__ import annotations

from jaxtyping import Float, Int
from torch import Tensor

TokenIds = Int[Tensor, "batch pos"]
Mask = Int[Tensor, "batch pos"]
Residual = Float[Tensor, "batch pos d_model"]
HeadActs = Float[Tensor, "batch pos head d_head"]
KVActs = Float[Tensor, "batch pos kv_head d_head"]
KVCache = Float[Tensor, "batch kv_head pos d_head"]  # HF's cached keys or values, after rotary
Pattern = Float[Tensor, "batch head pos key_pos"]
Neurons = Float[Tensor, "batch pos d_mlp"]
Logits = Float[Tensor, "batch pos vocab"]
Direction = Float[Tensor, " d_model"]
Activations = Float[Tensor, "batch ..."]  # any site's canonical shape (`interplab.core.points`)

__all__ = [
    "Activations",
    "Direction",
    "Float",
    "HeadActs",
    "Int",
    "KVActs",
    "KVCache",
    "Logits",
    "Mask",
    "Neurons",
    "Pattern",
    "Residual",
    "TokenIds",
]
