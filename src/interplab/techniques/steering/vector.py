"""Steering vectors: the difference of mean residuals between two sets of prompts.

1. Run the positive and the negative prompts, capturing the residual stream at the chosen
   layers (``resid_pre``, the input of block L, by default; ``resid_post`` is the output of block
   L, which equals ``resid_pre`` of block L+1) in one forward per batch.
2. Reduce each prompt to one vector per layer: its last real token, or the mean over its real
   tokens (padding is never counted), and average over prompts in float64.
3. The vector is mean(positive) − mean(negative) per layer (Turner et al. 2023; Rimsky et al.
   2024). `steering_interventions` turns it into one `Add` per layer, each batch row with its
   own (already scaled) vector.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from interplab.core.interventions import Add, Positions
from interplab.core.model import Inputs, Model
from interplab.provenance import Provenance, data_hash
from interplab.results.steering import (
    Reduction,
    ResidComponent,
    SteeringVector,
    SteeringVectorConfig,
)
from interplab.sites import FeatureSite, Site
from interplab.techniques.steering.behaviour import SteeringError


@torch.inference_mode()
def steering_vector(
    model: Model,
    positive: Inputs,
    negative: Inputs,
    *,
    layers: int | Sequence[int] = (),
    component: ResidComponent = "resid_pre",
    position: Reduction = "mean",
    batch_size: int = 32,
    config: SteeringVectorConfig | None = None,
) -> SteeringVector:
    """Returns mean(positive) − mean(negative) of the residual at each layer (one vector per prompt:
    its last token, or the mean over its tokens; padding is never counted). ``config`` replaces
    the keyword options."""
    cfg = config or SteeringVectorConfig(
        layers=(layers,) if isinstance(layers, int) else tuple(int(x) for x in layers),
        component=component,
        position=position,
        batch_size=batch_size,
    )
    sites = model.sites([Site(layer, cfg.component) for layer in cfg.layers])
    pos_mean, n_pos = _mean_residual(model, positive, sites, cfg.position, cfg.batch_size)
    neg_mean, n_neg = _mean_residual(model, negative, sites, cfg.position, cfg.batch_size)
    vectors = (pos_mean - neg_mean).numpy()
    check_finite(vectors, list(cfg.layers))
    prov = Provenance(
        technique="steering_vector",
        model=model.info.to_dict(),
        config=cfg.to_dict(),
        data_sha256=data_hash({"positive": _hashable(positive), "negative": _hashable(negative)}),
    )
    return SteeringVector(
        layers=list(cfg.layers),
        component=cfg.component,
        position=cfg.position,
        vectors=vectors,
        positive_mean=pos_mean.numpy(),
        negative_mean=neg_mean.numpy(),
        n_positive=n_pos,
        n_negative=n_neg,
        provenance=prov,
    )


def feature_vector(model: Model, feature: str | FeatureSite) -> SteeringVector:
    """Returns the steering vector of one dictionary feature: its decoder row, placed on the
    residual stream where the dictionary writes (an SAE's own residual site; a transcoder's or an
    ``attn_out``/``mlp_out`` SAE's output lands in ``resid_post`` of its layer, to which that
    output is added). A coefficient c then adds c units of the feature, exactly what
    `interplab.dictionaries.Spliced.steer` does with the error term kept. It has no contrast
    sets: ``positive_mean`` is the row, ``negative_mean`` zero, ``n_positive = n_negative = 0``."""
    from interplab.dictionaries.attach import decoder_rows, resolve

    r = resolve(model, feature)
    if r.site.feature is None:
        raise SteeringError(f"{r.site} names every feature; steer one (add .f<index>)")
    write = r.write
    component: ResidComponent
    if write.component in ("resid_pre", "resid_post"):
        component = write.component  # type: ignore[assignment]
    elif write.component == "mlp_out" and not model.parallel_residual:
        component = "resid_post"  # resid_post = resid_mid + mlp_out
    else:
        raise SteeringError(
            f"{r.site}: steering vectors live on resid_pre or resid_post; steer a feature written "
            f"at {write} with interplab.dictionaries.spliced(...).steer"
        )
    row = decoder_rows(r)[0].double().numpy()[None, :].astype(np.float32)
    return SteeringVector(
        layers=[int(write.layer)],  # type: ignore[arg-type]
        component=component,
        position="mean",
        vectors=row,
        positive_mean=row,
        negative_mean=np.zeros_like(row),
        n_positive=0,
        n_negative=0,
        provenance=Provenance(
            technique="feature_vector",
            model=model.info.to_dict(),
            config={"feature": str(r.site), "dictionary": r.dictionary.config.to_dict()},
            data_sha256=data_hash({"decoder_row": row.tolist()}),
        ),
    )


def happiness_vector(model: Model, *, layers: int | Sequence[int] = 6) -> SteeringVector:
    """Returns the happiness vector of the seed exercise: the 32 fixed happy minus the 32 fixed sad
    first-person sentences of `interplab.data.sentiment_prompts`, mean over tokens."""
    from interplab.data.sentiment_prompts import HAPPY_PROMPTS, SAD_PROMPTS

    return steering_vector(model, list(HAPPY_PROMPTS), list(SAD_PROMPTS), layers=layers)


def steering_interventions(
    vector: SteeringVector, rows: Tensor, *, positions: Positions = None
) -> list[Add]:
    """Returns one `Add` per layer adding ``rows[:, layer]`` (``[batch, layer, d_model]``, already
    scaled by the coefficients) to each row of the batch."""
    values = rows.detach().double().cpu().numpy()  # numpy has no bfloat16
    check_finite(values, vector.layers, what="the scaled steering vectors")
    return [
        Add(vector.site(layer), rows[:, i, None, :], positions=positions)
        for i, layer in enumerate(vector.layers)
    ]


def check_finite(
    values: np.ndarray, layers: Sequence[int], what: str = "the steering vector"
) -> None:
    """Raises SteeringError naming the layers where ``values`` (``[..., layer, d]``) hold NaN or inf."""
    bad = ~np.isfinite(values)
    if bool(bad.any()):
        per_layer = bad.reshape(-1, len(layers), bad.shape[-1]).any((0, 2))
        where = [layers[int(i)] for i in np.flatnonzero(per_layer)]
        raise SteeringError(
            f"{what} holds NaN or inf at layers {where}; steering needs finite vectors (check the "
            "prompts it was built from, or the file it was read from)"
        )


def _mean_residual(
    model: Model, prompts: Inputs, sites: list[Site], position: Reduction, batch_size: int
) -> tuple[Tensor, int]:
    """Returns the mean over prompts of each prompt's (last or mean) residual: ``[layer, d]``."""
    if isinstance(prompts, Tensor):
        batches: list[Any] = list(prompts.split(batch_size)) if prompts.ndim == 2 else [prompts]
    else:
        items = [prompts] if isinstance(prompts, str) else list(prompts)
        batches = [items[i : i + batch_size] for i in range(0, len(items), batch_size)]
    total = torch.zeros(len(sites), model.dims.d_model, dtype=torch.float64)
    n = 0
    for batch in batches:
        run = model.run(batch, capture=sites)
        mask = run.tokens.mask.to(torch.float64)
        rows = torch.arange(mask.shape[0])
        for i, site in enumerate(sites):
            acts = run.cache[site].to(torch.float64).cpu()
            if position == "last":
                total[i] += acts[rows, run.tokens.last.cpu()].sum(0)
            else:
                m = mask.cpu()[..., None]
                total[i] += ((acts * m).sum(1) / m.sum(1)).sum(0)
        n += mask.shape[0]
    if n == 0:
        raise SteeringError("no prompts given for the steering vector")
    return (total / n).float(), n


def _hashable(inputs: Inputs) -> Any:
    return inputs.tolist() if isinstance(inputs, Tensor) else inputs


__all__ = [
    "check_finite",
    "happiness_vector",
    "steering_interventions",
    "steering_vector",
]
