"""Direct logit attribution: how much each component writes toward a logit (difference) directly.

Algorithm (Elhage et al. 2021, "A Mathematical Framework for Transformer Circuits"; Wang et al.
2022 for the logit-difference direction):

1. Run the prompts once, capturing the embedding, every ``attn_out``, ``mlp_out`` and per-head
   ``attn.z``, and the final residual, at each prompt's last token (or a chosen position).
2. The direction is the unembedding row of ``target`` (minus that of ``baseline``, if given).
3. The final norm is linearised by freezing its scale at the value it had on this run:
   RMSNorm ``f(c) = c · s · w`` with ``s = 1 / sqrt(mean(x²) + eps)`` of the final residual ``x``;
   Gemma's RMSNorm uses ``1 + w``; LayerNorm centres each component, ``f(c) = (c - mean c) · s · w``
   with ``s = 1 / sqrt(var(x) + eps)``, and its bias becomes its own component. Because the final
   residual is the sum of the components, the frozen-scale contributions add up to the logit
   (difference) exactly, up to float error; the result records that error per example.
4. Each component's contribution is ``f(component) · direction``. Per head, ``z_h`` goes through
   its slice of the output projection first (and, in Gemma 3, through the post-attention norm
   with its scale frozen the same way); head contributions plus the projection bias add up to the
   layer's ``attn_out`` contribution.

Frozen-scale attribution is *direct* effect only: it ignores what a component does through later
layers (use activation patching for total effects) and treats the norm scale as a constant.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from interplab.core.model import Model
from interplab.models.adapter import get_module, norm_eps, weight
from interplab.provenance import Provenance, data_hash, write_json
from interplab.stats import Summary, summarize

SUM_TOLERANCE = 1e-3
"""Contributions must add up to the actual logit (difference) within this, times (1 + |actual|)."""


@dataclass(frozen=True)
class DLAResult:
    """Per-example direct contributions of every component (and head) to a logit direction."""

    prompts: list[str]
    target: list[str]
    baseline: list[str] | None
    positions: list[int]
    labels: list[str]  # "embed", "L0.attn_out", "L0.mlp_out", ..., maybe "final_norm.bias"
    contributions: np.ndarray  # [n, component]
    heads: np.ndarray  # [n, layer, head]
    head_bias: np.ndarray  # [n, layer]: the output-projection bias's share of attn_out
    total: np.ndarray  # [n]: sum of contributions
    actual: np.ndarray  # [n]: the model's logit (difference)
    provenance: Provenance

    @property
    def n(self) -> int:
        return len(self.prompts)

    @property
    def error(self) -> np.ndarray:
        """Per example: |sum of contributions - actual logit (difference)|."""
        return np.abs(self.total - self.actual)

    def component(self, label: str) -> np.ndarray:
        """Returns the per-example contribution of one component, e.g. ``'L12.mlp_out'``."""
        if label not in self.labels:
            raise KeyError(f"no component {label!r}; components: {', '.join(self.labels)}")
        return self.contributions[:, self.labels.index(label)]

    def by_layer(self, kind: str) -> np.ndarray:
        """Returns ``[n, layer]`` contributions of ``kind`` in ('attn_out', 'mlp_out')."""
        cols = [i for i, label in enumerate(self.labels) if label.endswith("." + kind)]
        return self.contributions[:, cols]

    def summary(self, *, seed: int = 0) -> Summary:
        """Returns, per component, mean contribution with CI and n over prompts, a sign-flip test
        against 0, and Holm correction over all components."""
        return summarize(self.contributions, null=0.0, seed=seed)

    def head_summary(self, *, seed: int = 0) -> Summary:
        """Returns the same per head (``[layer, head]`` cells, corrected over all heads)."""
        return summarize(self.heads, null=0.0, seed=seed)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "technique": "direct_logit_attribution",
            "prompts": self.prompts,
            "target": self.target,
            "baseline": self.baseline,
            "positions": self.positions,
            "labels": self.labels,
            "contributions": self.contributions,
            "heads": self.heads,
            "head_bias": self.head_bias,
            "total": self.total,
            "actual": self.actual,
            "max_error": float(self.error.max()),
            "provenance": self.provenance.to_dict(),
        }
        if self.n >= 2:
            d["summary"] = self.summary().to_dict()
        return d

    def to_json(self, path: str | Path) -> Path:
        return write_json(path, self.to_dict())

    def figure(self) -> Any:
        from interplab.viz.figures import dla_figure

        return dla_figure(self)


def _linearised_norm(model: Model, x: Tensor) -> tuple[Any, Tensor | None]:
    """Returns (f, bias): f maps a component to its share of the final norm's output."""
    norm = get_module(model.hf, model.adapter.final_norm)
    eps = norm_eps(norm)
    w = weight(norm).float()
    bias = getattr(norm, "bias", None)
    kind = model.adapter.norm
    if kind == "layer":
        s = torch.rsqrt(x.var(-1, unbiased=False, keepdim=True) + eps)
        return (lambda c: (c - c.mean(-1, keepdim=True)) * s.unsqueeze(-2) * w), bias
    s = torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
    scale = 1.0 + w if kind == "rms_plus_one" else w
    return (lambda c: c * s.unsqueeze(-2) * scale), None


