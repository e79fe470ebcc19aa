"""ReLU + L1: the standard sparse autoencoder (Bricken et al. 2023, "Towards Monosemanticity";
the L1 penalty weighted by decoder norms as in Anthropic's April 2024 update).

1. ``f = ReLU((x - b_dec) @ W_enc + b_enc)`` (a transcoder reads ``x`` itself).
2. Loss: ``|recon - target|^2`` summed over dimensions and averaged over tokens, plus
   ``l1_coefficient * sum_i f_i |W_dec[i]|`` (decoder rows are kept at unit norm, so the weight is
   1 during training; it stops the penalty being dodged by growing the decoder).
3. The L1 coefficient can warm up from zero (`TrainConfig.sparsity_warmup_tokens`), which keeps
   latents from dying in the first steps.
"""

from __future__ import annotations

from torch import Tensor

from interplab.dictionaries.base import Dictionary, Step, squared_error


class StandardSAE(Dictionary):
    """ReLU activations with an L1 penalty."""

    architecture = "standard"

    def activate(self, pre: Tensor) -> Tensor:
        return pre.relu()

    def train_step(
        self, x: Tensor, target: Tensor, dead: Tensor, sparsity_scale: float = 1.0
    ) -> Step:
        f = self.encode(x)
        recon = self.decode(f)
        skip = self.skip_term(x)
        if skip is not None:
            recon = recon + skip
        mse = squared_error(recon, target)
        l1 = (f * self.W_dec.norm(dim=1)).sum(-1).mean()
        loss = mse + self.config.l1_coefficient * sparsity_scale * l1
        active = f.detach() > 0
        return Step(
            loss,
            recon.detach(),
            active.any(0),
            float(active.sum()) / max(x.shape[0], 1),
            {"mse": float(mse.detach()), "l1": float(l1.detach())},
        )


__all__ = ["StandardSAE"]
