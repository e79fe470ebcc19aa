"""Directions in the residual stream: ablating a direction everywhere, and what that does.

Directional ablation (Arditi et al. 2024, "Refusal in Language Models Is Mediated by a Single
Direction", §2.4 and §5):

1. Normalise the direction: ``d ← d / ||d||``.
2. At run time, replace every write into the residual stream, ``x ← x − (x · d) d``: the
   embedding (the input of block 0, token plus position embedding) and every layer's ``attn_out``
   and ``mlp_out``. The residual stream is the sum of those writes, so its component along ``d``
   is zero at every ``resid_pre``, ``resid_mid`` and ``resid_post``, and every reader (attention,
   MLP, the final norm) sees ``d``-free input. The paper hooks the residual itself before and
   after each block; ablating the writes is the same map and touches each tensor once.
3. Weight orthogonalisation bakes the same edit into a copy of the weights
   (`interplab.core.edits.orthogonalize`): every matrix that writes to the residual stream
   becomes ``W ← W − d dᵀ W``; a tied unembedding is untied first, so the readout stays what it
   was; the original model is never modified.
4. Steps 2 and 3 compute the same function, so their logits agree to float tolerance, and
   `direction_components` measures what is left along ``d`` in every residual.
5. Baseline (`compare_ablation`): ``n_random`` (20 by default) seeded Gaussian directions of the
   same norm are ablated the same way, in one batch per prompt (each row its own direction). The
   KL divergence one random direction causes varies tens of times across seeds, so one draw is
   no baseline; the result reports where the real direction's KL falls in their distribution
   (rank, percentile, permutation p-value) and the paired difference to their mean.

Architectures with a norm between a block's output projection and the residual (Gemma 3's
post-attention and post-MLP norms) rescale each coordinate after the projection, so no weight
edit removes ``d``; orthogonalisation refuses them (run-time ablation still works).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import torch
from torch import Tensor

from interplab.core.edits import EditError, orthogonalize
from interplab.core.interventions import Apply
from interplab.core.model import Inputs, Model
from interplab.provenance import Provenance, data_hash
from interplab.results.directions import (
    AblationConfig,
    AblationResult,
    DirectionError,
    ProbeDirections,
    RandomStanding,
    TopTokens,
    load_directions,
)
from interplab.sites import Site
from interplab.store import recorded

DirectionLike = Tensor | np.ndarray


def unit_direction(direction: DirectionLike, d_model: int | None = None) -> Tensor:
    """Returns ``direction / ||direction||`` as a float64 tensor ``[d_model]``."""
    d = torch.as_tensor(np.asarray(direction) if isinstance(direction, np.ndarray) else direction)
    d = d.detach().double().cpu().flatten()
    if d_model is not None and d.numel() != d_model:
        raise DirectionError(f"direction has {d.numel()} entries; the model's d_model is {d_model}")
    norm = float(d.norm())
    if not np.isfinite(norm) or norm == 0.0:
        raise DirectionError("the direction is zero or not finite; nothing to ablate")
    return d / norm


def norm_matched_random_direction(direction: DirectionLike, seed: int = 0) -> Tensor:
    """Returns a seeded Gaussian direction with the same norm, dtype and device as ``direction``."""
    d = torch.as_tensor(direction)
    g = torch.Generator().manual_seed(seed)
    r = torch.randn(d.shape, generator=g, dtype=torch.float64)
    return (r * (d.double().norm().cpu() / r.norm())).to(dtype=d.dtype, device=d.device)


def norm_matched_random_directions(direction: DirectionLike, n: int, seed: int = 0) -> Tensor:
    """Returns ``[n, d_model]`` seeded Gaussian directions, each with ``direction``'s norm."""
    d = torch.as_tensor(direction).detach().double().cpu().flatten()
    g = torch.Generator().manual_seed(seed)
    r = torch.randn((n, d.numel()), generator=g, dtype=torch.float64)
    return r * (d.norm() / r.norm(dim=-1, keepdim=True))


def ablation_interventions(model: Model, direction: DirectionLike) -> list[Apply]:
    """Returns interventions that project ``direction`` out of every write to the residual stream
    (the embedding, every attn_out and mlp_out), for `Model.run`, `generate` or `intervene`."""
    d = unit_direction(direction, model.dims.d_model).to(model.device, model.dtype)

    def project_out(x: Tensor) -> Tensor:
        return x - (x @ d)[..., None] * d

    return [Apply(site, project_out) for site in _writers(model)]


def _row_ablation_interventions(model: Model, directions: Tensor) -> list[Apply]:
    """Returns interventions that project ``directions[b]`` (``[batch, d_model]``) out of row b's
    residual writes: one batch ablates a different direction in every row."""
    u = directions.double()
    u = (u / u.norm(dim=-1, keepdim=True)).to(model.device, model.dtype)[:, None, :]

    def project_out(x: Tensor) -> Tensor:
        return x - (x * u).sum(-1, keepdim=True) * u

    return [Apply(site, project_out) for site in _writers(model)]


def _writers(model: Model) -> list[Site]:
    """Returns the sites that write into the residual stream: embed, every attn_out and mlp_out."""
    sites = [Site(None, "embed")]
    for layer in range(model.dims.n_layers):
        sites += [Site(layer, "attn_out"), Site(layer, "mlp_out")]
    return sites


