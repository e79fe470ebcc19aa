"""Fitting probes: many independent binary probes at every layer in one batched optimisation.

1. ``logistic``: L2-penalised logistic regression on features standardised with the training
   rows' mean and (population) standard deviation, minimising ``Σ log-loss + ||w||² / (2C)``
   (scikit-learn's objective, intercept unpenalised) by full-batch L-BFGS in torch. Every task
   (a fold, a control permutation) and every layer is one independent problem; their losses are
   summed, so one optimiser fits them all and the gradients never mix.
2. ``diffmean``: direction ``mean(label 1) − mean(label 0)`` over the training rows, threshold at
   the midpoint of the two class means projected on it (Marks & Tegmark 2023).
3. Directions are mapped back to raw activation coordinates: ``score = x · direction + bias``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from interplab.results.directions import ProbeDirections
from interplab.results.probes import PROBE_KINDS, ProbeError, ProbeKind


def fit_probes(
    values: np.ndarray,
    labels: Sequence[int] | np.ndarray,
    *,
    probe: ProbeKind = "logistic",
    c: float = 0.01,
    layers: Sequence[int] | None = None,
    device: str | torch.device = "cpu",
    max_iter: int = 500,
) -> ProbeDirections:
    """Returns one probe per layer fit on all of ``values`` (``[n, layer, d_model]`` or ``[n, d]``)."""
    x = values[:, None] if values.ndim == 2 else values
    y = np.asarray(labels, dtype=np.int64)
    coef, bias = fit_batched(
        torch.as_tensor(x, device=device),
        torch.as_tensor(y[None], device=device),
        torch.ones((1, len(y)), dtype=torch.bool, device=device),
        probe,
        c,
        max_iter,
    )
    return ProbeDirections(
        coef[0].double().cpu().numpy(),
        bias[0].double().cpu().numpy(),
        tuple(layers) if layers is not None else tuple(range(x.shape[1])),
        probe,
        "unknown",
        "unknown",
    )


def fit_batched(
    x: Tensor, y: Tensor, train: Tensor, probe: str, c: float, max_iter: int = 500
) -> tuple[Tensor, Tensor]:
    """Fits T independent tasks × L layers at once. x ``[n, L, d]``, y and train ``[T, n]``
    (train marks each task's training rows). Returns raw-coordinate directions ``[T, L, d]``
    and biases ``[T, L]``."""
    x = x.float()
    w = train.float()
    if probe == "diffmean":
        pos, neg = w * (y == 1), w * (y == 0)
        mu_pos = torch.einsum("tn,nld->tld", pos / pos.sum(1, keepdim=True), x)
        mu_neg = torch.einsum("tn,nld->tld", neg / neg.sum(1, keepdim=True), x)
        direction = mu_pos - mu_neg
        return direction, -(((mu_pos + mu_neg) / 2) * direction).sum(-1)
    if probe != "logistic":
        raise ProbeError(f"unknown probe {probe!r}; choose one of {PROBE_KINDS}")
    if c <= 0:
        raise ProbeError(f"the inverse regularisation strength c must be positive, got {c}")
    n_train = w.sum(1)
    mean = torch.einsum("tn,nld->tld", w / n_train[:, None], x)
    var = torch.einsum("tn,nld->tld", w / n_train[:, None], x.square()) - mean.square()
    sd = var.clamp_min(0).sqrt()
    sd = torch.where(sd > 1e-6 * (1 + mean.abs()), sd, torch.ones_like(sd))  # constant features
    sign = (2 * y.float() - 1)[..., None]  # [T, n, 1]
    coef = torch.zeros(mean.shape, device=x.device, requires_grad=True)
    intercept = torch.zeros(mean.shape[:2], device=x.device, requires_grad=True)
    opt = torch.optim.LBFGS(
        [coef, intercept],
        lr=1,
        max_iter=max_iter,
        tolerance_grad=1e-7,
        tolerance_change=1e-12,
        history_size=20,
        line_search_fn="strong_wolfe",
    )

    def closure() -> Tensor:
        opt.zero_grad()
        v = coef / sd
        z = torch.einsum("nld,tld->tnl", x, v) - (mean * v).sum(-1)[:, None] + intercept[:, None]
        nll = (F.softplus(-sign * z) * w[..., None]).sum(1)  # [T, L]
        loss = ((nll + coef.square().sum(-1) / (2 * c)) / n_train[:, None]).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)  # type: ignore[arg-type]
    with torch.no_grad():
        v = coef / sd
        return v.detach(), (intercept - (mean * v).sum(-1)).detach()


__all__ = ["fit_batched", "fit_probes"]
