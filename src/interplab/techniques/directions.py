"""Directions in the residual stream: saved probe directions, and ablating a direction everywhere.

Directional ablation (Arditi et al. 2024, "Refusal in Language Models Is Mediated by a Single
Direction", §2.4 and §5):

1. Normalise the direction: ``d ← d / ||d||``.
2. At run time, replace every write into the residual stream, ``x ← x − (x · d) d``: the
   embedding (the input of block 0, token plus position embedding) and every layer's ``attn_out``
   and ``mlp_out``. The residual stream is the sum of those writes, so its component along ``d``
   is zero at every ``resid_pre``, ``resid_mid`` and ``resid_post``, and every reader (attention,
   MLP, the final norm) sees ``d``-free input. The paper hooks the residual itself before and
   after each block; ablating the writes is the same map and touches each tensor once.
3. Weight orthogonalisation bakes the same edit into a deep copy: every matrix that writes to the
   residual stream becomes ``W ← W − d dᵀ W`` (as ``[d_model, in]``; embedding rows
   ``E ← E − E d dᵀ``; biases ``b ← b − (b · d) d``). A tied unembedding is untied first, so the
   readout stays what it was; the original model is never modified.
4. Steps 2 and 3 compute the same function, so their logits agree to float tolerance, and
   `direction_components` measures what is left along ``d`` in every residual.
5. Baseline: `norm_matched_random_direction`, a seeded Gaussian direction with the same norm, so
   an ablation's effect can be read against what removing an arbitrary direction does.

Architectures with a norm between a block's output projection and the residual (Gemma 3's
post-attention and post-MLP norms) rescale each coordinate after the projection, so no weight
edit removes ``d``; orthogonalisation refuses them (run-time ablation still works).
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from dataclasses import replace as dc_replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from interplab.core.interventions import Apply
from interplab.core.model import Inputs, Model
from interplab.data import atomic_write
from interplab.errors import UserError
from interplab.models.adapter import get_module
from interplab.provenance import Provenance, data_hash, write_json
from interplab.stats import Summary, summarize

DirectionLike = Tensor | np.ndarray


class DirectionError(UserError):
    """A direction, file or model that directional ablation cannot use."""


# -- saved directions ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ProbeDirections:
    """Per-layer directions in raw activation coordinates: ``score = x · direction + bias``."""

    directions: np.ndarray  # [layer, d_model]
    biases: np.ndarray  # [layer]
    layers: tuple[int, ...]
    probe: str
    component: str
    position: str

    def direction(self, layer: int, *, unit: bool = True) -> np.ndarray:
        """Returns layer ``layer``'s direction ``[d_model]``, unit-normalised unless ``unit=False``."""
        if layer not in self.layers:
            raise DirectionError(f"no direction for layer {layer}; layers: {list(self.layers)}")
        d = self.directions[self.layers.index(layer)]
        return d / np.linalg.norm(d) if unit else d

    def save(self, path: str | Path, provenance: Provenance | None = None) -> Path:
        """Writes ``.safetensors`` (or ``.npz``) atomically and ``<stem>.json`` (config and
        provenance) beside it; returns the tensor file's path."""
        from safetensors.numpy import save as st_save

        target = Path(path)
        arrays = {
            "directions": np.ascontiguousarray(self.directions, dtype=np.float32),
            "biases": np.ascontiguousarray(self.biases, dtype=np.float32),
            "layers": np.asarray(self.layers, dtype=np.int64),
        }
        meta = {"probe": self.probe, "component": self.component, "position": self.position}
        if target.suffix == ".safetensors":
            blob = st_save(arrays, metadata=meta)
        elif target.suffix == ".npz":
            buffer = io.BytesIO()
            np.savez(buffer, **arrays, meta=np.asarray(json.dumps(meta)))
            blob = buffer.getvalue()
        else:
            raise DirectionError(f"save directions as .safetensors or .npz, not {target.name!r}")
        atomic_write(target, lambda handle: handle.write(blob))
        sidecar: dict[str, Any] = {**meta, "layers": list(self.layers), "file": target.name}
        if provenance is not None:
            sidecar["provenance"] = provenance.to_dict()
        write_json(target.with_suffix(".json"), sidecar)
        return target


