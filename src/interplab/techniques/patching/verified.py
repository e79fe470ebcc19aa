"""Verified activation patching: exact effects where they matter, AtP* elsewhere, and a bound on
what the estimated cells could hide.

Algorithm (the verification and diagnostic of Kramár et al. 2024, "AtP*", made concrete here):

1. AtP* (`interplab.techniques.patching.atp`) estimates every cell of every component grid:
   per example, and its score, the mean over examples of |estimate| (with ``graddrop=True`` the
   GradDrop magnitude).
2. The tolerance is ``threshold`` times the clean-corrupt gap |mean(clean) - mean(corrupt)| of
   the metric (5% by default): the question is which cells could move the metric by more.
3. Screening: every cell whose score exceeds ``screen`` times the tolerance (a tenth by default,
   so 0.5% of the gap) runs exactly. The margin is there because AtP* under-estimates: on the
   IOI head grid one head's exact effect (3.13) was 28 times its score (0.11), an effect through
   downstream attention that the linearisation misses. Scores of examples are taken in absolute
   value before averaging, so cells whose examples cancel are screened in too.
3b. The group screen (head grids, ``attn.z``). A miss like that one is caught exactly instead of
   by a wide margin: all heads of a layer (at one position with ``per="position"``) are patched
   together, which is the layer's ``attn_out`` cell, on ``group_examples`` random examples. Where
   the exact group effect and the sum of its heads' AtP* estimates differ by more than
   ``group_screen`` times the tolerance (mean over those examples of the absolute difference),
   AtP* has failed on that layer and every head in it runs exactly. The heads of the other
   layers then need a narrower margin: their per-cell screen is ``grouped_screen`` (0.3).
   The group check costs one cell per layer on a few examples; it misses a head only where
   AtP*'s errors within a layer cancel in the sum and the head's own score is under 0.3 of the
   tolerance.
4. A uniform random sample of the rest (a ``sample`` fraction, at least ``min_sample``) runs
   exactly in the same sweep: it measures the estimate's error where the screen did not look.
5. The bound (`max_effect_bound`, a diagnostic): with the sampled errors ``d = exact - estimate``
   of the mean effect (mean ``d̄``, spread ``s``, m cells) and the assumption that the estimated
   cells' errors are drawn like them from one normal distribution, every estimated cell's
   |mean effect| is at most ``|e + d̄| + t·s·sqrt(1 + 1/m)``, with t the Student-t quantile at
   ``1 - α/(2N)`` (N estimated cells, Bonferroni). AtP*'s errors are heavy-tailed (a kurtosis of
   135 on the head grid), so the bound can fail where the screen failed; the benchmark checks
   both against the full exact sweep.
6. The chosen cells run exactly on the fast path where the model supports partial forwards (else
   the packed hook path), with only their rows built; their effects equal the full sweep's.

The result (`VerifiedPatchingResult`) keeps exact per-example effects of the verified and
sampled cells, AtP* estimates of the rest, each cell's status, the scores, and the bound.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from interplab.configs import Config, ConfigError, budget
from interplab.core.memory import resolve_budget
from interplab.core.model import Model
from interplab.results.patching import Direction, GridComponent, PatchingError, Per
from interplab.results.patching_cells import GRID_COMPONENTS
from interplab.results.patching_verified import (
    ESTIMATED,
    SAMPLED,
    VERIFIED,
    VerifiedPatchingResult,
)
from interplab.sites import Site
from interplab.store import recorded
from interplab.techniques.metrics import Metric, MetricName, Targets
from interplab.techniques.patching import fast, hooks
from interplab.techniques.patching.atp import estimate
from interplab.techniques.patching.config import PatchingConfig
from interplab.techniques.patching.grid import PairsLike, TokenPairs, answer_logits, prepare

BOUND_METHOD = "normal errors of the sampled cells, Student-t prediction bound, Bonferroni"


@dataclass(frozen=True)
class VerifiedConfig(Config):
    """Verified patching: the grids, the tolerance (``threshold`` of the clean-corrupt gap), the
    screen (the fraction of the tolerance above which an AtP* score sends a cell to the exact
    sweep), how large the random sample is, the bound's confidence, and AtP*'s options."""

    components: tuple[GridComponent, ...] = ("resid_pre",)
    direction: Direction = "denoise"
    per: Per = "position"
    metric: MetricName = "logit_diff"
    threshold: float = 0.05
    screen: float = 0.1
    group_screen: float | None = 0.5  # None: no group screen, every cell is screened at `screen`
    grouped_screen: float = 0.3
    group_examples: int = 4
    sample: float = 0.05
    min_sample: int = 20
    confidence: float = 0.95
    graddrop: bool = False
    qk_fix: bool = True
    seed: int = 0
    batch_budget_mb: float | Literal["auto"] = 512.0
    control: bool = True

    def check(self) -> None:
        if not self.components or isinstance(self.components, str):
            raise ConfigError(f"components must be a non-empty tuple, got {self.components!r}")
        for c in self.components:
            if c not in GRID_COMPONENTS:
                raise ConfigError(f"cannot verify {c!r}; components: {', '.join(GRID_COMPONENTS)}")
        for name in ("threshold", "screen", "grouped_screen", "sample"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"{name} is a fraction in [0, 1], got {value}")
        if self.group_screen is not None and not self.group_screen >= 0.0:
            raise ConfigError(
                f"group_screen is a multiple of the tolerance (>= 0) or None, got {self.group_screen}"
            )
        if self.group_examples < 1:
            raise ConfigError(f"group_examples must be at least 1, got {self.group_examples}")
        if self.min_sample < 2:
            raise ConfigError(
                f"min_sample must be at least 2 (the bound needs a spread), got {self.min_sample}"
            )
        if not 0.0 < self.confidence < 1.0:
            raise ConfigError(f"confidence lies strictly between 0 and 1, got {self.confidence}")
        budget("batch_budget_mb", self.batch_budget_mb)

    @classmethod
    def from_patching(cls, cfg: PatchingConfig) -> VerifiedConfig:
        """Returns the verified config for ``activation_patching(method="verified")``."""
        if cfg.source != "contrast":
            raise PatchingError(
                f"verified patching estimates contrast patches with AtP*; {cfg.source} ablation "
                "has no source run to estimate from (use method='auto')"
            )
        return cls(
            components=cfg.components,
            direction=cfg.direction,
            per=cfg.per,
            metric=cfg.metric,
            seed=cfg.seed,
            batch_budget_mb=cfg.batch_budget_mb,
            control=cfg.control,
        )


@recorded("activation_patching_verified", inputs="pairs")
def verified_patching(
    model: Model,
    pairs: PairsLike,
    *,
    components: Sequence[str] | str = ("resid_pre",),
    direction: Direction = "denoise",
    per: Per = "position",
    metric: MetricName | Metric = "logit_diff",
    threshold: float = 0.05,
    screen: float = 0.1,
    group_screen: float | None = 0.5,
    grouped_screen: float = 0.3,
    sample: float = 0.05,
    confidence: float = 0.95,
    graddrop: bool = False,
    seed: int = 0,
    progress: bool = True,
    control: bool = True,
    config: VerifiedConfig | None = None,
) -> VerifiedPatchingResult:
    """Returns activation patching's grids with every cell whose AtP* score exceeds ``screen`` x
    ``threshold`` of the clean-corrupt gap, and a random ``sample`` of the others, patched
    exactly; AtP* estimates for the rest, and a bound with ``confidence`` on the largest |mean
    effect| an estimated cell could have (a diagnostic: it assumes normal errors). Head grids
    (``attn.z``) are also checked a layer at a time: where the exact effect of all a layer's heads
    misses their AtP* sum by more than ``group_screen`` x the tolerance every head of that layer
    runs exactly, and the other heads are screened at ``grouped_screen`` (``group_screen=None``
    turns this off). ``config`` replaces the option keywords."""
    cfg = config or VerifiedConfig(
        components=(components,) if isinstance(components, str) else tuple(components),  # type: ignore[arg-type]
        direction=direction,
        per=per,
        metric=metric.name if isinstance(metric, Metric) else metric,
        threshold=threshold,
        screen=screen,
        group_screen=group_screen,
        grouped_screen=grouped_screen,
        sample=sample,
        confidence=confidence,
        graddrop=graddrop,
        seed=seed,
        control=control,
    )
    return run_verified(model, pairs, cfg, progress=progress)


def run_verified(
    model: Model,
    pairs: PairsLike,
    cfg: VerifiedConfig,
    *,
    progress: bool = True,
    tolerance: float | None = None,
) -> VerifiedPatchingResult:
    """Returns `verified_patching`'s result for a config (what ``method="verified"`` runs).
    ``tolerance`` replaces ``threshold`` x the gap (the control run uses the main run's)."""
    comps: tuple[str, ...] = tuple(cfg.components)
    m = Metric(cfg.metric)
    inputs = prepare(model, pairs, cfg.per)
    tp = inputs.pairs
    est = estimate(
        model, tp, comps, cfg.per, m, cfg.direction,
        qk_fix=cfg.qk_fix, graddrop=cfg.graddrop, progress=progress,
    )  # fmt: skip
    estimates = {c: est.effects[c].double().cpu().numpy() for c in comps}
    scores = {c: est.scores[c].double().mean(0).cpu().numpy() for c in comps}
    shapes = {c: scores[c].shape for c in comps}
    flat_scores = np.concatenate([scores[c].ravel() for c in comps])
    denoise = cfg.direction == "denoise"
    base_ids = tp.corrupt if denoise else tp.clean
    reason = fast.unsupported(model, tp)
    answer_pos = tp.lengths - 1
    # AtP*'s source run (no gradients) gives the source side's logits and patch values; the base
    # side's metric comes from the exact sweep's own unpatched run (or, on the hook path, a forward).
    with torch.no_grad():
        source_logits = est.source_logits
        clean_logits = (
            source_logits
            if denoise
            else answer_logits(model, tp.tokens(model, "clean"), answer_pos)
        )
        targets = Targets(tp.answer, tp.wrong, torch.log_softmax(clean_logits.float(), -1))
        source_m = m(source_logits, targets)
    # The tolerance needs the gap before the sweep: AtP*'s base run gives the base side's metric.
    est_base = est.corrupt if denoise else est.clean
    gap = abs(float(source_m.double().mean() - est_base.double().mean()))
    tol = cfg.threshold * gap if tolerance is None else tolerance
    groups = (
        _group_screen(model, tp, cfg, m, targets, estimates["attn.z"], tol, progress)
        if cfg.group_screen is not None and "attn.z" in comps
        else None
    )
    cutoffs = np.concatenate(
        [np.full(int(np.prod(shapes[c])), _cutoff(cfg, c, groups is not None) * tol) for c in comps]
    )
    forced = np.concatenate(
        [
            (groups.expand(shapes[c]) if c == "attn.z" and groups is not None else
             np.zeros(shapes[c], dtype=bool)).ravel()
            for c in comps
        ]
    )  # fmt: skip
    rng = np.random.default_rng(cfg.seed)
    flat_status = select_cells(flat_scores, cutoffs, cfg.sample, cfg.min_sample, rng, forced=forced)
    status, offset = {}, 0
    for c in comps:
        size = int(np.prod(shapes[c]))
        status[c] = flat_status[offset : offset + size].reshape(shapes[c])
        offset += size
    only = {c: torch.from_numpy(status[c] != ESTIMATED) for c in comps}
    with torch.no_grad():
        values = est.source_values  # the grid sites of the source run
        budget_mb = resolve_budget(cfg.batch_budget_mb, model.device)
        if reason is None:
            grids, base_m = fast.sweep(
                model, base_ids, values, comps, cfg.per, m, targets,
                budget_mb=budget_mb, progress=progress, only=only,
            )  # fmt: skip
        else:
            grids = hooks.packed_sweep(
                model, base_ids, tp, values, comps, cfg.per, m, targets, budget_mb, progress,
                only=only,
            )  # fmt: skip
            base_m = m(answer_logits(model, model.tokens(base_ids, tp.mask), answer_pos), targets)
    clean_m, corrupt_m = (source_m, base_m) if denoise else (base_m, source_m)
    base = base_m.double().cpu().numpy()
    effects: dict[str, np.ndarray] = {}
    errors = []
    for c in comps:
        exact = grids[c].double().cpu().numpy() - base.reshape((-1,) + (1,) * len(shapes[c]))
        effects[c] = np.where((status[c] != ESTIMATED)[None], exact, estimates[c])
        sampled = status[c] == SAMPLED
        errors.append(exact.mean(0)[sampled] - estimates[c].mean(0)[sampled])
    left = np.concatenate([estimates[c].mean(0)[status[c] == ESTIMATED] for c in comps])
    bound = max_effect_bound(left, np.concatenate(errors), cfg.confidence)
    control_result = None
    if cfg.control:
        from dataclasses import replace

        from interplab.techniques.patching.controls import control_pairs

        control_result = run_verified(
            model, control_pairs(model, tp, cfg.seed), replace(cfg, control=False),
            progress=progress, tolerance=tol,
        )  # fmt: skip
    return VerifiedPatchingResult(
        components=comps,
        direction=cfg.direction,
        per=cfg.per,
        metric=m.name,
        effects=effects,
        clean=clean_m.double().cpu().numpy(),
        corrupt=corrupt_m.double().cpu().numpy(),
        **inputs.recorded("activation_patching_verified", model, cfg.to_dict(), cfg.seed),
        control=control_result,
        method="fast" if reason is None else "hooks",
        note="" if reason is None else f"exact cells on the hook path: {reason}",
        status={c: s.astype(np.int8) for c, s in status.items()},
        estimates=estimates,
        scores=scores,
        bound=bound,
        confidence=cfg.confidence,
        bound_method=BOUND_METHOD,
        threshold=cfg.threshold,
        screen=cfg.screen,
        group_screen=None if groups is None else cfg.group_screen,
        grouped_screen=cfg.grouped_screen,
        group_examples=[] if groups is None else groups.examples,
        group_effects={} if groups is None else {"attn.z": groups.effects},
        group_discrepancy={} if groups is None else {"attn.z": groups.discrepancy},
        tolerance=tol,
        sample=cfg.sample,
        n_cells=len(flat_scores),
        n_verified=int((flat_status == VERIFIED).sum()),
        n_sampled=int((flat_status == SAMPLED).sum()),
        graddrop=cfg.graddrop,
    )


def select_cells(
    scores: np.ndarray,
    cutoff: float | np.ndarray,
    sample: float,
    min_sample: int,
    rng: np.random.Generator,
    *,
    forced: np.ndarray | None = None,
) -> np.ndarray:
    """Returns each cell's status (`VERIFIED`, `SAMPLED`, `ESTIMATED`) for AtP* scores
    ``[cells]``: every cell scoring above ``cutoff`` (one for all, or one per cell) and every
    ``forced`` cell is verified, and a uniform random sample of the rest (``sample`` of it, at
    least ``min_sample``) is sampled."""
    scores = np.asarray(scores, dtype=np.float64)
    status = np.full(scores.shape, ESTIMATED, dtype=np.int8)
    top = scores > np.asarray(cutoff, dtype=np.float64)
    if forced is not None:
        top = top | np.asarray(forced, dtype=bool)
    status[top] = VERIFIED
    rest = np.flatnonzero(~top)
    k = min(len(rest), max(min_sample, math.ceil(sample * len(rest))))
    if k:
        status[rng.choice(rest, size=k, replace=False)] = SAMPLED
    return status


def max_effect_bound(estimates: np.ndarray, errors: np.ndarray, confidence: float) -> float:
    """Returns an upper bound on max |effect| over the estimated cells, holding with
    ``confidence`` if their errors (effect - estimate) and the sampled ``errors`` are independent
    draws from one normal distribution (step 5 of the module docstring): 0 with nothing
    estimated, infinity with fewer than two sampled errors."""
    from scipy.stats import t

    estimates = np.asarray(estimates, dtype=np.float64)
    errors = np.asarray(errors, dtype=np.float64)
    n, m = estimates.size, errors.size
    if n == 0:
        return 0.0
    if m < 2:
        return math.inf
    alpha = 1.0 - confidence
    q = float(t.ppf(1.0 - alpha / (2 * n), m - 1))
    spread = float(errors.std(ddof=1)) * math.sqrt(1.0 + 1.0 / m)
    return float(np.abs(estimates + errors.mean()).max() + q * spread)


def _cutoff(cfg: VerifiedConfig, component: str, grouped: bool) -> float:
    """Returns the per-cell screen of one grid: `grouped_screen` where a group screen ran."""
    return cfg.grouped_screen if grouped and component == "attn.z" else cfg.screen


@dataclass(frozen=True)
class _Groups:
    """The group screen of a head grid: per layer (and position), all its heads patched at once."""

    examples: list[int]  # the examples it ran on
    effects: np.ndarray  # exact group effects [examples, layer, (pos)]
    discrepancy: np.ndarray  # mean over examples of |exact - sum of the heads' AtP*| [layer, (pos)]
    failed: np.ndarray  # discrepancy above group_screen x tolerance [layer, (pos)]

    def expand(self, shape: tuple[int, ...]) -> np.ndarray:
        """Returns the head cells ``[layer, head, (pos)]`` of the groups that failed."""
        return np.broadcast_to(self.failed[:, None], shape).copy()


@torch.no_grad()
def _group_screen(
    model: Model,
    tp: TokenPairs,
    cfg: VerifiedConfig,
    m: Metric,
    targets: Targets,
    head_estimates: np.ndarray,
    tol: float,
    progress: bool,
) -> _Groups:
    """Runs step 3b: each layer's heads patched together (its ``attn_out`` cell) exactly, on
    ``group_examples`` random examples, against the sum of their AtP* estimates."""
    n = tp.n
    k = min(n, cfg.group_examples)
    rng = np.random.default_rng([cfg.seed, 1])
    idx = np.sort(rng.choice(n, size=k, replace=False)) if k < n else np.arange(n)
    sub = tp.select(torch.from_numpy(idx))
    rows = torch.from_numpy(idx)
    logprobs = targets.clean_logprobs
    sub_targets = Targets(
        targets.answer[rows], targets.wrong[rows], None if logprobs is None else logprobs[rows]
    )
    denoise = cfg.direction == "denoise"
    base_ids, source_ids = (sub.corrupt, sub.clean) if denoise else (sub.clean, sub.corrupt)
    sites = [Site(layer, "attn_out") for layer in range(model.dims.n_layers)]
    values = _capture(model, model.tokens(source_ids, sub.mask), sites)
    budget_mb = resolve_budget(cfg.batch_budget_mb, model.device)
    if fast.unsupported(model, sub) is None:
        grids, base_m = fast.sweep(
            model, base_ids, values, ("attn_out",), cfg.per, m, sub_targets,
            budget_mb=budget_mb, progress=progress,
        )  # fmt: skip
    else:
        grids = hooks.packed_sweep(
            model, base_ids, sub, values, ("attn_out",), cfg.per, m, sub_targets, budget_mb,
            progress,
        )  # fmt: skip
        ids = model.tokens(base_ids, sub.mask)
        base_m = m(answer_logits(model, ids, sub.lengths - 1), sub_targets)
    grid = grids["attn_out"]
    base = base_m.double().cpu().numpy()
    exact = grid.double().cpu().numpy() - base.reshape((-1,) + (1,) * (grid.ndim - 1))
    summed = head_estimates[idx].sum(2)  # [k, layer, (pos)]
    discrepancy = np.abs(exact - summed).mean(0)
    assert cfg.group_screen is not None
    return _Groups(
        examples=[int(i) for i in idx],
        effects=exact,
        discrepancy=discrepancy,
        failed=discrepancy > cfg.group_screen * tol,
    )


def _capture(model: Model, tokens: object, sites: list[Site]) -> dict[Site, Tensor]:
    cache = model.run(tokens, capture=sites).cache  # type: ignore[arg-type]
    return {s: cache[s] for s in sites}


__all__ = [
    "BOUND_METHOD",
    "VerifiedConfig",
    "max_effect_bound",
    "run_verified",
    "select_cells",
    "verified_patching",
]
