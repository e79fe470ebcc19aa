"""`Dictionary`: the parameters and the encode/decode every architecture shares.

Shapes (the orientation SAELens uses on disk, so saving is a copy):

    W_enc   [d_in, d_sae]     pre = (x - b_dec) @ W_enc + b_enc   (SAE; a transcoder skips - b_dec)
    b_enc   [d_sae]
    W_dec   [d_sae, d_out]    recon = f @ W_dec + b_dec (+ x @ W_skip.T for a skip transcoder)
    b_dec   [d_out]
    W_skip  [d_out, d_in]     skip transcoders only (the orientation of SAELens, sparsify and
                              circuit-tracer alike)
    threshold [d_sae]         architectures whose inference is a JumpReLU gate

An architecture subclasses `Dictionary` once and supplies `activate` (inference: pre-activations
to feature activations) and `train_step` (the loss on one batch). Decoder rows are kept at unit
norm during training (`normalize_decoder`, `project_decoder_grad`); `fold` turns a dictionary
trained on scaled activations into one that reads and writes raw activations with unit-norm
decoder rows.
"""

from __future__ import annotations

import abc
import math
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from interplab.dictionaries.config import DictionaryConfig, DictionaryError
from interplab.dictionaries.sparse import Code, code_values, decode_code, select_dead
from interplab.sites import Site


@dataclass
class Step:
    """One training batch: the loss to minimise and what the live metrics read."""

    loss: Tensor
    recon: Tensor  # detached [n, d_out]
    fired: Tensor  # [d_sae] bool: latents active on this batch
    l0: float
    parts: dict[str, float] = field(default_factory=dict)


