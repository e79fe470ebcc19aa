"""TopK: exactly the k largest pre-activations of each token stay active (Makhzani & Frey 2013;
Gao et al. 2024, "Scaling and evaluating sparse autoencoders").

1. ``pre = (x - b_dec) @ W_enc + b_enc`` (a transcoder reads ``x`` itself).
2. ``f`` keeps each token's k largest pre-activations, passed through a ReLU; the rest are zero.
   Sparsity is set by k, so the loss is only the reconstruction error.
3. Dead latents (no activation for `TrainConfig.dead_after_tokens` tokens) are revived by the
   AuxK loss: each token's top ``aux_k`` dead latents reconstruct the live latents' error
   (`Dictionary.aux_loss`).
4. Training is sparse (`interplab.dictionaries.sparse`): gradients reach only the chosen
   encoder columns and decoder rows.
"""

from __future__ import annotations

import torch
from torch import Tensor

from interplab.dictionaries.base import Dictionary, Step
from interplab.dictionaries.sparse import select_topk


class TopKSAE(Dictionary):
    """The k largest pre-activations per token, ReLU'd."""

    architecture = "topk"

    def activate(self, pre: Tensor) -> Tensor:
        values, index = pre.topk(self.config.k, dim=-1, sorted=False)
        return torch.zeros_like(pre).scatter(-1, index, values.relu())

    def train_step(
        self, x: Tensor, target: Tensor, dead: Tensor, sparsity_scale: float = 1.0
    ) -> Step:
        with torch.no_grad():
            pre = self.encoder_input(x) @ self.W_enc + self.b_enc
        return self.sparse_step(x, target, select_topk(pre, self.config.k), dead)


__all__ = ["TopKSAE"]
