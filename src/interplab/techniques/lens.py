"""Logit lens: what the model would predict if it stopped after each layer.

Algorithm (nostalgebraist, "interpreting GPT: the logit lens", 2020):

1. Run the prompts once, capturing the embedding and every layer's ``resid_post``.
2. Decode each captured residual with the model's own final norm and unembedding modules (the HF
   modules themselves, so the last layer reproduces the model's logits exactly).
3. Softmax over the vocabulary; keep per prompt × layer × position the top-k tokens and the
   target token's probability and rank (rank 0 = the model's top prediction).

Positions past a prompt's end (padding in a batch of unequal prompts) are NaN / -1. The lens is
a known-biased read-out of early layers (Belrose et al. 2023, "tuned lens"); read early-layer
values as "what the final decoder sees", not as what the layer "means".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from interplab.core.model import Model
from interplab.models.adapter import get_module
from interplab.provenance import Provenance, data_hash, write_json
from interplab.stats import Summary, summarize


@dataclass(frozen=True)
class LensResult:
    """Logit-lens read-outs, per prompt × layer × position (layer 0 is the embedding)."""

    prompts: list[str]
    tokens: list[list[str]]
    layers: list[str]
    target: str | None
    target_id: int | None
    target_prob: np.ndarray  # [n, layer, pos], NaN where a prompt has no token
    target_rank: np.ndarray  # [n, layer, pos], -1 where a prompt has no token
    top_ids: np.ndarray  # [n, layer, pos, k]
    top_tokens: list[list[list[list[str]]]]  # [n][layer][pos][k]
    top_probs: np.ndarray  # [n, layer, pos, k]
    lengths: np.ndarray  # [n]
    provenance: Provenance

    @property
    def n(self) -> int:
        return len(self.prompts)

    def at_last(self, values: np.ndarray) -> np.ndarray:
        """Returns ``values[n, layer, pos, ...]`` at each prompt's last token: ``[n, layer, ...]``."""
        return values[np.arange(self.n), :, self.lengths - 1]

    def first_layer_top1(self) -> list[int | None]:
        """Returns, per prompt, the first layer index whose top-1 at the last token is the target."""
        if self.target_id is None:
            raise ValueError("this lens has no target")
        ranks = self.at_last(self.target_rank)
        out: list[int | None] = []
        for row in ranks:
            hits = np.flatnonzero(row == 0)
            out.append(int(hits[0]) if hits.size else None)
        return out

    def summary(self, *, seed: int = 0) -> Summary:
        """Returns, per layer, the target's probability at the last token: mean, CI and n over
        prompts, tested against uniform chance (1 / vocab) with Holm correction over layers."""
        if self.target_id is None:
            raise ValueError("summary needs a target: run logit_lens(..., target=' Paris')")
        vocab = int(self.provenance.config["d_vocab"])
        return summarize(self.at_last(self.target_prob), null=1.0 / vocab, seed=seed)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "technique": "logit_lens",
            "prompts": self.prompts,
            "tokens": self.tokens,
            "layers": self.layers,
            "target": self.target,
            "target_id": self.target_id,
            "lengths": self.lengths,
            "target_prob": self.target_prob,
            "target_rank": self.target_rank,
            "top_tokens": self.top_tokens,
            "top_probs": self.top_probs,
            "provenance": self.provenance.to_dict(),
        }
        if self.target_id is not None and self.n >= 2:
            d["summary"] = self.summary().to_dict()
        return d

    def to_json(self, path: str | Path) -> Path:
        return write_json(path, self.to_dict())

    def figure(self, example: int = 0) -> Any:
        from interplab.viz.figures import lens_figure

        return lens_figure(self, example)


@torch.no_grad()
def logit_lens(
    model: Model,
    prompts: str | Sequence[str],
    *,
    target: str | None = None,
    k: int = 5,
) -> LensResult:
    """Returns the logit lens of ``prompts``: top-k tokens per layer × position, and the target's
    probability and rank (``target`` must be one token, e.g. ``' Paris'``)."""
    prompt_list = [prompts] if isinstance(prompts, str) else list(prompts)
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    target_id = model.token_id(target) if target is not None else None
    d = model.dims
    sites = ["embed"] + [f"L{i}.resid_post" for i in range(d.n_layers)]
    run = model.run(prompt_list, capture=sites)
    mask = run.tokens.mask.bool().cpu()
    norm = get_module(model.hf, model.adapter.final_norm)
    unembed = get_module(model.hf, model.adapter.unembed)
    n, pos = run.tokens.ids.shape
    layers = len(sites)
    target_prob = np.full((n, layers, pos), np.nan, dtype=np.float64)
    target_rank = np.full((n, layers, pos), -1, dtype=np.int64)
    top_ids = np.zeros((n, layers, pos, k), dtype=np.int64)
    top_probs = np.zeros((n, layers, pos, k), dtype=np.float64)
    for li, site in enumerate(sites):
        logits = unembed(norm(run.cache[site])).float()
        probs = logits.softmax(-1)
        tp, ti = probs.topk(k, dim=-1)
        top_ids[:, li] = ti.cpu().numpy()
        top_probs[:, li] = tp.cpu().numpy()
        if target_id is not None:
            t_logit = logits[..., target_id : target_id + 1]
            target_prob[:, li] = probs[..., target_id].cpu().numpy()
            target_rank[:, li] = (logits > t_logit).sum(-1).cpu().numpy()
    pad = ~mask.numpy()
    target_prob[:, :, :][np.broadcast_to(pad[:, None, :], target_prob.shape)] = np.nan
    target_rank[np.broadcast_to(pad[:, None, :], target_rank.shape)] = -1
    decode = model.tokenizer.decode
    vocab_cache: dict[int, str] = {}

    def tok(i: int) -> str:
        if i not in vocab_cache:
            vocab_cache[i] = decode([i])
        return vocab_cache[i]

    lengths = mask.sum(1).numpy()
    tokens = [[tok(int(t)) for t in run.tokens.ids[b, : lengths[b]]] for b in range(n)]
    top_tokens = [
        [
            [[tok(int(t)) for t in top_ids[b, li, p]] for p in range(int(lengths[b]))]
            for li in range(layers)
        ]
        for b in range(n)
    ]
    prov = Provenance(
        technique="logit_lens",
        model=model.info.to_dict(),
        config={"target": target, "k": k, "d_vocab": d.d_vocab, "decoder": "final_norm + unembed"},
        data_sha256=data_hash(prompt_list),
    )
    return LensResult(
        prompts=prompt_list,
        tokens=tokens,
        layers=["embed"] + [f"L{i}" for i in range(d.n_layers)],
        target=target,
        target_id=target_id,
        target_prob=target_prob,
        target_rank=target_rank,
        top_ids=top_ids,
        top_tokens=top_tokens,
        top_probs=top_probs,
        lengths=lengths,
        provenance=prov,
    )
