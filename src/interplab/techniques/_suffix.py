"""Running HF's own decoder layers on the end of a sequence: what the exact fast paths share
(activation patching, path patching, causal tracing).

A row changed at layer L and position p changes nothing below L and nothing before p (attention
is causal). `Suffix` holds what HF's decoder-layer modules (never a re-implementation) need to
run positions p..T-1 only: HF's rotary embeddings for those positions and HF's causal mask for
that offset; `run_layer` gives each row a fresh ``DynamicCache`` with the unchanged run's keys and
values of positions < p. `answer_metric` applies the final norm at the answer position only and
the unembedding only for the logits the metric reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from interplab.core.model import Model
from interplab.models.adapter import get_module
from interplab.techniques.metrics import Metric, Targets


@dataclass(frozen=True)
class Suffix:
    """Positions ``start``..T-1 of a sequence: rotary embeddings, causal mask, the layers."""

    start: int
    layers: Any
    position_ids: Tensor
    position_embeddings: Any
    mask: Any


def suffix(
    model: Model, first: Tensor, keys: Tensor | None, values: Tensor | None, start: int
) -> Suffix:
    """Returns the suffix from ``start`` of sequences shaped like ``first`` ``[rows, T, d]`` (the
    residual entering layer 0); ``keys``/``values`` are layer 0's cached ones (their length sets
    the mask's offset)."""
    from transformers.cache_utils import DynamicCache
    from transformers.masking_utils import create_causal_mask

    hf: Any = model.hf
    probe = first[:1, start:]
    position_ids = torch.arange(start, first.shape[1], device=probe.device)[None]
    prefix = None
    if start > 0:
        assert keys is not None and values is not None
        prefix = DynamicCache(config=hf.config)
        prefix.update(keys[:1, :, :start], values[:1, :, :start], 0)
    mask = create_causal_mask(
        config=hf.config,
        inputs_embeds=probe,
        attention_mask=None,
        past_key_values=prefix,
        position_ids=position_ids,
    )
    return Suffix(
        start,
        get_module(hf, model.adapter.layers),
        position_ids,
        hf.model.rotary_emb(probe, position_ids),
        mask,
    )


def run_layer(
    model: Model,
    sx: Suffix,
    layer: int,
    hidden: Tensor,
    keys: list[Tensor] | None = None,
    values: list[Tensor] | None = None,
    index: Tensor | None = None,
) -> Tensor:
    """Returns ``hidden`` after decoder layer ``layer``; row r attends to the cached keys and
    values of example ``index[r]`` at positions before the suffix."""
    from transformers.cache_utils import DynamicCache

    cache = None
    if sx.start > 0:
        assert keys is not None and values is not None and index is not None
        hf: Any = model.hf
        cache = DynamicCache(config=hf.config)
        k, v = keys[layer][index, :, : sx.start], values[layer][index, :, : sx.start]
        cache.update(k, v, layer)
    return sx.layers[layer](
        hidden,
        attention_mask=sx.mask,
        position_ids=sx.position_ids,
        past_key_values=cache,
        position_embeddings=sx.position_embeddings,
    )


def answer_metric(
    model: Model, metric: Metric, targets: Targets, final_resid: Tensor, examples: Tensor
) -> Tensor:
    """Returns the metric of each row from its final residual at the answer position ``[rows, d]``
    (row r is example ``examples[r]``); a logit difference gathers two unembedding rows."""
    final = get_module(model.hf, model.adapter.final_norm)(final_resid)
    unembed = get_module(model.hf, model.adapter.unembed)
    if metric.needs_full_logits:
        return metric(unembed(final), targets, examples)
    cols = metric.columns(targets, examples)
    logits = torch.einsum("rd,rkd->rk", final, unembed.weight[cols])  # type: ignore[index]
    bias = getattr(unembed, "bias", None)
    if bias is not None:
        logits = logits + bias[cols]
    return metric.from_columns(logits.float())
