"""Sparse codes: which latents fire on which tokens, and the kernels that train on them.

A TopK-family dictionary activates k of thousands of latents per token, so its backward pass need
not touch the rest (as EleutherAI's sparsify does with a fused encoder):

1. Pre-activations ``x_in @ W_enc + b_enc`` are computed once without autograd, and the latents to
   keep are chosen from them (`select_topk`, `select_batch_topk`, `select_dead`).
2. `code_values` returns the chosen pre-activations with a backward that writes gradients only to
   the chosen columns of ``W_enc`` and ``b_enc`` (one sparse-dense product ``G^T @ x_in``), and to
   the input when the input depends on a parameter (an SAE subtracts ``b_dec`` first).
3. `decode_code` sums the chosen decoder rows with ``embedding_bag``, whose backward is a sparse
   index-add into ``W_dec``.

A `Code` holds the kept entries in row-major order (``rows`` non-decreasing), so each token's
entries are contiguous and ``embedding_bag`` reads them as one bag per token.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class Code:
    """Kept latents of a batch of ``n`` tokens: entry ``i`` is latent ``cols[i]`` on token
    ``rows[i]`` with activation ``values[i]`` (rows non-decreasing)."""

    rows: Tensor
    cols: Tensor
    values: Tensor
    n: int
    d_sae: int

    def dense(self) -> Tensor:
        """Returns the activations as a dense ``[n, d_sae]`` tensor."""
        out = self.values.new_zeros(self.n, self.d_sae)
        return out.index_put((self.rows, self.cols), self.values)

    def offsets(self) -> Tensor:
        """Returns where each token's entries start (the bags of ``embedding_bag``)."""
        counts = torch.bincount(self.rows, minlength=self.n)
        return torch.cumsum(counts, 0) - counts

    def only(self, keep: Tensor) -> Code:
        """Returns the code restricted to the entries where ``keep`` is True."""
        return Code(self.rows[keep], self.cols[keep], self.values[keep], self.n, self.d_sae)

    def with_values(self, values: Tensor) -> Code:
        return Code(self.rows, self.cols, values, self.n, self.d_sae)

    @property
    def fired(self) -> Tensor:
        """Returns ``[d_sae]`` bool: latents active (> 0) on at least one token."""
        out = torch.zeros(self.d_sae, dtype=torch.bool, device=self.cols.device)
        out[self.cols[self.values.detach() > 0]] = True
        return out

    @property
    def l0(self) -> float:
        """Mean number of active latents per token."""
        return float((self.values.detach() > 0).sum()) / max(self.n, 1)


def select_topk(pre: Tensor, k: int) -> Code:
    """Returns the ``k`` largest positive pre-activations of each row (TopK + ReLU)."""
    n, d_sae = pre.shape
    values, cols = pre.topk(k, dim=-1, sorted=False)
    rows = torch.arange(n, device=pre.device).repeat_interleave(k)
    code = Code(rows, cols.reshape(-1), values.reshape(-1), n, d_sae)
    return code.only(code.values > 0)


def select_batch_topk(pre: Tensor, k: int) -> Code:
    """Returns the ``k * n`` largest positive pre-activations of the whole batch (BatchTopK).

    Exact, but cheaper than one top-k over ``n * d_sae`` values: each row's top ``4k`` are the
    candidates, and only if some row had all of its candidates chosen (so it might own more) is
    the whole batch ranked.
    """
    n, d_sae = pre.shape
    total = min(k * n, n * d_sae)
    per_row = min(d_sae, 4 * k)
    cand_values, cand_cols = pre.topk(per_row, dim=-1, sorted=False)
    flat_values = cand_values.reshape(-1)
    chosen = flat_values.topk(total, sorted=False).indices
    rows = chosen // per_row
    if per_row < d_sae and bool((torch.bincount(rows, minlength=n) >= per_row).any()):
        flat = pre.reshape(-1).topk(total, sorted=False).indices.sort().values
        rows, cols = flat // d_sae, flat % d_sae
    else:
        chosen = chosen.sort().values
        rows = chosen // per_row
        cols = cand_cols.reshape(-1)[chosen]
        order = torch.argsort(rows * d_sae + cols)
        rows, cols = rows[order], cols[order]
    values = pre[rows, cols]
    return Code(rows, cols, values, n, d_sae).only(values > 0)


