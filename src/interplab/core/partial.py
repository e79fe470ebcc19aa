"""Partial forwards: run HF's own decoder layers ``a..b`` on the end of a sequence, over a cached
prefix. What the exact fast paths of patching, path patching and causal tracing stand on.

A row changed at layer L and position p changes nothing below L and nothing before p (attention
is causal). So:

1. `Model.base_run` runs the unchanged prompts once and keeps the residual entering every layer
   (and the final residual), HF's keys and values of every layer (after rotary), the logits and
   any captured sites.
2. `Model.partial(base, start)` prepares positions ``start..T-1``: HF's rotary embeddings for
   those positions and HF's causal mask for that offset.
3. `Partial.layer(i, hidden, rows)` runs decoder layer ``i`` (HF's module, never a
   re-implementation) on ``hidden`` ``[rows, T - start, d_model]``, each row attending to the
   base run's keys and values of example ``rows[r]`` at positions before ``start``; interventions
   active in `Model.intervene` apply inside it as in any forward.
4. `Model.unembed` applies the final norm and the unembedding to the residual at chosen
   positions, gathering only the logit columns a metric reads.

Only adapters that declare ``partial`` (the Llama family: rotary, one attention type, no logit
soft-capping) support this, on unpadded batches; `partial_support` says why another does not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from interplab.core.cache import Cache
from interplab.types import Float, Int, KVCache, Logits, Residual

if TYPE_CHECKING:
    from interplab.core.model import Model, Tokens


class PartialUnsupported(RuntimeError):
    """This model or batch cannot run partial forwards; the message says why."""


@dataclass(frozen=True)
class BaseRun:
    """One forward kept for partial re-runs (see the module docstring)."""

    tokens: Tokens
    resid: list[Residual]  # entering layer i, i = 0..N-1, then the final residual
    keys: list[KVCache]  # per layer, after rotary
    values: list[KVCache]
    logits: Logits
    cache: Cache

    @property
    def length(self) -> int:
        return int(self.resid[0].shape[1])


def partial_support(model: Model, tokens: Tokens | None = None) -> str | None:
    """Returns why ``model`` (and ``tokens``) cannot run partial forwards, or None if it can."""
    cfg: Any = model.hf.config
    if not model.adapter.partial:
        return f"partial forwards support the Llama family, not {model.adapter.family}"
    if any(t != "full_attention" for t in getattr(cfg, "layer_types", None) or ()):
        return "the model mixes attention types (sliding windows)"
    if getattr(cfg, "final_logit_softcapping", None):
        return "the model soft-caps its logits"
    if tokens is not None and tokens.padded:
        return "prompts differ in length (padding)"
    return None


def base_run(model: Model, tokens: Tokens, capture: list[Any], interventions: list[Any]) -> BaseRun:
    n_layers = model.dims.n_layers
    reason = partial_support(model, tokens)
    if reason is not None:
        raise PartialUnsupported(reason)
    from interplab.sites import Site

    resid = [Site(i, "resid_pre") for i in range(n_layers)] + [Site(n_layers - 1, "resid_post")]
    wanted = list(dict.fromkeys([*resid, *model.sites(capture)]))
    with model.capture(wanted, interventions=interventions) as cache, torch.no_grad():
        out = model.hf(input_ids=tokens.ids, use_cache=True)
    kv = out.past_key_values
    return BaseRun(
        tokens=tokens,
        resid=[cache[s] for s in resid],
        keys=[kv.layers[i].keys for i in range(n_layers)],
        values=[kv.layers[i].values for i in range(n_layers)],
        logits=out.logits,
        cache=cache,
    )


class Partial:
    """Positions ``start..length-1`` of sequences: rotary embeddings, causal mask, decoder layers."""

    def __init__(self, model: Model, start: int, length: int, base: BaseRun | None) -> None:
        from transformers.cache_utils import DynamicCache
        from transformers.masking_utils import create_causal_mask

        reason = partial_support(model)
        if reason is not None:
            raise PartialUnsupported(reason)
        if not 0 <= start < length:
            raise ValueError(f"start must lie in 0..{length - 1}, got {start}")
        if start > 0 and base is None:
            raise ValueError("a suffix that starts after position 0 needs the base run's keys")
        hf: Any = model.hf
        self._model = model
        self._config = hf.config
        self.start = start
        self.length = length
        self.base = base
        d = model.dims.d_model
        probe = torch.zeros((1, length - start, d), device=model.device, dtype=model.dtype)
        self.position_ids = torch.arange(start, length, device=model.device)[None]
        prefix = None
        if start > 0:
            assert base is not None
            prefix = DynamicCache(config=hf.config)
            prefix.update(base.keys[0][:1, :, :start], base.values[0][:1, :, :start], 0)
        self.mask = create_causal_mask(
            config=hf.config,
            inputs_embeds=probe,
            attention_mask=None,
            past_key_values=prefix,
            position_ids=self.position_ids,
        )
        rotary = model.adapter.rotary
        assert rotary is not None
        from interplab.models.adapter import get_module

        self.position_embeddings = get_module(hf, rotary)(probe, self.position_ids)
        self._layers: Any = get_module(hf, model.adapter.layers)

    def layer(
        self, i: int, hidden: Residual, rows: Int[Tensor, " batch"] | None = None
    ) -> Residual:
        """Returns ``hidden`` ``[rows, length - start, d_model]`` after decoder layer ``i``; row r
        attends to the base run's keys and values of example ``rows[r]`` before ``start``."""
        from transformers.cache_utils import DynamicCache

        cache = None
        if self.start > 0:
            assert self.base is not None
            if rows is None:
                raise ValueError("rows must name each row's example when the suffix has a prefix")
            cache = DynamicCache(config=self._config)
            k = self.base.keys[i][rows, :, : self.start]
            v = self.base.values[i][rows, :, : self.start]
            cache.update(k, v, i)
        return self._layers[i](
            hidden,
            attention_mask=self.mask,
            position_ids=self.position_ids,
            past_key_values=cache,
            position_embeddings=self.position_embeddings,
        )

    def layers(
        self, first: int, stop: int, hidden: Residual, rows: Int[Tensor, " batch"] | None = None
    ) -> Residual:
        """Returns ``hidden`` after decoder layers ``first..stop-1``."""
        for i in range(first, stop):
            hidden = self.layer(i, hidden, rows)
        return hidden


def unembed(
    model: Model,
    resid: Float[Tensor, "*batch d_model"],
    columns: Int[Tensor, "*batch k"] | None = None,
) -> Float[Tensor, "*batch k"]:
    """Returns the logits of final residuals ``[..., d_model]``: the final norm, then the
    unembedding; with ``columns`` ``[rows, k]`` only those logits of each row ``[rows, k]``."""
    w = model.weights
    final = w.final_norm.apply(resid)
    if columns is None:
        return w.unembedding(final)
    logits = torch.einsum("rd,rkd->rk", final, w.W_U.T[columns])
    if w.b_U is not None:
        logits = logits + w.b_U[columns]
    return logits


__all__ = ["BaseRun", "Partial", "PartialUnsupported", "base_run", "partial_support", "unembed"]
