"""Controls for patching: the same sweep on unrelated prompts.

A cell that moves the metric when patched on IOI prompts may matter for IOI, or may matter on every
input: MLP0 rewrites every token's embedding, the last layers write every prediction. A sweep alone
cannot tell these apart; the same sweep on prompts unrelated to the task can (the "control task"
logic of Hewitt & Liang 2019 applied to patching; Heimersheim & Nanda 2024 discuss why patching
effects need such baselines). `activation_patching` and `attribution_patching` run it by default
(``control=False`` skips it):

1. *Control prompts*: one window of news text per task pair (the Lee corpus shipped with gensim,
   real prose that names no task entity), exactly as many tokens as the task prompt, drawn with
   the seed. When every task prompt starts with the same special token (a BOS), so does every
   control. A model without a tokenizer gets random token ids instead.
2. *Control corruption*: control pair i changes exactly the positions where task pair i's clean
   and corrupt prompts differ, taking the tokens at those positions from another control window;
   the control perturbs as many tokens, at the same places, as the task.
3. *Control answers*: the clean control prompt's most likely next token is the answer; the
   corrupt control prompt's most likely next token is the wrong answer. Of `CANDIDATES` windows
   tried per pair, the first whose corruption changes the model's top prediction is kept, so the
   logit difference is positive on the clean control and negative on the corrupt one, as on the
   task (when no candidate changes it, the first is kept, with the clean prompt's second choice as
   the wrong answer).
4. The control runs the identical sweep: the same config, with ``control=False``.
5. `interplab.results.patching.ControlComparison` puts the two side by side in units of
   each set's own gap and marks task-specific and general cells (``result.control_comparison()``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch
from torch import Tensor

from interplab.core.model import Model
from interplab.results.patching import ControlComparison, PatchingError, compare_control, gap
from interplab.techniques.patching.grid import TokenPairs

CANDIDATES = 8
"""Control windows tried per task pair, so that most control pairs change the model's prediction."""


def control_pairs(model: Model, like: TokenPairs, seed: int = 0) -> TokenPairs:
    """Returns control pairs shaped like ``like``: unrelated text, corrupted at the same positions,
    with answers the model itself predicts (steps 1-3 of the module docstring)."""
    n, length = like.clean.shape
    g = torch.Generator().manual_seed(seed)
    windows = _windows(model, n * CANDIDATES + 1, length, g)
    k = (windows.shape[0] - 1) // n  # candidates per pair (fewer when the corpus is short)
    first = like.clean[:, 0]
    special = set() if model.tokenizer is None else set(model.tokenizer.all_special_ids)
    if bool((first == first[0]).all()) and int(first[0]) in special:
        windows[:, 0] = first[0]
    # Candidate c of pair i is window i*k + c, corrupted with the tokens of the next window.
    index = torch.arange(n * k)
    clean = windows[index].view(n, k, length)
    donor = windows[index + 1].view(n, k, length)
    differs = (like.clean != like.corrupt)[:, None].expand(n, k, length)
    if like.mask is not None:
        keep = like.mask.bool()[:, None].expand(n, k, length)
        clean = torch.where(keep, clean, like.clean[:, None])
        differs = differs & keep
    corrupt = torch.where(differs, donor, clean)
    still_same = (corrupt == clean) & differs  # the donor had the same token there
    corrupt[still_same] = (corrupt[still_same] + 1) % model.dims.d_vocab
    top_clean, top_corrupt = _top2(model, clean, corrupt, like, k)
    # The first candidate whose corruption changes the model's top prediction (else the first).
    changed = top_clean[..., 0] != top_corrupt
    pick = torch.where(changed.any(1), changed.float().argmax(1), 0)
    rows = torch.arange(n)
    answer = top_clean[rows, pick, 0]
    wrong = top_corrupt[rows, pick]
    wrong = torch.where(wrong == answer, top_clean[rows, pick, 1], wrong)
    return TokenPairs(clean[rows, pick], corrupt[rows, pick], answer, wrong, like.mask)


def run_control(technique: Any, model: Model, like: TokenPairs, config: Any, **options: Any) -> Any:
    """Returns ``technique`` (a grid sweep such as `activation_patching`) run with ``config`` on
    control pairs shaped like ``like`` (drawn with ``config.seed``), without a control of its own."""
    pairs = control_pairs(model, like, config.seed)
    return technique(model, pairs, config=replace(config, control=False), **options)


def _windows(model: Model, count: int, length: int, g: torch.Generator) -> Tensor:
    """Returns up to ``count`` windows of ``length`` tokens (at least one per pair plus one)."""
    if model.tokenizer is None:
        return torch.randint(model.dims.d_vocab, (count, length), generator=g)
    from interplab.data.assets import lee_documents

    docs = [d for d in lee_documents() if len(d) > 40]
    rows = []
    for i in torch.randperm(len(docs), generator=g).tolist():
        ids = model.tokenizer(docs[i], add_special_tokens=False)["input_ids"]
        if len(ids) >= length:
            rows.append(torch.tensor(ids[:length]))
        if len(rows) == count:
            break
    needed = (count - 1) // CANDIDATES + 1
    if len(rows) < needed:
        raise PatchingError(
            f"the control corpus has only {len(rows)} documents of {length}+ tokens, {needed} "
            "needed; pass control=False or fewer pairs"
        )
    return torch.stack(rows)


def _top2(
    model: Model, clean: Tensor, corrupt: Tensor, like: TokenPairs, k: int
) -> tuple[Tensor, Tensor]:
    """Returns the clean candidates' two most likely next tokens ``[n, k, 2]`` and the corrupt
    candidates' most likely one ``[n, k]``, at each pair's answer position."""
    n, _, length = clean.shape
    last = (like.lengths - 1).repeat_interleave(k).to(model.device)
    mask = None if like.mask is None else like.mask.repeat_interleave(k, 0)
    rows = torch.arange(n * k, device=model.device)
    with torch.no_grad():
        out = []
        for ids in (clean, corrupt):
            logits = model.forward(model.tokens(ids.reshape(n * k, length), mask))
            out.append(logits[rows, last])
    top_clean = out[0].topk(2, -1).indices.cpu().view(n, k, 2)
    return top_clean, out[1].argmax(-1).cpu().view(n, k)


__all__ = [
    "CANDIDATES",
    "ControlComparison",
    "compare_control",
    "control_pairs",
    "gap",
    "run_control",
]
