"""JumpReLU: a latent fires when its pre-activation passes a learned per-latent threshold
(Rajamanoharan et al. 2024, "Jumping Ahead: Improving Reconstruction Fidelity with JumpReLU Sparse
Autoencoders").

1. ``pre = (x - b_dec) @ W_enc + b_enc``; ``f = pre * H(pre - threshold)`` (H the step function).
2. Loss: reconstruction error + ``l0_coefficient * sum_i H(pre_i - threshold_i)``, the L0 itself.
3. H has no useful gradient, so the threshold learns through straight-through estimators: the
   derivative of H(z - t) in t is taken as ``-K((z - t) / eps) / eps`` with the rectangle kernel
   K of width ``eps = jumprelu_bandwidth``; the JumpReLU passes ``-t K(...) / eps`` to the threshold
   and the ordinary gradient to ``pre`` where it fires (the paper's equations 11 and 12).
4. The threshold is kept non-negative after each step (as SAELens does), so the gate never passes
   negative pre-activations.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from interplab.dictionaries.base import Dictionary, Step, squared_error
from interplab.dictionaries.batchtopk import jumprelu
from interplab.dictionaries.config import DictionaryConfig


def _rectangle(z: Tensor) -> Tensor:
    return ((z > -0.5) & (z < 0.5)).to(z.dtype)


class _JumpReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, pre: Tensor, threshold: Tensor, bandwidth: float) -> Tensor:
        ctx.save_for_backward(pre, threshold)
        ctx.bandwidth = bandwidth
        return pre * (pre > threshold).to(pre.dtype)

    @staticmethod
    def backward(ctx: Any, *grads: Tensor) -> tuple[Tensor | None, ...]:
        pre, threshold = ctx.saved_tensors
        eps = ctx.bandwidth
        grad = grads[0]
        grad_pre = (pre > threshold).to(pre.dtype) * grad
        grad_t = -(threshold / eps) * _rectangle((pre - threshold) / eps) * grad
        return grad_pre, grad_t.reshape(-1, threshold.shape[-1]).sum(0), None


class _Step(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, pre: Tensor, threshold: Tensor, bandwidth: float) -> Tensor:
        ctx.save_for_backward(pre, threshold)
        ctx.bandwidth = bandwidth
        return (pre > threshold).to(pre.dtype)

    @staticmethod
    def backward(ctx: Any, *grads: Tensor) -> tuple[Tensor | None, ...]:
        pre, threshold = ctx.saved_tensors
        eps = ctx.bandwidth
        grad_t = -(1.0 / eps) * _rectangle((pre - threshold) / eps) * grads[0]
        return None, grad_t.reshape(-1, threshold.shape[-1]).sum(0), None


class JumpReLUSAE(Dictionary):
    """Per-latent thresholds trained with straight-through estimators and an L0 penalty."""

    architecture = "jumprelu"

    def __init__(self, config: DictionaryConfig, *, seed: int = 0) -> None:
        super().__init__(config, seed=seed)
        self.threshold = nn.Parameter(torch.full((config.d_sae,), config.jumprelu_init_threshold))

    def activate(self, pre: Tensor) -> Tensor:
        return jumprelu(pre, self.threshold)

    def train_step(
        self, x: Tensor, target: Tensor, dead: Tensor, sparsity_scale: float = 1.0
    ) -> Step:
        pre = self.pre_activations(x)
        bandwidth = self.config.jumprelu_bandwidth
        f = _JumpReLU.apply(pre, self.threshold, bandwidth)
        recon = self.decode(f)  # type: ignore[arg-type]
        skip = self.skip_term(x)
        if skip is not None:
            recon = recon + skip
        mse = squared_error(recon, target)
        l0 = _Step.apply(pre, self.threshold, bandwidth).sum(-1).mean()  # type: ignore[union-attr]
        loss = mse + self.config.l0_coefficient * sparsity_scale * l0
        active = f.detach() > 0  # type: ignore[union-attr]
        return Step(
            loss,
            recon.detach(),
            active.any(0),
            float(active.sum()) / max(x.shape[0], 1),
            {"mse": float(mse.detach()), "l0_penalty": float(l0.detach())},
        )

    def after_step(self, step: Step) -> None:
        with torch.no_grad():
            self.threshold.clamp_(min=0.0)


__all__ = ["JumpReLUSAE"]
