"""Adapters: declarative maps from our Site vocabulary to the modules of an unmodified HF model.

An adapter names, for one architecture family, which HF module's input or output *is* each
component. It computes nothing: `interplab.core.points` turns these names into hook points, and
the adapter tests check every mapping against HF's own outputs on a tiny random config.

Conventions every adapter follows:

1. ``attn_out`` and ``mlp_out`` are exactly what the block adds to the residual stream (after any
   post-norm, as in Gemma 3), so embed + every attn_out + every mlp_out = the final residual.
2. ``resid_mid`` is the input of the module that normalises the residual before the MLP; models
   with a parallel residual (Pythia) have no resid_mid.
3. ``attn.q`` / ``attn.k`` are read where the projections leave them, before rotary embeddings
   (after q/k norms where the architecture has them).
4. ``attn.z`` is the input of the output projection, ``mlp.post`` the input of the down projection.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from interplab.sites import Dimensions

Layout = Literal["flat", "split", "heads_first", "fused", "interleaved"]
NormKind = Literal["rms", "rms_plus_one", "layer"]


@dataclass(frozen=True)
class Projection:
    """Where one of q, k, v lives: a module's output, and how heads are laid out in it.

    - ``flat``: ``[batch, pos, heads * d_head]`` (Llama's ``q_proj``)
    - ``split``: ``[batch, pos, heads, d_head]`` (Qwen 3's ``q_norm``)
    - ``heads_first``: ``[batch, heads, pos, d_head]`` (Gemma 3's ``q_norm``)
    - ``fused``: q, k, v concatenated on the last axis, each ``heads * d_head`` (GPT-2's ``c_attn``)
    - ``interleaved``: ``[batch, pos, heads * 3 * d_head]`` with q, k, v inside each head
      (GPT-NeoX's ``query_key_value``)
    """

    module: str
    layout: Layout = "flat"
    part: int = 0


@dataclass(frozen=True)
class Adapter:
    """The module paths of one architecture family (paths relative to the block unless noted)."""

    family: str
    model_types: tuple[str, ...]
    dims: Callable[[Any], Dimensions]
    layers: str  # from the CausalLM root
    final_norm: str  # from the CausalLM root
    unembed: str  # from the CausalLM root
    attn: str  # the attention module: its output is (attn_out, pattern)
    attn_out: str  # the module whose output the block adds to the residual stream after attention
    mlp_in: str | None  # the module whose input is resid_mid (None: parallel residual)
    mlp_out: str  # the module whose output the block adds after the MLP
    q: Projection
    k: Projection
    v: Projection
    o_proj: str  # its input is attn.z
    mlp_pre: str  # its output is mlp.pre
    mlp_post: str  # its input is mlp.post (the neurons)
    norm: NormKind  # the final norm's kind, for linearising it in direct logit attribution
    mlp: str = "mlp"  # the MLP module: its input is mlp.in (after the pre-MLP norm)
    mlp_up: str | None = None  # a gated MLP's up projection (its output times act(mlp.pre))
    attn_out_norm: str | None = None  # a norm between o_proj and the residual (Gemma 3)
    mlp_out_norm: str | None = None  # a norm between the down projection and the residual
    o_weight_transposed: bool = False  # Conv1D stores [in, out] (GPT-2)
    parallel_residual: Callable[[Any], bool] = lambda config: False
    # Weights from the CausalLM root; weights of blocks are the projections named above.
    embed: str = "model.embed_tokens"  # the token embedding module
    rotary: str | None = None  # the rotary-embedding module (None: learned positions)
    partial: bool = False  # decoder layers take (hidden, position_embeddings, mask, KV cache)

    def block(self, hf: nn.Module, layer: int) -> nn.Module:
        """Returns the HF module of block ``layer``."""
        return get_module(hf, self.layers)[layer]  # type: ignore[index]

    def o_weight(self, hf: nn.Module, layer: int) -> torch.Tensor:
        """Returns block ``layer``'s output projection as ``[d_model, heads * d_head]``."""
        w = get_module(self.block(hf, layer), self.o_proj).weight  # type: ignore[union-attr]
        return w.T if self.o_weight_transposed else w  # type: ignore[return-value]

    def o_bias(self, hf: nn.Module, layer: int) -> torch.Tensor | None:
        """Returns block ``layer``'s output-projection bias, or None."""
        return getattr(get_module(self.block(hf, layer), self.o_proj), "bias", None)


def get_module(root: nn.Module, path: str) -> nn.Module:
    """Returns the submodule at a dotted path, with an error naming the path that failed."""
    mod: nn.Module = root
    for part in path.split("."):
        if not hasattr(mod, part):
            raise AttributeError(
                f"module path {path!r} does not exist on {type(root).__name__}: no {part!r} "
                f"under {type(mod).__name__}; the adapter does not match this model"
            )
        mod = getattr(mod, part)
    return mod


def weight(module: nn.Module, name: str = "weight") -> torch.Tensor:
    """Returns a module's parameter (``weight``, ``bias``) as a tensor, with a clear error if absent."""
    value = getattr(module, name, None)
    if not isinstance(value, torch.Tensor):
        raise AttributeError(f"{type(module).__name__} has no tensor {name!r}")
    return value


def norm_eps(module: nn.Module) -> float:
    """Returns a norm module's epsilon, whatever HF named it."""
    for name in ("variance_epsilon", "eps", "epsilon"):
        if hasattr(module, name):
            return float(getattr(module, name))
    raise AttributeError(f"cannot find the epsilon of {type(module).__name__}")
