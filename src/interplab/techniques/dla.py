"""Direct logit attribution: how much each component writes toward a logit (difference) directly.

Algorithm (Elhage et al. 2021, "A Mathematical Framework for Transformer Circuits"; Wang et al.
2022 for the logit-difference direction):

1. Run the prompts once, capturing the embedding, every ``attn_out``, ``mlp_out`` and per-head
   ``attn.z``, the final residual and the logits, at each prompt's last token (or a chosen
   position, resolved per row whatever the padding).
2. The direction is the unembedding column of ``target`` (minus that of ``baseline``, if given),
   read from ``model.weights.W_U``.
3. The final norm (``model.weights.final_norm``) is linearised by freezing its scale at the value
   it had on this run: RMSNorm ``f(c) = c · s · w`` with ``s = 1 / sqrt(mean(x²) + eps)`` of the
   final residual ``x``; Gemma's RMSNorm uses ``1 + w``; LayerNorm centres each component,
   ``f(c) = (c - mean c) · s · w`` with ``s = 1 / sqrt(var(x) + eps)``, and its bias becomes its
   own component (the ``final_norm`` site), as does the unembedding's bias (``logits``). Because
   the final residual is the sum of the components, the frozen-scale contributions add up to the
   logit (difference) exactly, up to float error; the result records that error per example.
4. Each component's contribution is ``f(component) · direction``. Per head, ``z_h`` goes through
   its slice of the output projection ``W_O(l)`` first (and, in Gemma 3, through the
   post-attention norm with its scale frozen the same way); head contributions plus the
   projection bias add up to the layer's ``attn_out`` contribution.

Frozen-scale attribution is *direct* effect only: it ignores what a component does through later
layers (use activation patching for total effects) and treats the norm scale as a constant. A
model that transforms its logits after the unembedding (tanh soft-capping) has no linear
attribution that adds up; step 1's logits are checked against ``model.unembed`` to refuse it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from interplab.core.model import Model
from interplab.core.weights import Norm
from interplab.provenance import Provenance, data_hash
from interplab.results.dla import SUM_TOLERANCE, DLACell, DLAConfig, DLAError, DLAResult
from interplab.sites import Site
from interplab.store import recorded

UNEMBED_TOLERANCE = 1e-2
"""Logits may differ from final norm + unembedding by this, times (1 + max |logit|), before the
model counts as transforming its logits (soft-capping moves large logits by whole units)."""


@torch.no_grad()
@recorded("direct_logit_attribution", inputs="prompts")
def direct_logit_attribution(
    model: Model,
    prompts: str | Sequence[str],
    *,
    target: str | Sequence[str] | None = None,
    baseline: str | Sequence[str] | None = None,
    position: int = -1,
    config: DLAConfig | None = None,
) -> DLAResult:
    """Returns each component's and head's direct contribution to ``target``'s logit (minus
    ``baseline``'s) at ``position`` (-1: each prompt's last token), per prompt. ``target`` and
    ``baseline`` are one token each, or one per prompt (IOI: each prompt's own names);
    ``config`` replaces the keyword options."""
    cfg = config if config is not None else _config(target, baseline, position)
    prompt_list = [prompts] if isinstance(prompts, str) else list(prompts)
    n, n_layers = len(prompt_list), model.dims.n_layers
    targets = _per_prompt(cfg.target, n, "target")
    baselines = _per_prompt(cfg.baseline, n, "baseline") if cfg.baseline is not None else None
    t_ids = torch.tensor([model.token_id(t) for t in targets])
    b_ids = torch.tensor([model.token_id(b) for b in baselines]) if baselines is not None else None
    if b_ids is not None and bool((b_ids == t_ids).any()):
        i = int((b_ids == t_ids).nonzero()[0, 0])
        raise DLAError(f"prompt {i}: target and baseline are the same token {targets[i]!r}")

    # 1. One run, captured at each prompt's position.
    final_site = Site(n_layers - 1, "resid_post")
    layer_sites = [Site(i, c) for i in range(n_layers) for c in ("attn_out", "mlp_out", "attn.z")]
    run = model.run(prompt_list, capture=[Site(None, "embed"), final_site, *layer_sites])
    pos = run.tokens.index(cfg.position)

    def at(site: Site) -> Tensor:
        return run.at(site, cfg.position).float()

    x_final = at(final_site)
    logits = run.at(None, cfg.position).float()
    _check_linear_logits(model, x_final, logits)

    # 2. The direction, and 3. the final norm with its scale frozen.
    w = model.weights
    t_cols, b_cols = t_ids.to(logits.device), None if b_ids is None else b_ids.to(logits.device)
    direction = w.W_U[:, t_cols].T.float()  # [n, d_model]
    if b_cols is not None:
        direction = direction - w.W_U[:, b_cols].T.float()
    f = _frozen(w.final_norm, x_final)

    # 4. Components (embedding, attn_out, mlp_out per layer), biases, heads.
    sites = [Site(None, "embed")] + [
        Site(i, c) for i in range(n_layers) for c in ("attn_out", "mlp_out")
    ]
    stack = torch.stack([at(s) for s in sites], 1)  # [n, component, d_model]
    contributions = torch.einsum("ncd,nd->nc", f(stack), direction)
    extra = []
    norm_bias = w.final_norm.bias
    if w.final_norm.kind == "layer" and norm_bias is not None:
        sites.append(Site(None, "final_norm"))
        extra.append(direction @ norm_bias.float())
    if w.b_U is not None:
        sites.append(Site(None, "logits"))
        b_u = w.b_U.float()
        extra.append(b_u[t_cols] - (b_u[b_cols] if b_cols is not None else 0.0))
    if extra:
        contributions = torch.cat([contributions, torch.stack(extra, 1)], 1)
    heads = direction.new_zeros(n, n_layers, model.dims.n_heads)
    head_bias = direction.new_zeros(n, n_layers)
    for i in range(n_layers):
        per_head, bias = _head_outputs(model, at(Site(i, "attn.z")), at(Site(i, "attn_out")), i)
        heads[:, i] = torch.einsum("nhd,nd->nh", f(per_head), direction)
        head_bias[:, i] = torch.einsum("nd,nd->n", f(bias.unsqueeze(1)).squeeze(1), direction)
    rows = torch.arange(n, device=logits.device)
    actual = logits[rows, t_cols] - (logits[rows, b_cols] if b_cols is not None else 0.0)
    return DLAResult(
        prompts=prompt_list,
        target=targets,
        baseline=baselines,
        positions=pos.tolist(),
        sites=tuple(sites),
        contributions=contributions.double().cpu().numpy(),
        heads=heads.double().cpu().numpy(),
        head_bias=head_bias.double().cpu().numpy(),
        total=contributions.sum(1).double().cpu().numpy(),
        actual=actual.double().cpu().numpy(),
        norm=w.final_norm.kind,
        provenance=Provenance(
            technique="direct_logit_attribution",
            model=model.info.to_dict(),
            config=cfg.to_dict(),
            data_sha256=data_hash(prompt_list),
        ),
    )


def _frozen(norm: Norm, x: Tensor) -> Callable[[Tensor], Tensor]:
    """Returns f: a component ``[n, c, d]`` to its share of ``norm``'s output on residual ``x``
    ``[n, d]``, with the norm's scale frozen at its value on ``x`` (its bias left out)."""
    scale = _scale_weight(norm)
    if norm.kind == "layer":
        s = torch.rsqrt(x.var(-1, unbiased=False, keepdim=True) + norm.eps)
        return lambda c: (c - c.mean(-1, keepdim=True)) * s.unsqueeze(-2) * scale
    s = torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + norm.eps)
    return lambda c: c * s.unsqueeze(-2) * scale