def select_above(pre: Tensor, threshold: Tensor) -> Code:
    """Returns the pre-activations above ``threshold`` (a JumpReLU gate; ``[d_sae]`` or scalar)."""
    n, d_sae = pre.shape
    rows, cols = torch.nonzero((pre > threshold) & (pre > 0), as_tuple=True)
    return Code(rows, cols, pre[rows, cols], n, d_sae)


def select_dead(pre: Tensor, dead: Tensor, k: int) -> Code:
    """Returns each row's ``k`` largest pre-activations among ``dead`` latents (AuxK; values may
    be negative, as in Gao et al. 2024 and its reference implementations)."""
    n, d_sae = pre.shape
    masked = torch.where(dead[None, :], pre, torch.full_like(pre, -torch.inf))
    values, cols = masked.topk(k, dim=-1, sorted=False)
    rows = torch.arange(n, device=pre.device).repeat_interleave(k)
    return Code(rows, cols.reshape(-1), values.reshape(-1), n, d_sae)


class _CodeValues(torch.autograd.Function):
    """The chosen pre-activations, with gradients only to the chosen encoder columns."""

    @staticmethod
    def forward(
        ctx: Any,
        values: Tensor,
        x_in: Tensor,
        W_enc: Tensor,
        b_enc: Tensor,
        rows: Tensor,
        cols: Tensor,
    ) -> Tensor:
        ctx.save_for_backward(x_in, W_enc, rows, cols)
        return values.clone()

    @staticmethod
    def backward(ctx: Any, *grads: Tensor) -> tuple[Tensor | None, ...]:
        grad = grads[0]
        x_in, W_enc, rows, cols = ctx.saved_tensors
        d_sae = W_enc.shape[1]
        n = x_in.shape[0]
        grad_x = grad_W = grad_b = None
        if ctx.needs_input_grad[2]:
            g_t = torch.sparse_coo_tensor(
                torch.stack([cols, rows]), grad, (d_sae, n), check_invariants=False
            )
            grad_W = torch.sparse.mm(g_t, x_in).T
        if ctx.needs_input_grad[3]:
            grad_b = torch.zeros(d_sae, dtype=grad.dtype, device=grad.device).index_add_(
                0, cols, grad
            )
        if ctx.needs_input_grad[1]:  # rows are grouped, so each token is one bag
            counts = torch.bincount(rows, minlength=n)
            offsets = torch.cumsum(counts, 0) - counts
            grad_x = F.embedding_bag(
                cols, W_enc.T.contiguous(), offsets, mode="sum", per_sample_weights=grad
            )
        return None, grad_x, grad_W, grad_b, None, None


def code_values(code: Code, x_in: Tensor, W_enc: Tensor, b_enc: Tensor) -> Code:
    """Returns ``code`` whose values carry gradients to ``W_enc``, ``b_enc`` and ``x_in``."""
    values = _CodeValues.apply(code.values.detach(), x_in, W_enc, b_enc, code.rows, code.cols)
    return code.with_values(values)  # type: ignore[arg-type]


def decode_code(code: Code, W_dec: Tensor) -> Tensor:
    """Returns ``code.dense() @ W_dec`` (no bias) without forming the dense code."""
    if code.cols.numel() == 0:
        return W_dec.new_zeros(code.n, W_dec.shape[1]) + 0 * W_dec.sum()
    return F.embedding_bag(
        code.cols, W_dec, code.offsets(), mode="sum", per_sample_weights=code.values
    )


__all__ = [
    "Code",
    "code_values",
    "decode_code",
    "select_above",
    "select_batch_topk",
    "select_dead",
    "select_topk",
]
