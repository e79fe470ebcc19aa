"""Feature patching: the causal effect of each dictionary feature at each position.

Patching acts on a feature the way splicing with the error term does: the dictionary attached to
the model (`interplab.dictionaries.attach`) encodes the activation at its read site on the clean
and on the corrupt prompt, and patching feature j at position p changes the site it writes by
``(f_source - f_base)[p, j] * W_dec[j]``, leaving every other feature and the error term as the
base run had them. So:

1. *Exact* (``method="exact"``): each cell (feature, position) is one forward of the base prompts
   with that change, many cells packed per batch as in `hooks.packed_sweep` (row ``c * n + i`` is
   example i with cell c). A cell whose feature has the same value on both prompts of every pair
   changes nothing, so its effect is exactly 0 without a forward.
2. *Attribution* (always computed; ``method="attribution"`` stops there): the first-order
   estimate ``(f_source - f_base) * (grad_write · W_dec[j])`` from one forward and one backward
   of the base prompts, for every feature the sites name (all of a dictionary's, if asked).
3. Choosing: given a whole dictionary (``L15.resid_pre.sae[res]``) and ``method="exact"``, the
   ``top`` features with the largest estimated |mean effect| at any position are patched exactly,
   beside ``baseline`` features drawn at random from those active on either prompt, so the top
   features' effects are read against typical ones (`FeaturePatchingResult.ranked` says how many
   were ranked).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from interplab.configs import Config, positive
from interplab.core.interventions import Apply
from interplab.core.model import Model
from interplab.dictionaries.attach import Resolved, decoder_rows, encode_at, resolve
from interplab.progress import progress_bar
from interplab.results.feature_patching import FeaturePatchingResult
from interplab.results.patching import Direction, PatchingError, Per
from interplab.sites import FeatureSite, Site
from interplab.store import recorded
from interplab.techniques.metrics import Metric, MetricName, Targets
from interplab.techniques.patching.grid import (
    PairsLike,
    TokenPairs,
    answer_logits,
    max_rows,
    prepare,
)

MAX_EXACT_FEATURES = 512
"""More features than this need ``top=`` (or ``method="attribution"``) for an exact sweep."""


@dataclass(frozen=True)
class FeaturePatchingConfig(Config):
    """The options of `feature_patching`."""

    direction: Direction = "denoise"
    per: Per = "position"
    metric: MetricName = "logit_diff"
    method: Literal["exact", "attribution"] = "exact"
    top: int = 20
    baseline: int = 5
    seed: int = 0
    batch_budget_mb: float = 256.0

    def check(self) -> None:
        positive("top", self.top)
        positive("batch_budget_mb", self.batch_budget_mb)
        if self.baseline < 0:
            raise PatchingError(f"baseline must be >= 0 random features, got {self.baseline}")


@dataclass
class _Group:
    """The features of one dictionary: its sites, chosen indices, values on both prompts."""

    resolved: Resolved
    features: list[int]
    source: Tensor  # [n, T, F]
    base: Tensor  # [n, T, F]
    rows: Tensor  # [F, d] decoder rows

    @property
    def delta(self) -> Tensor:
        return self.source - self.base


@recorded("feature_patching", inputs="pairs")
def feature_patching(
    model: Model,
    pairs: PairsLike,
    features: FeatureSite | str | Sequence[FeatureSite | str],
    *,
    direction: Direction = "denoise",
    per: Per = "position",
    metric: MetricName = "logit_diff",
    method: Literal["exact", "attribution"] = "exact",
    top: int = 20,
    baseline: int = 5,
    seed: int = 0,
    batch_budget_mb: float = 256.0,
    progress: bool = True,
    config: FeaturePatchingConfig | None = None,
) -> FeaturePatchingResult:
    """Returns the per-example effect on ``metric`` of patching each feature the feature sites
    name (one feature ``...sae[res].f12``, or all of a dictionary ``...sae[res]``), per position
    or at all positions, with the first-order estimate of every cell beside it. The dictionaries
    must be attached to ``model`` (`interplab.dictionaries.attach`)."""
    cfg = config or FeaturePatchingConfig(
        direction=direction,
        per=per,
        metric=metric,
        method=method,
        top=top,
        baseline=baseline,
        seed=seed,
        batch_budget_mb=batch_budget_mb,
    )
    sites = [features] if isinstance(features, FeatureSite | str) else list(features)
    if not sites:
        raise PatchingError("no features given; name one like 'L15.resid_pre.sae[res].f12'")
    resolved = [resolve(model, s) for s in sites]
    if any(r.site.error for r in resolved):
        raise PatchingError("the error term is not a feature; patch its site as a whole instead")
    m = Metric(cfg.metric)
    inputs = prepare(model, pairs, cfg.per)
    tp = inputs.pairs
    denoise = cfg.direction == "denoise"
    base_side, source_side = ("corrupt", "clean") if denoise else ("clean", "corrupt")
    groups = _groups(model, tp, resolved, base_side, source_side)
    answer_pos = tp.lengths - 1
    with torch.no_grad():
        clean_logits = answer_logits(model, tp.tokens(model, "clean"), answer_pos)
        corrupt_logits = answer_logits(model, tp.tokens(model, "corrupt"), answer_pos)
    targets = Targets(tp.answer, tp.wrong, torch.log_softmax(clean_logits.float(), -1))
    clean_m, corrupt_m = m(clean_logits, targets), m(corrupt_logits, targets)
    estimates = _attribution(model, tp, groups, m, targets, base_side)
    ranked = 0
    if cfg.method == "exact":
        total = sum(len(g.features) for g in groups)
        whole = any(r.site.feature is None for r in resolved)
        if whole or total > MAX_EXACT_FEATURES:
            ranked = total
            groups, estimates = _choose(groups, estimates, cfg)
    exact = None
    if cfg.method == "exact":
        base_m = corrupt_m if denoise else clean_m
        exact = (
            _exact(model, tp, groups, m, targets, base_side, cfg, progress) - base_m[:, None, None]
        )
    est = torch.cat(estimates, dim=1)  # [n, F, T]
    if tp.mask is not None:
        est = est.masked_fill(~tp.mask[:, None, :].bool(), 0.0)
    if cfg.per == "all":
        est = est.sum(-1)
        exact = None if exact is None else exact[..., 0]
    elif exact is not None and tp.mask is not None:
        exact = exact.masked_fill(~tp.mask[:, None, :].bool(), 0.0)
    values = exact if exact is not None else est
    source_v = torch.cat([g.source for g in groups], -1).transpose(1, 2)
    base_v = torch.cat([g.base for g in groups], -1).transpose(1, 2)
    clean_v, corrupt_v = (source_v, base_v) if denoise else (base_v, source_v)
    return FeaturePatchingResult(
        features=tuple(
            FeatureSite(g.resolved.write, g.resolved.site.dictionary, j)
            for g in groups
            for j in g.features
        ),
        direction=cfg.direction,
        per=cfg.per,
        metric=m.name,
        method=cfg.method,
        effects=values.double().cpu().numpy(),
        attribution=est.double().cpu().numpy(),
        clean_values=clean_v.float().cpu().numpy(),
        corrupt_values=corrupt_v.float().cpu().numpy(),
        clean=clean_m.double().cpu().numpy(),
        corrupt=corrupt_m.double().cpu().numpy(),
        **inputs.recorded(
            "feature_patching",
            model,
            {**cfg.to_dict(), "features": [str(r.site) for r in resolved]},
            cfg.seed,
        ),
        ranked=ranked,
    )


def _groups(
    model: Model, tp: TokenPairs, resolved: list[Resolved], base_side: str, source_side: str
) -> list[_Group]:
    """Returns one group per dictionary with the named features' values on both prompts."""
    by_name: dict[str, tuple[Resolved, list[int]]] = {}
    for r in resolved:
        held = by_name.setdefault(r.site.dictionary, (r, []))
        held[1].extend(f for f in r.features if f not in held[1])
    reads = list(dict.fromkeys(r.read for r, _ in by_name.values()))
    with torch.no_grad():
        base = model.run(tp.tokens(model, base_side), capture=reads).cache
        source = model.run(tp.tokens(model, source_side), capture=reads).cache
    out = []
    for r, feats in by_name.values():
        with torch.no_grad():
            out.append(
                _Group(
                    r,
                    feats,
                    encode_at(r, source[r.read], feats),
                    encode_at(r, base[r.read], feats),
                    decoder_rows(r, feats),
                )
            )
    return out