def load_directions(path: str | Path) -> ProbeDirections:
    """Returns the directions `ProbeDirections.save` wrote (``.safetensors`` or ``.npz``)."""
    target = Path(path)
    if not target.is_file():
        raise DirectionError(
            f"{target}: no such file; save one with `interplab probe --save-directions`"
        )
    if target.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(target), framework="numpy") as f:
            arrays = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (not a dict)
            meta = dict(f.metadata() or {})
    elif target.suffix == ".npz":
        with np.load(target) as f:
            arrays = {k: f[k] for k in f.files}
        meta = json.loads(str(arrays.pop("meta", "{}")))
    else:
        raise DirectionError(f"expected a .safetensors or .npz file, got {target.name!r}")
    missing = {"directions", "biases", "layers"} - set(arrays)
    if missing:
        raise DirectionError(f"{target} holds no probe directions: missing {sorted(missing)}")
    return ProbeDirections(
        directions=arrays["directions"].astype(np.float32),
        biases=arrays["biases"].astype(np.float32),
        layers=tuple(int(x) for x in arrays["layers"]),
        probe=meta.get("probe", "unknown"),
        component=meta.get("component", "unknown"),
        position=meta.get("position", "unknown"),
    )


# -- ablation ------------------------------------------------------------------------------------


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


def ablation_interventions(model: Model, direction: DirectionLike) -> list[Apply]:
    """Returns interventions that project ``direction`` out of every write to the residual stream
    (the embedding, every attn_out and mlp_out), for `Model.run`, `generate` or `intervene`."""
    d = unit_direction(direction, model.dims.d_model).to(model.device, model.dtype)

    def project_out(x: Tensor) -> Tensor:
        return x - (x @ d)[..., None] * d

    sites = ["embed"]
    for layer in range(model.dims.n_layers):
        sites += [f"L{layer}.attn_out", f"L{layer}.mlp_out"]
    return [Apply(site, project_out) for site in sites]


@contextmanager
def ablate_direction(model: Model, direction: DirectionLike) -> Iterator[None]:
    """Removes ``direction`` from the residual stream of every forward inside the block."""
    with model.intervene(ablation_interventions(model, direction)):
        yield


@torch.no_grad()
def orthogonalized_model(model: Model, direction: DirectionLike) -> Model:
    """Returns a new Model on a deep copy of the weights with ``direction`` projected out of every
    matrix that writes to the residual stream (a tied unembedding is untied and kept)."""
    adapter = model.adapter
    if adapter.attn_out_norm is not None:
        raise DirectionError(
            f"{adapter.family} normalises attention and MLP outputs after their projections, so "
            "no weight edit removes a direction; use ablation_interventions at run time instead"
        )
    d = unit_direction(direction, model.dims.d_model)
    hf: Any = copy.deepcopy(model.hf)
    embed, unembed = hf.get_input_embeddings(), hf.get_output_embeddings()
    if unembed is not None and unembed.weight is embed.weight:
        unembed.weight = nn.Parameter(embed.weight.detach().clone())
        hf.config.tie_word_embeddings = False
    writers: list[tuple[Tensor, bool]] = [(embed.weight, True)]
    position = getattr(hf.base_model, "wpe", None)  # GPT-2's learned positions
    if isinstance(position, nn.Embedding):
        writers.append((position.weight, True))
    for layer in range(model.dims.n_layers):
        block = adapter.block(hf, layer)
        for path in (adapter.o_proj, adapter.mlp_post):
            module = get_module(block, path)
            writers.append((module.weight, adapter.o_weight_transposed))  # type: ignore[arg-type]
            bias = getattr(module, "bias", None)
            if isinstance(bias, Tensor):
                writers.append((bias, True))
    for w, rows in writers:
        w64, dd = w.double(), d.to(w.device)
        if w.ndim == 1:
            edited = w64 - (w64 @ dd) * dd
        elif rows:  # [.., d_model] rows: embeddings, Conv1D's [in, out]
            edited = w64 - torch.outer(w64 @ dd, dd)
        else:  # nn.Linear's [out = d_model, in]
            edited = w64 - torch.outer(dd, dd @ w64)
        w.copy_(edited.to(w.dtype))
    fingerprint = hashlib.sha256(
        (model.info.weights_sha256 + data_hash(d.tolist())).encode()
    ).hexdigest()
    info = dc_replace(
        model.info,
        name=f"{model.info.name} (direction orthogonalised)",
        source=f"{model.info.source}; weights orthogonalised against a direction",
        weights_sha256=fingerprint,
    )
    return Model(hf, model.tokenizer, adapter, info)


@torch.no_grad()
def direction_components(
    model: Model, inputs: Inputs, direction: DirectionLike, *, ablate: bool = False
) -> dict[str, Tensor]:
    """Returns ``x · d`` ``[batch, pos]`` for ``d`` unit at the embedding and every resid_pre,
    resid_mid (where the model has one) and resid_post; with ``ablate``, under the ablation."""
    d = unit_direction(direction, model.dims.d_model).to(model.device, model.dtype)
    parallel = model.adapter.mlp_in is None or model.adapter.parallel_residual(model.hf.config)
    kinds = ("resid_pre", "resid_post") if parallel else ("resid_pre", "resid_mid", "resid_post")
    sites = ["embed"] + [f"L{i}.{k}" for i in range(model.dims.n_layers) for k in kinds]
    ivs = ablation_interventions(model, direction) if ablate else []
    run = model.run(inputs, capture=sites, interventions=ivs)
    return {s: run.cache[s] @ d for s in sites}