@contextmanager
def ablate_direction(model: Model, direction: DirectionLike) -> Iterator[None]:
    """Removes ``direction`` from the residual stream of every forward inside the block."""
    with model.intervene(ablation_interventions(model, direction)):
        yield


def orthogonalized_model(model: Model, direction: DirectionLike) -> Model:
    """Returns a new Model on a copy of the weights with ``direction`` projected out of every
    matrix that writes to the residual stream (a tied unembedding is untied and kept)."""
    d = unit_direction(direction, model.dims.d_model)
    try:
        return orthogonalize(model, d)
    except EditError as e:
        raise DirectionError(str(e)) from None


@torch.no_grad()
def direction_components(
    model: Model, inputs: Inputs, direction: DirectionLike, *, ablate: bool = False
) -> dict[Site, Tensor]:
    """Returns ``x · d`` ``[batch, pos]`` for ``d`` unit at the embedding and every resid_pre,
    resid_mid (where the model has one) and resid_post; with ``ablate``, under the ablation."""
    d = unit_direction(direction, model.dims.d_model).to(model.device, model.dtype)
    kinds = (
        ("resid_pre", "resid_post")
        if model.parallel_residual
        else ("resid_pre", "resid_mid", "resid_post")
    )
    sites = [Site(None, "embed")] + [
        Site(i, k)
        for i in range(model.dims.n_layers)
        for k in kinds  # type: ignore[arg-type]
    ]
    ivs = ablation_interventions(model, direction) if ablate else []
    run = model.run(inputs, capture=sites, interventions=ivs)
    return {s: run.cache[s] @ d for s in sites}


@torch.no_grad()
@recorded("directional_ablation", inputs="prompts")
def compare_ablation(
    model: Model,
    prompts: str | Sequence[str],
    direction: DirectionLike,
    *,
    label: str = "direction",
    k: int = 5,
    max_new_tokens: int = 20,
    n_random: int = 20,
    seed: int = 0,
    config: AblationConfig | None = None,
) -> AblationResult:
    """Returns top-k next tokens, greedy continuations and KL at the last token per prompt:
    baseline, with ``direction`` ablated, and with each of ``n_random`` norm-matched random
    directions ablated (texts for the first of them). ``config`` replaces the keyword options."""
    cfg = config or AblationConfig(k=k, max_new_tokens=max_new_tokens, n_random=n_random, seed=seed)
    prompt_list = [prompts] if isinstance(prompts, str) else list(prompts)
    unit = unit_direction(direction, model.dims.d_model)
    randoms = norm_matched_random_directions(unit, cfg.n_random, cfg.seed)
    variants = {
        "baseline": [],
        "ablated": ablation_interventions(model, unit),
        "random": ablation_interventions(model, randoms[0]),
    }
    tops: dict[str, TopTokens] = {v: [] for v in variants}
    texts: dict[str, list[str]] = {v: [] for v in variants}
    logp: dict[str, list[Tensor]] = {v: [] for v in variants}
    random_kl = np.empty((len(prompt_list), cfg.n_random))
    for i, prompt in enumerate(prompt_list):
        for name, ivs in variants.items():
            lp = model.run(prompt, interventions=ivs).logits[0, -1].double().log_softmax(-1)
            tops[name].append(_top(model, lp, cfg.k))
            logp[name].append(lp)
            gen = model.generate(prompt, max_new_tokens=cfg.max_new_tokens, interventions=ivs)
            texts[name].append(gen.texts[0])
        rows = model.run(
            [prompt] * cfg.n_random, interventions=_row_ablation_interventions(model, randoms)
        )
        random_lp = rows.logits[:, -1].double().log_softmax(-1)
        random_kl[i] = _kl(logp["baseline"][i][None], random_lp).cpu().numpy()
    kl = np.array(
        [float(_kl(b, a)) for b, a in zip(logp["baseline"], logp["ablated"], strict=True)]
    )
    prov = Provenance(
        technique="directional_ablation",
        model=model.info.to_dict(),
        config=cfg.to_dict(),
        data_sha256=data_hash(prompt_list),
        seed=cfg.seed,
    )
    return AblationResult(
        prompts=prompt_list,
        direction=label,
        direction_sha256=data_hash(unit.tolist()),
        baseline_top=tops["baseline"],
        ablated_top=tops["ablated"],
        random_top=tops["random"],
        baseline_text=texts["baseline"],
        ablated_text=texts["ablated"],
        random_text=texts["random"],
        kl=kl,
        random_kl=random_kl,
        provenance=prov,
    )


def _top(model: Model, logp: Tensor, k: int) -> list[tuple[str, float]]:
    values, ids = logp.exp().topk(k)
    decode: Callable[[list[int]], str] = model.tokenizer.decode
    return [(decode([int(i)]), float(v)) for v, i in zip(values, ids, strict=True)]


def _kl(base: Tensor, other: Tensor) -> Tensor:
    """Returns KL(base || other) over the last axis of log-probabilities."""
    return (base.exp() * (base - other)).sum(-1)


__all__ = [
    "AblationConfig",
    "AblationResult",
    "DirectionError",
    "DirectionLike",
    "ProbeDirections",
    "RandomStanding",
    "ablate_direction",
    "ablation_interventions",
    "compare_ablation",
    "direction_components",
    "load_directions",
    "norm_matched_random_direction",
    "norm_matched_random_directions",
    "orthogonalized_model",
    "unit_direction",
]
