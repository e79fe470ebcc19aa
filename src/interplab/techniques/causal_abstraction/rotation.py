"""Learnable orthogonal maps for DAS, and random orthonormal bases for its baseline.

- `SubspaceRotation` (DAS, Geiger et al. 2023): ``k`` orthonormal directions ``B`` ``[d, k]``,
  the first ``k`` columns of a rotation, parametrised by QR: ``B = Q`` of a free ``[d, k]``
  matrix with the signs fixed so that R has a positive diagonal (a smooth map onto the
  orthonormal bases), so every step of gradient descent gives an orthonormal basis. (PyTorch's
  ``parametrizations.orthogonal`` would do too, but its Householder map gave different
  gradients for the same input from run to run here, and runs must be reproducible.)
- `BoundlessRotation` (Boundless DAS, Wu et al. 2023, "Interpretability at Scale: Identifying
  Causal Mechanisms in Alpaca", NeurIPS): a full rotation ``R`` ``[d, d]`` and a learned
  boundary ``b`` in (0, 1]: rotated coordinate ``i`` is interchanged with weight
  ``m_i = sigmoid((b·d − i) / τ)``; the temperature ``τ`` is annealed towards a hard mask, and a
  penalty on ``b`` asks for the smallest subspace that still does the job. The hard subspace at
  the end is the columns of ``R`` whose weight exceeds 1/2.
- `random_basis`: a Haar-random ``[d, k]`` orthonormal basis (QR of a Gaussian matrix with the
  sign fix of Mezzadri 2007), seeded.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from interplab.techniques.causal_abstraction.runner import (
    Edit,
    masked_rotation_edit,
    subspace_edit,
)


def random_basis(d: int, k: int, seed: int, dtype: torch.dtype = torch.float64) -> Tensor:
    """Returns a Haar-random ``[d, k]`` matrix with orthonormal columns (seeded)."""
    g = torch.Generator().manual_seed(seed)
    q, r = torch.linalg.qr(torch.randn((d, k), generator=g, dtype=torch.float64))
    signs = torch.sign(torch.diagonal(r))
    signs[signs == 0] = 1.0
    return (q * signs).to(dtype)


def orthonormal(w: Tensor) -> Tensor:
    """Returns the Q factor of ``w`` ``[d, k]`` with R's diagonal made positive (differentiable)."""
    q, r = torch.linalg.qr(w)
    signs = torch.sign(torch.diagonal(r))
    return q * torch.where(signs == 0, torch.ones_like(signs), signs)


class SubspaceRotation(nn.Module):
    """``k`` learnable orthonormal directions in ``d`` dimensions (DAS)."""

    def __init__(self, d: int, k: int, seed: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(random_basis(d, k, seed, torch.float32))
        self.d, self.k = d, k

    def basis(self) -> Tensor:
        """Returns ``[d, k]`` orthonormal columns (differentiable)."""
        return orthonormal(self.weight)

    def edit(self, temperature: float | None = None) -> Edit:
        return subspace_edit(self.basis())

    def penalty(self) -> Tensor:
        return torch.zeros(())

    def size(self, temperature: float | None = None) -> float:
        return float(self.k)

    def hard_basis(self) -> Tensor:
        return self.basis().detach()


class BoundlessRotation(nn.Module):
    """A learnable rotation and interchange boundary (Boundless DAS)."""

    index: Tensor

    def __init__(self, d: int, seed: int, boundary: float = 0.5) -> None:
        super().__init__()
        self.weight = nn.Parameter(random_basis(d, d, seed, torch.float32))
        self.boundary = nn.Parameter(torch.tensor(float(boundary)))
        self.register_buffer("index", torch.arange(d, dtype=torch.float32), persistent=False)
        self.d = d

    def rotation(self) -> Tensor:
        """Returns the ``[d, d]`` rotation (columns: the rotated coordinates' directions)."""
        return orthonormal(self.weight)

    def mask(self, temperature: float) -> Tensor:
        b = self.boundary.clamp(1.0 / self.d, 1.0) * self.d
        return torch.sigmoid((b - self.index) / temperature)

    def edit(self, temperature: float | None = None) -> Edit:
        assert temperature is not None
        return masked_rotation_edit(self.rotation(), self.mask(temperature))

    def penalty(self) -> Tensor:
        return self.boundary.clamp(1.0 / self.d, 1.0)

    def size(self, temperature: float | None = None) -> float:
        return float(self.mask(temperature or 1e-3).detach().sum())

    def hard_basis(self) -> Tensor:
        """Returns the columns of the rotation whose hard mask weight exceeds 1/2 (at least one)."""
        with torch.no_grad():
            k = max(1, int((self.mask(1e-3) > 0.5).sum()))
            return self.rotation()[:, :k].detach()


__all__ = ["BoundlessRotation", "SubspaceRotation", "orthonormal", "random_basis"]
