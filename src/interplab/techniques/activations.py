"""Activations for probing: one vector per example and layer, all layers from one forward pass.

1. Capture a residual site (``resid_pre``, ``resid_mid`` or ``resid_post``) at every requested
   layer in one `Model.run` per batch (never one forward per layer).
2. Reduce each example to one vector per layer at a position: its last real token (``"last"``),
   the mean over its real tokens (``"mean"``; padding is excluded through the attention mask), an
   int offset (``-2``: the token before the last; ``3``: token 3), or the last occurrence of a
   named token (``" is"``, compared after stripping spaces).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from interplab.core.model import Model
from interplab.errors import UserError
from interplab.results.probes import Position
from interplab.sites import Component, Site


class ActivationError(UserError):
    """A site, position or input that activations cannot be gathered for."""


RESIDUAL_COMPONENTS: tuple[Component, ...] = ("resid_pre", "resid_mid", "resid_post")


@dataclass(frozen=True)
class Activations:
    """One vector per example and layer: ``values[example, layer, d_model]``, read at a position."""

    values: np.ndarray  # [n, layer, d_model] float32
    layers: tuple[int, ...]
    component: str
    position: Position
    model: dict[str, Any]
    token_index: np.ndarray  # [n]: the token read (-1 for "mean")

    @property
    def n(self) -> int:
        return int(self.values.shape[0])


@torch.no_grad()
def gather_activations(
    model: Model,
    inputs: Sequence[str] | Tensor,
    *,
    component: Component = "resid_post",
    position: Position = "last",
    layers: Sequence[int] | None = None,
    batch_size: int = 64,
) -> Activations:
    """Returns ``[example, layer, d_model]`` activations, all layers from one forward per batch."""
    if component not in RESIDUAL_COMPONENTS:
        raise ActivationError(
            f"probe a residual site, one of {RESIDUAL_COMPONENTS}, not {component!r}"
        )
    layer_list = list(range(model.dims.n_layers)) if layers is None else [int(i) for i in layers]
    sites = model.sites([Site(layer, component) for layer in layer_list])
    n = len(inputs)
    if n == 0:
        raise ActivationError("no inputs to gather activations from")
    values = np.empty((n, len(layer_list), model.dims.d_model), dtype=np.float32)
    token_index = np.empty(n, dtype=np.int64)
    for start in range(0, n, batch_size):
        chunk = inputs[start : start + batch_size]
        run = model.run(chunk if isinstance(chunk, Tensor) else list(chunk), capture=sites)
        stack = torch.stack([run.cache[s] for s in sites], 1).float()  # [b, layer, pos, d]
        mask = run.tokens.mask.to(stack.device)
        rows = torch.arange(stack.shape[0], device=stack.device)
        if position == "mean":
            w = mask[:, None, :, None].to(stack.dtype)
            reduced = (stack * w).sum(2) / w.sum(2)
            index = torch.full((stack.shape[0],), -1)
        else:
            index = _token_index(model, run.tokens.ids, mask, position, start)
            reduced = stack[rows, :, index.to(stack.device)]
        values[start : start + len(chunk)] = reduced.cpu().numpy()
        token_index[start : start + len(chunk)] = index.cpu().numpy()
    return Activations(
        values, tuple(layer_list), component, position, model.info.to_dict(), token_index
    )


def _token_index(model: Model, ids: Tensor, mask: Tensor, position: Position, start: int) -> Tensor:
    lengths = mask.sum(1).cpu()
    if position == "last":
        return lengths - 1
    if isinstance(position, int):
        index = lengths + position if position < 0 else torch.full_like(lengths, position)
        bad = ((index < 0) | (index >= lengths)).nonzero().flatten().tolist()
        if bad:
            raise ActivationError(
                f"position {position} is outside example {start + bad[0]} "
                f"({int(lengths[bad[0]])} tokens)"
            )
        return index
    out = []
    for i, row in enumerate(ids.cpu()):
        pieces = [model.tokenizer.decode([int(t)]) for t in row[: int(lengths[i])]]
        hits = [j for j, p in enumerate(pieces) if p.strip() == position.strip()]
        if not hits:
            raise ActivationError(
                f"example {start + i} has no token {position!r}; its tokens are {pieces} (use "
                "'last', 'mean', an int offset, or a token every example contains)"
            )
        out.append(hits[-1])
    return torch.tensor(out)


__all__ = [
    "RESIDUAL_COMPONENTS",
    "ActivationError",
    "Activations",
    "Position",
    "gather_activations",
]