def _attribution(
    model: Model, tp: TokenPairs, groups: list[_Group], m: Metric, targets: Targets, base_side: str
) -> list[Tensor]:
    """Returns per group the first-order estimates ``[n, F, T]`` from one forward and backward."""
    writes: list[Site] = list(dict.fromkeys(g.resolved.write for g in groups))
    run = model.run(tp.tokens(model, base_side), capture=writes, grad=True)
    rows = torch.arange(tp.n)
    value = m(run.logits[rows, tp.lengths - 1], targets)
    grads = torch.autograd.grad(value.sum(), [run.cache[w] for w in writes])
    by_site = dict(zip(writes, grads, strict=True))
    out = []
    with torch.no_grad():
        for g in groups:
            along = by_site[g.resolved.write].float() @ g.rows.T  # [n, T, F]
            out.append((g.delta * along).transpose(1, 2))
    return out


def _choose(
    groups: list[_Group], estimates: list[Tensor], cfg: FeaturePatchingConfig
) -> tuple[list[_Group], list[Tensor]]:
    """Keeps the ``top`` features by estimated |mean effect| and ``baseline`` random active
    ones."""
    flat = [(gi, fi) for gi, g in enumerate(groups) for fi in range(len(g.features))]
    score = torch.cat([e.mean(0).abs().amax(-1) for e in estimates])  # [F_total]
    order = torch.argsort(score, descending=True, stable=True).tolist()
    chosen = order[: cfg.top]
    active = torch.cat([((g.source != 0) | (g.base != 0)).any(0).any(0) for g in groups])
    rest = [i for i in order[cfg.top :] if bool(active[i])]
    rng = np.random.default_rng(cfg.seed)
    if rest and cfg.baseline:
        picks = rng.choice(len(rest), min(cfg.baseline, len(rest)), replace=False)
        chosen += sorted(rest[int(i)] for i in picks)
    keep: dict[int, list[int]] = {}
    for i in chosen:
        gi, fi = flat[i]
        keep.setdefault(gi, []).append(fi)
    new_groups, new_est = [], []
    for gi, fis in keep.items():
        g, idx = groups[gi], torch.tensor(fis)
        new_groups.append(
            _Group(
                g.resolved,
                [g.features[i] for i in fis],
                g.source[..., idx],
                g.base[..., idx],
                g.rows[idx],
            )
        )
        new_est.append(estimates[gi][:, idx])
    return new_groups, new_est