def _head_outputs(model: Model, z: Tensor, attn_out: Tensor, layer: int) -> tuple[Tensor, Tensor]:
    """Returns per-head writes ``[n, head, d_model]`` and the bias's write ``[n, d_model]``."""
    d = model.dims
    w_o = model.adapter.o_weight(model.hf, layer).float().view(d.d_model, d.n_heads, d.d_head)
    per_head = torch.einsum("nhd,mhd->nhm", z, w_o)
    b = model.adapter.o_bias(model.hf, layer)
    bias = b.float().expand_as(attn_out) if b is not None else torch.zeros_like(attn_out)
    if model.adapter.attn_out_norm is not None:
        post = get_module(model.adapter.block(model.hf, layer), model.adapter.attn_out_norm)
        pre = per_head.sum(1) + bias
        s = torch.rsqrt(pre.pow(2).mean(-1, keepdim=True) + norm_eps(post))
        scale = (
            (1.0 + weight(post).float())
            if model.adapter.norm == "rms_plus_one"
            else weight(post).float()
        )
        per_head = per_head * s.unsqueeze(1) * scale
        bias = bias * s * scale
    return per_head, bias


@torch.no_grad()
def direct_logit_attribution(
    model: Model,
    prompts: str | Sequence[str],
    *,
    target: str | Sequence[str],
    baseline: str | Sequence[str] | None = None,
    position: int = -1,
) -> DLAResult:
    """Returns each component's and head's direct contribution to ``target``'s logit (minus
    ``baseline``'s) at ``position`` (-1: each prompt's last token), per prompt. ``target`` and
    ``baseline`` are one token each, or one per prompt (IOI: each prompt's own names)."""
    prompt_list = [prompts] if isinstance(prompts, str) else list(prompts)
    targets = _per_prompt(target, len(prompt_list), "target")
    baselines = (
        _per_prompt(baseline, len(prompt_list), "baseline") if baseline is not None else None
    )
    t_ids = torch.tensor([model.token_id(t) for t in targets])
    b_ids = torch.tensor([model.token_id(b) for b in baselines]) if baselines is not None else None
    if b_ids is not None and bool((b_ids == t_ids).any()):
        i = int((b_ids == t_ids).nonzero()[0, 0])
        raise ValueError(f"prompt {i}: target and baseline are the same token {targets[i]!r}")
    softcap = getattr(model.hf.config, "final_logit_softcapping", None)
    if softcap is not None:
        raise ValueError(
            "this model soft-caps its logits (tanh), so no linear attribution adds up to them; "
            "direct logit attribution is defined for models without final logit soft-capping"
        )
    d = model.dims
    n_layers = d.n_layers
    sites = ["embed", f"L{n_layers - 1}.resid_post", "logits"]
    for i in range(n_layers):
        sites += [f"L{i}.attn_out", f"L{i}.mlp_out", f"L{i}.attn.z"]
    run = model.run(prompt_list, capture=sites)
    n = len(prompt_list)
    lengths = run.tokens.lengths.cpu()
    pos = torch.tensor(
        [int(length) + position if position < 0 else position for length in lengths],
        dtype=torch.long,
    )
    if bool(((pos < 0) | (pos >= lengths)).any()):
        raise ValueError(f"position {position} is outside some prompt (lengths {lengths.tolist()})")
    rows = torch.arange(n)

    def at(site: str) -> Tensor:
        return run.cache[site][rows, pos].float()

    unembed = get_module(model.hf, model.adapter.unembed)
    w_u = weight(unembed).float()
    direction = w_u[t_ids] - (w_u[b_ids] if b_ids is not None else 0.0)  # [n, d_model]
    labels = ["embed"]
    comps = [at("embed")]
    for i in range(n_layers):
        labels += [f"L{i}.attn_out", f"L{i}.mlp_out"]
        comps += [at(f"L{i}.attn_out"), at(f"L{i}.mlp_out")]
    stack = torch.stack(comps, 1)  # [n, component, d_model]
    x_final = at(f"L{n_layers - 1}.resid_post")
    f, norm_bias = _linearised_norm(model, x_final)
    contributions = torch.einsum("ncd,nd->nc", f(stack), direction)
    extra = []
    if norm_bias is not None:
        labels.append("final_norm.bias")
        extra.append(direction @ norm_bias.float())
    u_bias = getattr(unembed, "bias", None)
    if u_bias is not None:
        labels.append("unembed.bias")
        extra.append((u_bias[t_ids] - (u_bias[b_ids] if b_ids is not None else 0.0)).float())
    if extra:
        contributions = torch.cat([contributions, torch.stack(extra, 1)], 1)
    heads = torch.zeros(n, n_layers, d.n_heads)
    head_bias = torch.zeros(n, n_layers)
    for i in range(n_layers):
        per_head, bias = _head_outputs(model, at(f"L{i}.attn.z"), at(f"L{i}.attn_out"), i)
        heads[:, i] = torch.einsum("nhd,nd->nh", f(per_head), direction)
        head_bias[:, i] = torch.einsum("nd,nd->n", f(bias.unsqueeze(1)).squeeze(1), direction)
    logits = run.cache["logits"][rows, pos].float()
    actual = logits[rows, t_ids] - (logits[rows, b_ids] if b_ids is not None else 0.0)
    total = contributions.sum(1)
    prov = Provenance(
        technique="direct_logit_attribution",
        model=model.info.to_dict(),
        config={
            "target": targets,
            "baseline": baselines,
            "position": position,
            "norm": model.adapter.norm,
            "norm_scale": "frozen at its value on this run",
            "sum_tolerance": SUM_TOLERANCE,
        },
        data_sha256=data_hash(prompt_list),
    )
    return DLAResult(
        prompts=prompt_list,
        target=targets,
        baseline=baselines,
        positions=pos.tolist(),
        labels=labels,
        contributions=contributions.double().numpy(),
        heads=heads.double().numpy(),
        head_bias=head_bias.double().numpy(),
        total=total.double().numpy(),
        actual=actual.double().numpy(),
        provenance=prov,
    )


def _per_prompt(value: str | Sequence[str], n: int, name: str) -> list[str]:
    if isinstance(value, str):
        return [value] * n
    out = list(value)
    if len(out) != n:
        raise ValueError(
            f"{name} has {len(out)} entries for {n} prompts; give one, or one per prompt"
        )
    return out
