"""Weight edits: new models whose weights are changed, never the model they came from.

`orthogonalize` bakes directional ablation (Arditi et al. 2024, §5) into a deep copy:

1. Copy the model (`Model.copy`); a tied unembedding is untied in the copy first (given its own
   copy of the weights), so the readout stays exactly what it was while the embedding changes.
2. Every matrix that writes into the residual stream loses its component along the unit
   direction ``d``: the token embedding rows ``E ← E − E d dᵀ``, learned position embeddings
   (GPT-2) the same way, and in every block the attention-output and MLP-output projections
   (``W ← W − d dᵀ W`` as ``[d_model, in]``, transposed for Conv1D) and their biases
   (``b ← b − (b · d) d``). Edits run in float64 and are written back in the weights' dtype.
3. The copy's `ModelInfo` says it was edited and carries a new weights fingerprint (the original
   hash and the direction's), so results computed on it never claim the original weights.

A norm between a block's output projection and the residual (Gemma 3's post-attention and
post-MLP norms) rescales each coordinate after the projection, so no weight edit removes ``d``:
`orthogonalize` refuses such models.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace

import torch
from torch import Tensor, nn

from interplab.core.model import Model
from interplab.errors import UserError
from interplab.provenance import data_hash


class EditError(UserError):
    """A weight edit this model's architecture cannot express."""


@torch.no_grad()
def orthogonalize(model: Model, direction: Tensor) -> Model:
    """Returns a copy of ``model`` with ``direction`` (``[d_model]``, any norm) projected out of
    every weight that writes to the residual stream; ``model`` itself is never modified."""
    if model.weights.attn_out_norm(0) is not None:
        raise EditError(
            f"{model.family} normalises attention and MLP outputs after their projections, so "
            "no weight edit removes a direction; ablate it at run time with interventions instead"
        )
    d = direction.detach().double().cpu().flatten()
    if d.numel() != model.dims.d_model or not bool(torch.isfinite(d).all()) or float(d.norm()) == 0:
        raise EditError(
            f"the direction must be a finite, non-zero vector of d_model={model.dims.d_model} "
            f"entries, got {d.numel()} entries with norm {float(d.norm()):.3g}"
        )
    d = d / d.norm()
    edited = model.copy()
    weights = edited.weights
    if weights.tied_embeddings:
        unembedding = weights.unembedding
        unembedding.weight = nn.Parameter(weights.W_E.detach().clone())
        edited.hf.config.tie_word_embeddings = False  # type: ignore[union-attr]
    rows: list[Tensor] = [weights.W_E, *_learned_positions(edited)]  # [.., d_model] rows
    for layer in range(edited.dims.n_layers):
        for module in weights.writers(layer):
            w: Tensor = module.weight  # type: ignore[assignment]
            _project(w, d, rows_are_d_model=weights.writes_transposed)
            bias = getattr(module, "bias", None)
            if isinstance(bias, Tensor):
                rows.append(bias)
    for w in rows:
        _project(w, d, rows_are_d_model=True)
    fingerprint = hashlib.sha256(
        (model.info.weights_sha256 + data_hash(d.tolist())).encode()
    ).hexdigest()
    edited.info = replace(
        model.info,
        name=f"{model.info.name} (direction orthogonalised)",
        source=f"{model.info.source}; weights orthogonalised against a direction",
        weights_sha256=fingerprint,
    )
    return edited


def _project(w: Tensor, d: Tensor, *, rows_are_d_model: bool) -> None:
    """Removes the component along unit ``d`` from ``w`` in place: vectors and ``[.., d_model]``
    rows along their last axis, ``[d_model, in]`` matrices along their first."""
    w64, dd = w.double(), d.to(w.device)
    if w.ndim == 1:
        out = w64 - (w64 @ dd) * dd
    elif rows_are_d_model:
        out = w64 - torch.outer(w64 @ dd, dd)
    else:
        out = w64 - torch.outer(dd, dd @ w64)
    w.copy_(out.to(w.dtype))


def _learned_positions(model: Model) -> list[Tensor]:
    """Returns the learned position-embedding table if the model has one (GPT-2's ``wpe``)."""
    position = getattr(model.hf.base_model, "wpe", None)
    return [position.weight] if isinstance(position, nn.Embedding) else []


__all__ = ["EditError", "orthogonalize"]
