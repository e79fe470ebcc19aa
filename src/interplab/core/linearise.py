"""Linearised forwards: the model's values unchanged, its gradients those of a local linear model.

Inside `linearised(model)` every forward computes exactly the logits it computes outside (each
hook adds an exact zero or detaches a tensor without changing its value), but gradients flow as
through the *local replacement model* of circuit tracing (Ameisen et al. 2025, "Circuit Tracing";
circuit-tracer's ``configure_gradient_flow``):

1. ``norms``: every normalisation's scale is held at its value on this forward. RMSNorm
   ``y = w · x · s(x)`` passes gradients as ``w · s`` (``1 + w`` for Gemma); LayerNorm as
   ``w · s · (I - 1/d)`` (the centring stays, the ``1/std`` is frozen). Implemented as
   ``y.detach() + lin(x - x.detach())``: the added term is exactly zero in value.
2. ``attention``: queries and keys are detached (a forward hook on their own projection modules;
   core's `Apply` on ``attn.q``/``attn.k`` where one module also makes the values), so attention
   patterns are constants and only values carry gradients.
3. ``mlps``: each MLP's contribution to the residual (the module whose output is ``mlp_out``) is
   detached, so no gradient passes through an MLP; a caller adds back the linear paths it wants
   (a skip transcoder's ``W_skip``) through an `Apply` on ``mlp_out``.
4. Parameters stop requiring gradients inside the block (restored on exit), so a backward pass
   computes only what was asked and the forward keeps no tensors for weight gradients.

The hooks go on first, so hooks a later `Model.capture` adds on the same modules (captures with
``grad=True``, edits) see the linearised tensors. Everything is removed in a ``finally``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from interplab.core.hooks import HookSession
from interplab.core.interventions import Apply
from interplab.core.model import Model
from interplab.models.adapter import NormKind, get_module, norm_eps
from interplab.sites import Site


def _detach(t: Tensor) -> Tensor:
    return t.detach()


def norm_modules(model: Model) -> list[nn.Module]:
    """Returns every normalisation module of the model (RMSNorm and LayerNorm classes)."""
    return [
        m
        for m in model.hf.modules()
        if isinstance(m, nn.LayerNorm) or type(m).__name__.endswith(("RMSNorm", "LayerNorm"))
    ]


def _frozen_norm_hook(kind: NormKind):
    def hook(module: nn.Module, args: tuple[Any, ...], output: Any) -> Any:
        if not args or not isinstance(args[0], Tensor) or not isinstance(output, Tensor):
            return None
        x = args[0]
        if not x.requires_grad:
            return output.detach()
        xf = x.detach().float()
        weight = getattr(module, "weight", None)
        w = torch.ones(x.shape[-1], device=x.device) if weight is None else weight.detach().float()
        if kind == "rms_plus_one":
            w = 1.0 + w
        eps = norm_eps(module)
        delta = (x - x.detach()).float()  # exactly zero, carries the gradient
        if kind == "layer":
            scale = torch.rsqrt(xf.var(-1, unbiased=False, keepdim=True) + eps) * w
            delta = delta - delta.mean(-1, keepdim=True)
        else:
            scale = torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps) * w
        return output.detach() + (delta * scale).to(output.dtype)

    return hook


def _cut_hook(module: nn.Module, args: Any, output: Any) -> Any:
    return output.detach() if isinstance(output, Tensor) else None


@contextlib.contextmanager
def linearised(
    model: Model, *, norms: bool = True, attention: bool = True, mlps: bool = True
) -> Iterator[None]:
    """Runs every forward in the block with the values unchanged and gradients linearised (see
    the module docstring): frozen norm scales, frozen attention patterns, no MLP gradients."""
    handles: list[RemovableHandle] = []
    flags: list[tuple[nn.Parameter, bool]] = [(p, p.requires_grad) for p in model.hf.parameters()]
    session: HookSession | None = None
    try:
        for p, _ in flags:
            p.requires_grad_(False)
        if norms:
            hook = _frozen_norm_hook(model.adapter.norm)
            handles += [m.register_forward_hook(hook) for m in norm_modules(model)]
        if mlps:
            for layer in range(model.dims.n_layers):
                block = model.adapter.block(model.hf, layer)
                handles.append(
                    get_module(block, model.adapter.mlp_out).register_forward_hook(_cut_hook)
                )
        if attention:
            ivs = []
            for layer in range(model.dims.n_layers):
                block = model.adapter.block(model.hf, layer)
                for c, proj in (("attn.q", model.adapter.q), ("attn.k", model.adapter.k)):
                    if proj.layout in ("fused", "interleaved"):  # V shares the module: edit q/k
                        ivs.append(Apply(Site(layer, c), _detach))  # type: ignore[arg-type]
                    else:  # its own module: its output becomes a constant, so the backward
                        # never reaches the projection (an edit would clone, and the backward
                        # would multiply zeros through q_proj, k_proj and the rotary)
                        module = get_module(block, proj.module)
                        handles.append(module.register_forward_hook(_cut_hook))
            if ivs:
                session = HookSession(model.hf, model.adapter, model.dims, interventions=ivs)
                session.__enter__()
        yield
    finally:
        if session is not None:
            session.__exit__(None, None, None)
        for h in handles:
            h.remove()
        for p, flag in flags:
            p.requires_grad_(flag)


__all__ = ["linearised", "norm_modules"]
