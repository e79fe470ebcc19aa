"""BatchTopK: the ``k * n`` largest pre-activations of a whole batch of n tokens stay active, so
k holds on average and busy tokens may use more latents than quiet ones (Bussmann et al. 2024,
"BatchTopK Sparse Autoencoders").

1. ``pre = (x - b_dec) @ W_enc + b_enc`` (a transcoder reads ``x`` itself).
2. Training keeps the batch's ``k * n`` largest positive pre-activations
   (`sparse.select_batch_topk`); loss = reconstruction error + AuxK on dead latents.
3. A batch rule cannot encode one token alone, so inference is a JumpReLU: a latent fires when its
   pre-activation exceeds ``threshold``, an exponential moving average (rate ``threshold_lr``) of
   the smallest activation each training batch kept, started at the first batch's. This is how
   SAELens saves BatchTopK SAEs (architecture ``jumprelu`` with that threshold).
"""

from __future__ import annotations

import torch
from torch import Tensor

from interplab.dictionaries.base import Dictionary, Step
from interplab.dictionaries.config import DictionaryConfig
from interplab.dictionaries.sparse import Code, select_batch_topk


class BatchTopKSAE(Dictionary):
    """BatchTopK in training, a JumpReLU at the learned threshold for inference."""

    architecture = "batchtopk"

    def __init__(self, config: DictionaryConfig, *, seed: int = 0) -> None:
        super().__init__(config, seed=seed)
        self.register_buffer("threshold", torch.zeros(config.d_sae))

    def activate(self, pre: Tensor) -> Tensor:
        return jumprelu(pre, self.threshold)

    def train_step(
        self, x: Tensor, target: Tensor, dead: Tensor, sparsity_scale: float = 1.0
    ) -> Step:
        with torch.no_grad():
            pre = self.encoder_input(x) @ self.W_enc + self.b_enc
        code = select_batch_topk(pre, self.config.k)
        update_threshold(self.threshold, code, self.config.threshold_lr)
        return self.sparse_step(x, target, code, dead)


def jumprelu(pre: Tensor, threshold: Tensor) -> Tensor:
    """Returns ``pre`` where it exceeds ``threshold`` (and zero), else 0."""
    return pre * ((pre > threshold) & (pre > 0)).to(pre.dtype)


@torch.no_grad()
def update_threshold(threshold: Tensor, code: Code, rate: float) -> None:
    """Moves the inference threshold towards the smallest activation this batch kept."""
    if code.values.numel() == 0:
        return
    smallest = code.values.min()
    if bool((threshold == 0).all()):
        threshold.fill_(float(smallest))
    else:
        threshold.mul_(1 - rate).add_(rate * smallest)


__all__ = ["BatchTopKSAE", "jumprelu", "update_threshold"]
