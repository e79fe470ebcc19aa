"""Logit lens: what the model would predict if it stopped after each layer.

Algorithm (nostalgebraist, "interpreting GPT: the logit lens", 2020):

1. Run the prompts once, capturing the embedding and every layer's ``resid_post``.
2. Decode each captured residual with the model's own final norm and unembedding
   (`Model.unembed`, the model's modules themselves, so the last layer reproduces its logits).
3. Softmax over the vocabulary; keep per prompt × site × position the top-k tokens and the
   target token's probability and rank (rank 0 = the lens's top prediction).

Row 0 of the result is the embedding and row ``l + 1`` is ``L{l}.resid_post``: the result names
each row by its Site. Positions past a prompt's end (padding in a batch of unequal prompts) are
NaN / -1. The lens is a known-biased read-out of early layers (Belrose et al. 2023, "tuned
lens"); read early-layer values as "what the final decoder sees", not as what the layer "means".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from interplab.core.model import Model
from interplab.provenance import Provenance, data_hash
from interplab.results.lens import LensConfig, LensError, LensResult
from interplab.sites import Site
from interplab.store import recorded


@torch.no_grad()
@recorded("logit_lens", inputs="prompts")
def logit_lens(
    model: Model,
    prompts: str | Sequence[str],
    *,
    target: str | None = None,
    k: int = 5,
    config: LensConfig | None = None,
) -> LensResult:
    """Returns the logit lens of ``prompts``: top-k tokens per site × position, and the target's
    probability and rank (``target`` must be one token, e.g. ``' Paris'``). ``config`` replaces
    the keyword options."""
    cfg = config if config is not None else LensConfig(target=target, k=k)
    prompt_list = [prompts] if isinstance(prompts, str) else list(prompts)
    target_id = model.token_id(cfg.target) if cfg.target is not None else None
    sites = (Site(None, "embed"), *(Site(i, "resid_post") for i in range(model.dims.n_layers)))
    run = model.run(prompt_list, capture=list(sites))
    mask = run.tokens.mask.bool().cpu()
    n, pos = run.tokens.ids.shape
    rows, k = len(sites), cfg.k
    target_prob = np.full((n, rows, pos), np.nan, dtype=np.float64)
    target_rank = np.full((n, rows, pos), -1, dtype=np.int64)
    top_ids = np.zeros((n, rows, pos, k), dtype=np.int64)
    top_probs = np.zeros((n, rows, pos, k), dtype=np.float64)
    for r, site in enumerate(sites):
        logits = model.unembed(run.cache[site]).float()
        probs = logits.softmax(-1)
        tp, ti = probs.topk(k, dim=-1)
        top_ids[:, r] = ti.cpu().numpy()
        top_probs[:, r] = tp.cpu().numpy()
        if target_id is not None:
            t_logit = logits[..., target_id : target_id + 1]
            target_prob[:, r] = probs[..., target_id].cpu().numpy()
            target_rank[:, r] = (logits > t_logit).sum(-1).cpu().numpy()
    pad = np.broadcast_to(~mask.numpy()[:, None, :], target_prob.shape)
    target_prob[pad] = np.nan
    target_rank[pad] = -1
    lengths = mask.sum(1).numpy()
    decode = _decoder(model)
    tokens = [[decode(int(t)) for t in run.tokens.ids[b, : lengths[b]]] for b in range(n)]
    top_tokens = [
        [
            [[decode(int(t)) for t in top_ids[b, r, p]] for p in range(int(lengths[b]))]
            for r in range(rows)
        ]
        for b in range(n)
    ]
    return LensResult(
        prompts=prompt_list,
        tokens=tokens,
        sites=sites,
        target=cfg.target,
        target_id=target_id,
        d_vocab=model.dims.d_vocab,
        target_prob=target_prob,
        target_rank=target_rank,
        top_ids=top_ids,
        top_tokens=top_tokens,
        top_probs=top_probs,
        lengths=lengths,
        provenance=Provenance(
            technique="logit_lens",
            model=model.info.to_dict(),
            config=cfg.to_dict(),
            data_sha256=data_hash(prompt_list),
        ),
    )


def _decoder(model: Model) -> Callable[[int], str]:
    """Returns ``decode(token_id) -> str``, remembering each token it has decoded."""
    seen: dict[int, str] = {}

    def decode(i: int) -> str:
        if i not in seen:
            seen[i] = model.tokenizer.decode([i])
        return seen[i]

    return decode


__all__ = ["LensConfig", "LensError", "LensResult", "logit_lens"]