class Dictionary(nn.Module, abc.ABC):
    """A sparse dictionary: ``encode``, ``decode``, ``forward`` and one training step."""

    architecture: str = ""
    threshold: Tensor

    def __init__(self, config: DictionaryConfig, *, seed: int = 0) -> None:
        super().__init__()
        if config.architecture != self.architecture:
            raise DictionaryError(
                f"{type(self).__name__} is {self.architecture!r}, the config says "
                f"{config.architecture!r}; build dictionaries with registry.build(config)"
            )
        self.config = config
        d_in, d_sae, d_out = config.d_in, config.d_sae, config.width_out
        g = torch.Generator().manual_seed(seed)
        W_dec = torch.randn(d_sae, d_out, generator=g)
        W_dec /= W_dec.norm(dim=1, keepdim=True)
        if config.kind == "sae":
            W_enc = W_dec.T.clone()  # tied initialisation (Conerly et al. 2024; Gao et al. 2024)
        else:
            W_enc = torch.randn(d_in, d_sae, generator=g)
            W_enc /= W_enc.norm(dim=0, keepdim=True)
        self.W_enc = nn.Parameter(W_enc)
        self.b_enc = nn.Parameter(torch.zeros(d_sae))
        self.W_dec = nn.Parameter(W_dec)
        self.b_dec = nn.Parameter(torch.zeros(d_out))
        self.W_skip: nn.Parameter | None = (
            nn.Parameter(torch.zeros(d_out, d_in)) if config.skip else None
        )

    # -- what it is ---------------------------------------------------------------------------

    @property
    def d_in(self) -> int:
        return self.config.d_in

    @property
    def d_sae(self) -> int:
        return self.config.d_sae

    @property
    def d_out(self) -> int:
        return self.config.width_out

    @property
    def site(self) -> Site | None:
        return self.config.site

    @property
    def target(self) -> Site | None:
        return self.config.write_site

    def __repr__(self) -> str:
        c = self.config
        where = (
            ""
            if c.site is None
            else f", {c.site}" + ("" if c.write_site == c.site else f" -> {c.write_site}")
        )
        return f"{type(self).__name__}({c.kind}, {c.d_in} -> {c.d_sae} -> {c.width_out}{where})"

    # -- inference ----------------------------------------------------------------------------

    def encoder_input(self, x: Tensor) -> Tensor:
        """Returns what the encoder reads: ``x - b_dec`` for an SAE, ``x`` for a transcoder."""
        return x - self.b_dec if self.config.kind == "sae" else x

    def pre_activations(self, x: Tensor) -> Tensor:
        """Returns ``[..., d_sae]`` encoder pre-activations of activations ``[..., d_in]``."""
        self._check_width(x, self.d_in, "input")
        return self.encoder_input(x) @ self.W_enc + self.b_enc

    @abc.abstractmethod
    def activate(self, pre: Tensor) -> Tensor:
        """Returns feature activations from encoder pre-activations (each architecture's rule)."""

    def encode(self, x: Tensor) -> Tensor:
        """Returns the feature activations ``[..., d_sae]`` of activations ``[..., d_in]``."""
        return self.activate(self.pre_activations(x))

    def decode(self, f: Tensor) -> Tensor:
        """Returns ``f @ W_dec + b_dec`` ``[..., d_out]`` (the skip term is added by `forward`)."""
        return f @ self.W_dec + self.b_dec

    def skip_term(self, x: Tensor) -> Tensor | None:
        """Returns ``x @ W_skip.T`` for a skip transcoder, else None."""
        return None if self.W_skip is None else x @ self.W_skip.T

    def forward(self, x: Tensor) -> Tensor:
        """Returns the reconstruction ``[..., d_out]`` of activations ``[..., d_in]``."""
        out = self.decode(self.encode(x))
        skip = self.skip_term(x)
        return out if skip is None else out + skip

    def _check_width(self, x: Tensor, width: int, what: str) -> None:
        if x.shape[-1] != width:
            raise DictionaryError(
                f"{self!r} reads vectors of width {width}; its {what} has width {x.shape[-1]} "
                f"(shape {tuple(x.shape)})"
            )

    # -- training -----------------------------------------------------------------------------

    @abc.abstractmethod
    def train_step(
        self, x: Tensor, target: Tensor, dead: Tensor, sparsity_scale: float = 1.0
    ) -> Step:
        """Returns the loss on one batch ``x [n, d_in]`` -> ``target [n, d_out]``; ``dead`` marks
        latents that have not fired for a while; ``sparsity_scale`` warms up penalties."""

    def after_step(self, step: Step) -> None:
        """Updates state that is not a parameter after the optimiser step (override)."""

    def sparse_step(self, x: Tensor, target: Tensor, code: Code, dead: Tensor) -> Step:
        """Returns the loss of a sparse code: reconstruction MSE plus AuxK on dead latents."""
        x_in = self.encoder_input(x)
        code = code_values(code, x_in, self.W_enc, self.b_enc)
        recon = decode_code(code, self.W_dec) + self.b_dec
        skip = self.skip_term(x)
        if skip is not None:
            recon = recon + skip
        mse = squared_error(recon, target)
        loss = mse
        parts = {"mse": float(mse.detach())}
        aux = self.aux_loss(x, x_in, target, recon.detach(), dead)
        if aux is not None:
            loss = loss + aux
            parts["aux"] = float(aux.detach())
        return Step(loss, recon.detach(), code.fired, code.l0, parts)

    def aux_loss(
        self, x: Tensor, x_in: Tensor, target: Tensor, recon: Tensor, dead: Tensor
    ) -> Tensor | None:
        """Returns the AuxK loss (Gao et al. 2024, appendix B.1): the top ``aux_k`` dead latents
        of each token reconstruct the error of the live ones, scaled down when few are dead."""
        n_dead = int(dead.sum())
        if n_dead == 0 or self.config.aux_coefficient == 0:
            return None
        k_aux = self.config.aux_k or max(1, self.d_out // 2)
        scale = min(n_dead / k_aux, 1.0)
        with torch.no_grad():
            pre = x_in @ self.W_enc + self.b_enc
        code = code_values(select_dead(pre, dead, min(k_aux, n_dead)), x_in, self.W_enc, self.b_enc)
        error_hat = decode_code(code, self.W_dec)
        return self.config.aux_coefficient * scale * squared_error(error_hat, target - recon)

    @torch.no_grad()
    def normalize_decoder(self) -> None:
        """Scales every decoder row to unit norm."""
        self.W_dec /= self.W_dec.norm(dim=1, keepdim=True).clamp(min=1e-12)

    @torch.no_grad()
    def project_decoder_grad(self) -> None:
        """Removes from each decoder row's gradient its component along the row (the row is unit
        norm, so a step then changes its direction, not its length, to first order)."""
        g = self.W_dec.grad
        if g is not None:
            g -= (g * self.W_dec).sum(dim=1, keepdim=True) * self.W_dec

    @torch.no_grad()
    def fold(self, scale_in: float, scale_out: float) -> None:
        """Makes a dictionary trained on ``scale_in * x -> scale_out * y`` read raw ``x`` and
        write raw ``y`` with unit-norm decoder rows (activations come out ``1 / scale_out`` as
        large; thresholds follow them, so which latents fire does not change)."""
        norms = self.W_dec.norm(dim=1).clamp(min=1e-12)
        self.W_dec /= norms[:, None]
        factor = norms / scale_out  # each latent's activation in raw units, per scaled unit
        self.W_enc *= scale_in * factor[None, :]
        self.b_enc *= factor
        self.b_dec /= scale_out
        if self.W_skip is not None:
            self.W_skip.mul_(scale_in / scale_out)
        threshold = getattr(self, "threshold", None)
        if threshold is not None:
            threshold.mul_(factor)


def squared_error(recon: Tensor, target: Tensor) -> Tensor:
    """Returns the squared error summed over the last axis, averaged over tokens."""
    return (recon - target).pow(2).sum(-1).mean()


def auto_lr(d_sae: int) -> float:
    """Returns the Adam learning rate Gao et al. (2024) scale with width: 2e-4 / sqrt(d / 2^14)."""
    return 2e-4 / math.sqrt(d_sae / 2**14)


__all__ = ["Dictionary", "Step", "auto_lr", "squared_error"]