def _scale_weight(norm: Norm) -> Tensor:
    """Returns the norm's effective weight in float32 (Gemma's ``1 + w`` added in float32, as HF
    computes it, rather than in the weight's own dtype)."""
    return dataclasses.replace(norm, weight=norm.weight.float()).scale_weight


def _head_outputs(model: Model, z: Tensor, attn_out: Tensor, layer: int) -> tuple[Tensor, Tensor]:
    """Returns per-head writes ``[n, head, d_model]`` and the bias's write ``[n, d_model]``."""
    w = model.weights
    per_head = torch.einsum("nhd,hdm->nhm", z, w.W_O(layer).float())
    b = w.b_O(layer)
    bias = b.float().expand_as(attn_out) if b is not None else torch.zeros_like(attn_out)
    post = w.attn_out_norm(layer)
    if post is not None:
        pre = per_head.sum(1) + bias
        s = torch.rsqrt(pre.pow(2).mean(-1, keepdim=True) + post.eps)
        scale = _scale_weight(post)
        per_head = per_head * s.unsqueeze(1) * scale
        bias = bias * s * scale
    return per_head, bias


def _check_linear_logits(model: Model, x_final: Tensor, logits: Tensor) -> None:
    """Raises DLAError if the logits are not the final norm and unembedding of the final
    residual (a model that soft-caps its logits): no linear attribution adds up to them."""
    expected = model.unembed(x_final.to(model.dtype)).float()
    gap = float((expected - logits).abs().max())
    if gap > UNEMBED_TOLERANCE * (1.0 + float(logits.abs().max())):
        raise DLAError(
            "this model transforms its logits after the unembedding (e.g. tanh soft-capping: "
            f"they differ from final norm + unembedding by {gap:.3g}), so no linear attribution "
            "adds up to them; direct logit attribution is defined for models without it"
        )


def _config(
    target: str | Sequence[str] | None, baseline: str | Sequence[str] | None, position: int
) -> DLAConfig:
    if target is None:
        raise DLAError("give target= (one token such as ' Mary', or one per prompt)")

    def tup(v: str | Sequence[str]) -> str | tuple[str, ...]:
        return v if isinstance(v, str) else tuple(v)

    return DLAConfig(
        target=tup(target), baseline=None if baseline is None else tup(baseline), position=position
    )


def _per_prompt(value: str | tuple[str, ...], n: int, name: str) -> list[str]:
    if isinstance(value, str):
        return [value] * n
    if len(value) != n:
        raise DLAError(
            f"{name} has {len(value)} entries for {n} prompts; give one, or one per prompt"
        )
    return list(value)


__all__ = [
    "SUM_TOLERANCE",
    "DLACell",
    "DLAConfig",
    "DLAError",
    "DLAResult",
    "direct_logit_attribution",
]