# -- comparing a model with and without a direction ----------------------------------------------


@dataclass(frozen=True)
class AblationResult:
    """Per prompt: top next tokens and greedy continuations with and without the direction, the
    KL divergence the ablation causes at the last token, and the same for a norm-matched random
    direction (the baseline)."""

    prompts: list[str]
    direction: str
    baseline_top: list[list[tuple[str, float]]]
    ablated_top: list[list[tuple[str, float]]]
    random_top: list[list[tuple[str, float]]]
    baseline_text: list[str]
    ablated_text: list[str]
    random_text: list[str]
    kl: np.ndarray  # [n]: KL(baseline || ablated) of the next-token distribution, nats
    random_kl: np.ndarray  # [n]: KL(baseline || random-direction ablated)
    provenance: Provenance

    @property
    def n(self) -> int:
        return len(self.prompts)

    def summary(self, *, seed: int = 0) -> Summary:
        """Returns the mean KL of the direction's ablation minus the random direction's, paired
        over prompts, with CI, n and a sign-flip test against 0 (needs 2+ prompts)."""
        return summarize(self.kl, baseline=self.random_kl, seed=seed)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"technique": "directional_ablation", **self.__dict__}
        d["provenance"] = self.provenance.to_dict()
        if self.n >= 2:
            d["summary"] = self.summary().to_dict()
        return d

    def to_json(self, path: str | Path) -> Path:
        return write_json(path, self.to_dict())


@torch.no_grad()
def compare_ablation(
    model: Model,
    prompts: str | Sequence[str],
    direction: DirectionLike,
    *,
    label: str = "direction",
    k: int = 5,
    max_new_tokens: int = 20,
    seed: int = 0,
) -> AblationResult:
    """Returns top-k next tokens, greedy continuations and KL at the last token per prompt:
    baseline, with ``direction`` ablated, and with a norm-matched random direction ablated."""
    prompt_list = [prompts] if isinstance(prompts, str) else list(prompts)
    random = norm_matched_random_direction(unit_direction(direction, model.dims.d_model), seed)
    variants = {
        "baseline": [],
        "ablated": ablation_interventions(model, direction),
        "random": ablation_interventions(model, random),
    }
    tops: dict[str, list[list[tuple[str, float]]]] = {v: [] for v in variants}
    texts: dict[str, list[str]] = {v: [] for v in variants}
    logp: dict[str, list[Tensor]] = {v: [] for v in variants}
    for prompt in prompt_list:
        for name, ivs in variants.items():
            run = model.run(prompt, interventions=ivs)
            lp = run.logits[0, -1].double().log_softmax(-1)
            values, ids = lp.exp().topk(k)
            tops[name].append(
                [
                    (model.tokenizer.decode([int(i)]), float(v))
                    for v, i in zip(values, ids, strict=True)
                ]
            )
            logp[name].append(lp)
            gen = model.generate(prompt, max_new_tokens=max_new_tokens, interventions=ivs)
            texts[name].append(gen.texts[0])

    def kl(name: str) -> np.ndarray:
        return np.array(
            [
                float((b.exp() * (b - a)).sum())
                for b, a in zip(logp["baseline"], logp[name], strict=True)
            ]
        )

    prov = Provenance(
        technique="directional_ablation",
        model=model.info.to_dict(),
        config={
            "direction": label,
            "sites": "embed and every attn_out and mlp_out (x - (x.d) d, d unit)",
            "k": k,
            "max_new_tokens": max_new_tokens,
            "random_direction": f"norm-matched Gaussian, seed {seed}",
            "direction_sha256": data_hash(unit_direction(direction).tolist()),
        },
        data_sha256=data_hash(prompt_list),
        seed=seed,
    )
    return AblationResult(
        prompts=prompt_list,
        direction=label,
        baseline_top=tops["baseline"],
        ablated_top=tops["ablated"],
        random_top=tops["random"],
        baseline_text=texts["baseline"],
        ablated_text=texts["ablated"],
        random_text=texts["random"],
        kl=kl("ablated"),
        random_kl=kl("random"),
        provenance=prov,
    )


__all__ = [
    "AblationResult",
    "DirectionError",
    "DirectionLike",
    "ProbeDirections",
    "ablate_direction",
    "ablation_interventions",
    "compare_ablation",
    "direction_components",
    "load_directions",
    "norm_matched_random_direction",
    "orthogonalized_model",
    "unit_direction",
]
