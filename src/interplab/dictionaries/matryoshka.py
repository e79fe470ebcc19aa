"""Matryoshka BatchTopK: nested prefixes of the latents must each reconstruct the input on their
own (Bussmann et al. 2025, "Learning Multi-Level Features with Matryoshka Sparse Autoencoders";
Nabeshima 2024).

1. Latents are chosen as in BatchTopK (`sparse.select_batch_topk`), with the same JumpReLU
   threshold for inference.
2. For each prefix width ``m`` in ``matryoshka_widths`` and then ``d_sae``, the first ``m``
   latents alone reconstruct the target; the loss is the sum of those reconstruction errors,
   plus AuxK on the full dictionary. Early latents are pushed to general features and later
   ones to refinements, which reduces feature absorption.
"""

from __future__ import annotations

import torch
from torch import Tensor

from interplab.dictionaries.base import Dictionary, Step, squared_error
from interplab.dictionaries.batchtopk import jumprelu, update_threshold
from interplab.dictionaries.config import DictionaryConfig
from interplab.dictionaries.sparse import code_values, decode_code, select_batch_topk


class MatryoshkaBatchTopKSAE(Dictionary):
    """BatchTopK with a reconstruction loss for every nested prefix of latents."""

    architecture = "matryoshka_batchtopk"

    def __init__(self, config: DictionaryConfig, *, seed: int = 0) -> None:
        super().__init__(config, seed=seed)
        self.register_buffer("threshold", torch.zeros(config.d_sae))

    def activate(self, pre: Tensor) -> Tensor:
        return jumprelu(pre, self.threshold)

    def train_step(
        self, x: Tensor, target: Tensor, dead: Tensor, sparsity_scale: float = 1.0
    ) -> Step:
        x_in = self.encoder_input(x)
        with torch.no_grad():
            pre = x_in @ self.W_enc + self.b_enc
        code = select_batch_topk(pre, self.config.k)
        update_threshold(self.threshold, code, self.config.threshold_lr)
        code = code_values(code, x_in, self.W_enc, self.b_enc)
        skip = self.skip_term(x)
        loss = torch.zeros((), dtype=x.dtype)
        parts: dict[str, float] = {}
        recon = target
        for width in self.config.levels:
            level = code if width == self.d_sae else code.only(code.cols < width)
            recon = decode_code(level, self.W_dec) + self.b_dec
            if skip is not None:
                recon = recon + skip
            error = squared_error(recon, target)
            loss = loss + error
            parts[f"mse_{width}"] = float(error.detach())
        parts["mse"] = parts[f"mse_{self.d_sae}"]
        aux = self.aux_loss(x, x_in, target, recon.detach(), dead)
        if aux is not None:
            loss = loss + aux
            parts["aux"] = float(aux.detach())
        return Step(loss, recon.detach(), code.fired, code.l0, parts)


__all__ = ["MatryoshkaBatchTopKSAE"]
