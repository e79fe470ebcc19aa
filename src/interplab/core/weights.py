"""Weights in one orientation: the residual stream is always a named axis, never a guess.

`Weights` reads the matrices a technique needs from the modules an adapter declares, as views of
the live parameters (a transpose or a split of an axis is a view), so an edit in place under
``torch.no_grad()`` changes the model, and reading one costs nothing. Orientation follows
TransformerLens, so formulas read the same as in the papers:

    W_E          [d_vocab, d_model]          token embedding
    W_U          [d_model, d_vocab]          unembedding (b_U [d_vocab] or None)
    W_O(l)       [n_heads, d_head, d_model]  attention output projection (b_O(l) [d_model] or None)
    W_in(l)      [d_model, d_mlp]            MLP input (the up projection of a gated MLP)
    W_gate(l)    [d_model, d_mlp] or None    gated MLPs' gate (its output is mlp.pre)
    W_out(l)     [d_mlp, d_model]            MLP output, read by the residual (b_out(l) or None)
    final_norm   Norm: kind, weight, bias, eps, and the module to call
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

from interplab.errors import UserError
from interplab.models.adapter import Adapter, NormKind, get_module, norm_eps
from interplab.types import Float


@dataclass(frozen=True)
class Norm:
    """A normalisation: its kind, weight, optional bias and epsilon, and ``apply`` to run it."""

    kind: NormKind
    weight: Float[Tensor, " d_model"]
    bias: Float[Tensor, " d_model"] | None
    eps: float
    module: nn.Module

    def apply(self, x: Float[Tensor, "*batch d_model"]) -> Float[Tensor, "*batch d_model"]:
        """Returns the norm of ``x`` as HF computes it (the module itself)."""
        return self.module(x)

    @property
    def scale_weight(self) -> Float[Tensor, " d_model"]:
        """Returns the effective elementwise weight (Gemma's RMSNorm multiplies by 1 + weight)."""
        return 1 + self.weight if self.kind == "rms_plus_one" else self.weight


class WeightsOffloaded(UserError):
    """A weight lives on disk (a ``device_map`` with ``"disk"``): it has no values to read."""


def _present(weight: Tensor, module: nn.Module) -> Tensor:
    """Returns ``weight``, or raises if accelerate offloaded it (a placeholder on ``meta``)."""
    if weight.device.type == "meta":
        raise WeightsOffloaded(
            f"the weights of {type(module).__name__} are offloaded to disk by the device_map, and "
            "this technique reads weights; load with a device_map that keeps every layer on a "
            "device (GPUs or 'cpu'), or without one"
        )
    return weight


class Weights:
    """Views of one model's weights, read through its adapter (see the module docstring)."""

    def __init__(self, hf: nn.Module, adapter: Adapter) -> None:
        self._hf = hf
        self._adapter = adapter

    def _block(self, layer: int) -> nn.Module:
        return self._adapter.block(self._hf, layer)

    def _linear(self, layer: int, path: str) -> nn.Module:
        return get_module(self._block(layer), path)

    def _in_out(self, module: nn.Module) -> Tensor:
        """Returns a projection's weight as ``[in, out]`` (HF Linear stores ``[out, in]``)."""
        w: Tensor = _present(module.weight, module)  # type: ignore[arg-type]
        return w if self._adapter.o_weight_transposed else w.T

    @property
    def W_E(self) -> Float[Tensor, "vocab d_model"]:
        module = get_module(self._hf, self._adapter.embed)
        return _present(module.weight, module)  # type: ignore[arg-type]

    @property
    def W_U(self) -> Float[Tensor, "d_model vocab"]:
        module = get_module(self._hf, self._adapter.unembed)
        return _present(module.weight, module).T  # type: ignore[arg-type]

    @property
    def b_U(self) -> Float[Tensor, " vocab"] | None:
        return getattr(get_module(self._hf, self._adapter.unembed), "bias", None)

    @property
    def tied_embeddings(self) -> bool:
        """Whether W_E and W_U share storage (editing one edits the other)."""
        return self.W_E.data_ptr() == self.W_U.data_ptr()

    def W_O(self, layer: int) -> Float[Tensor, "head d_head d_model"]:
        n_heads: int = self._hf.config.num_attention_heads  # type: ignore[union-attr,assignment]
        w = self._in_out(self._linear(layer, self._adapter.o_proj))  # [heads * d_head, d_model]
        return w.view(n_heads, w.shape[0] // n_heads, w.shape[1])

    def b_O(self, layer: int) -> Float[Tensor, " d_model"] | None:
        return getattr(self._linear(layer, self._adapter.o_proj), "bias", None)

    def W_in(self, layer: int) -> Float[Tensor, "d_model d_mlp"]:
        path = self._adapter.mlp_up or self._adapter.mlp_pre
        return self._in_out(self._linear(layer, path))

    def W_gate(self, layer: int) -> Float[Tensor, "d_model d_mlp"] | None:
        if self._adapter.mlp_up is None:
            return None
        return self._in_out(self._linear(layer, self._adapter.mlp_pre))

    def W_out(self, layer: int) -> Float[Tensor, "d_mlp d_model"]:
        return self._in_out(self._linear(layer, self._adapter.mlp_post))

    def b_out(self, layer: int) -> Float[Tensor, " d_model"] | None:
        return getattr(self._linear(layer, self._adapter.mlp_post), "bias", None)

    def writers(self, layer: int) -> list[nn.Module]:
        """Returns the projections of block ``layer`` that write into the residual stream (the
        attention output and the MLP output projections), for weight edits such as
        orthogonalisation; their weights are ``[d_model, in]`` (Linear) or ``[in, d_model]``
        (Conv1D, see ``writes_transposed``)."""
        return [
            self._linear(layer, self._adapter.o_proj),
            self._linear(layer, self._adapter.mlp_post),
        ]

    @property
    def writes_transposed(self) -> bool:
        """Whether the writers store ``[in, d_model]`` (GPT-2's Conv1D) rather than ``[d_model, in]``."""
        return self._adapter.o_weight_transposed

    @property
    def embedding(self) -> nn.Module:
        """The token-embedding module (its output is what block 0 reads, before any scaling)."""
        return get_module(self._hf, self._adapter.embed)

    @property
    def unembedding(self) -> nn.Module:
        return get_module(self._hf, self._adapter.unembed)

    @property
    def final_norm(self) -> Norm:
        return self._norm(get_module(self._hf, self._adapter.final_norm))

    def attn_out_norm(self, layer: int) -> Norm | None:
        """Returns the norm between the attention output projection and the residual (Gemma 3)."""
        path = self._adapter.attn_out_norm
        return None if path is None else self._norm(get_module(self._block(layer), path))

    def mlp_out_norm(self, layer: int) -> Norm | None:
        path = self._adapter.mlp_out_norm
        return None if path is None else self._norm(get_module(self._block(layer), path))

    def _norm(self, module: nn.Module) -> Norm:
        weight: Any = getattr(module, "weight", None)
        if not isinstance(weight, Tensor):
            raise AttributeError(f"{type(module).__name__} has no weight")
        bias = getattr(module, "bias", None)
        return Norm(
            self._adapter.norm,
            weight,
            bias if isinstance(bias, Tensor) else None,
            norm_eps(module),
            module,
        )


__all__ = ["Norm", "Weights", "WeightsOffloaded"]