def _exact(
    model: Model,
    tp: TokenPairs,
    groups: list[_Group],
    m: Metric,
    targets: Targets,
    base_side: str,
    cfg: FeaturePatchingConfig,
    progress: bool,
) -> Tensor:
    """Returns the patched runs' metric ``[n, F, T]`` (``[n, F, 1]`` with ``per="all"``)."""
    n, length = tp.clean.shape
    positions: list[int | None] = list(range(length)) if cfg.per == "position" else [None]
    base_ids = tp.corrupt if base_side == "corrupt" else tp.clean
    out = torch.empty(n, sum(len(g.features) for g in groups), len(positions))
    todo: list[tuple[int, int, int, int | None]] = []  # (group, feature column, out column, pos)
    skipped: list[tuple[int, int]] = []
    col = 0
    for gi, g in enumerate(groups):
        for fi in range(len(g.features)):
            for pi, p in enumerate(positions):
                d = g.delta[:, :, fi] if p is None else g.delta[:, p, fi]
                if bool((d == 0).all()):
                    skipped.append((col + fi, pi))
                else:
                    todo.append((gi, fi, col + fi, p))
        col += len(g.features)
    answer_pos = tp.lengths - 1
    if skipped:
        with torch.no_grad():
            base_logits = answer_logits(model, tp.tokens(model, base_side), answer_pos)
        unpatched = m(base_logits, targets)
        for c, pi in skipped:
            out[:, c, pi] = unpatched
    per_chunk = max(1, max_rows(model, length, length, cfg.batch_budget_mb) // n)
    with progress_bar(len(todo), "feature patching", progress) as advance:
        for lo in range(0, len(todo), per_chunk):
            chunk = todo[lo : lo + per_chunk]
            k = len(chunk)
            ivs = [_writer(site, groups, chunk, n, length) for site in _sites(groups, chunk)]
            mask = None if tp.mask is None else tp.mask.repeat(k, 1)
            with torch.no_grad(), model.intervene(ivs):
                logits = answer_logits(
                    model, model.tokens(base_ids.repeat(k, 1), mask), answer_pos.repeat(k)
                )
            values = m(logits, targets, torch.arange(n).repeat(k)).view(k, n)
            for j, (_, _, c, p) in enumerate(chunk):
                out[:, c, 0 if p is None else p] = values[j]
            advance(k)
    return out


def _sites(groups: list[_Group], chunk: list[tuple[int, int, int, int | None]]) -> list[Site]:
    return list(dict.fromkeys(groups[gi].resolved.write for gi, *_ in chunk))


def _writer(
    site: Site,
    groups: list[_Group],
    chunk: list[tuple[int, int, int, int | None]],
    n: int,
    length: int,
) -> Apply:
    """Returns an Apply adding, in rows ``j*n..(j+1)*n``, cell j's feature change at ``site``."""

    def fn(x: Tensor) -> Tensor:
        x = x.clone()
        for j, (gi, fi, _, p) in enumerate(chunk):
            g = groups[gi]
            if g.resolved.write != site:
                continue
            rows = slice(j * n, (j + 1) * n)
            row = g.rows[fi].to(x.dtype)
            if p is None:
                x[rows] += g.delta[:, :, fi, None].to(x.dtype) * row
            else:
                x[rows, p] += g.delta[:, p, fi, None].to(x.dtype) * row
        return x

    return Apply(site, fn)


__all__ = ["FeaturePatchingConfig", "feature_patching"]
