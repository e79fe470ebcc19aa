"""Turning the final streaming state into a result: contexts, quantile bins, activation facts.

1. Each kept slot's context token ids are read back from the corpus windows (``-1`` outside its
   window); the activations on them were kept while streaming.
2. Quantile bins: the ``n_hist`` histogram bins are grouped into ``n_bins`` bins of about equal
   token counts (approximate quantiles, as exact as the histogram's resolution), and each group
   draws its samples from its histogram bins' reservoirs in proportion to their counts (seeded).
   Each quantile bin records its value range and the cumulative token fraction at its ends.
3. Mean and standard deviation come from the running float64 sums.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from interplab.provenance import Provenance
from interplab.results.top_examples import Samples, TopExamplesConfig, TopExamplesResult, Unit
from interplab.techniques.top_examples.state import Slots, State

_SAMPLE_FIELDS = ("score", "window", "position", "context_ids", "context_acts")


def finish(
    windows: np.ndarray,
    state: State,
    units: list[Unit],
    cfg: TopExamplesConfig,
    *,
    corpus: str,
    n_windows: int,
    decode: Callable[[int], str] | None,
    provenance: Provenance,
) -> TopExamplesResult:
    """Returns the result of a pass from its final state (module docstring, steps 1-3).
    ``decode`` turns a kept token's id into its text (None: its number)."""
    offsets = np.arange(-cfg.context[0], cfg.context[1] + 1)
    length = windows.shape[1]
    used: set[int] = set()

    def samples(slots: Slots) -> Samples:
        w, p = slots.window.numpy(), slots.pos.numpy()
        q = p[..., None] + offsets
        ok = (w[..., None] >= 0) & (q >= 0) & (q < length)
        gathered = windows[np.clip(w, 0, None)[..., None], np.clip(q, 0, length - 1)]
        ids = np.where(ok, gathered.astype(np.int64), -1)
        used.update(np.unique(ids[ids >= 0]).tolist())
        return Samples(slots.score.numpy(), w, p, ids, slots.ctx.numpy())

    top, rnd, hist = samples(state.top), samples(state.rnd), samples(state.hist)
    quant, ranges, fractions = quantile_bins(state, hist, cfg.n_bins, cfg.per_bin, cfg.seed)
    n = max(state.count, 1)
    mean = state.total.numpy() / n
    var = np.maximum(state.total_sq.numpy() / n - mean**2, 0.0)
    strings = {i: decode(i) if decode is not None else str(i) for i in sorted(used)}
    return TopExamplesResult(
        units=units,
        corpus=corpus,
        top=top,
        random=rnd,
        quantiles=quant,
        bin_ranges=ranges,
        bin_fractions=fractions,
        context=cfg.context,
        token_strings=strings,
        n_tokens=state.count,
        n_windows=n_windows,
        mean=mean,
        std=np.sqrt(var),
        min=state.lo.double().numpy(),
        max=state.hi.double().numpy(),
        state_bytes=state.nbytes,
        provenance=provenance,
    )


def quantile_bins(
    state: State, hist: Samples, n_bins: int, per_bin: int, seed: int
) -> tuple[Samples, np.ndarray, np.ndarray]:
    """Returns samples grouped into ``n_bins`` approximate quantile bins, their value ranges and
    cumulative token fractions (step 2 of the module docstring)."""
    n_dir = state.counts.shape[0]
    counts = state.counts.numpy()
    edges = state.edges.double().numpy()
    c = hist.context_ids.shape[-1]
    shape = (n_dir, n_bins, per_bin)
    out = Samples(
        np.full(shape, np.nan, dtype=np.float32),
        np.full(shape, -1, dtype=np.int64),
        np.full(shape, -1, dtype=np.int64),
        np.full((*shape, c), -1, dtype=np.int64),
        np.full((*shape, c), np.nan, dtype=np.float32),
    )
    ranges = np.full((n_dir, n_bins, 2), np.nan)
    fractions = np.full((n_dir, n_bins, 2), np.nan)
    rng = np.random.default_rng(seed)
    lo, hi = state.lo.double().numpy(), state.hi.double().numpy()
    for d in range(n_dir):
        total = counts[d].sum()
        if total == 0 or edges.shape[1] == 0:
            continue
        cum = np.cumsum(counts[d])
        group = np.minimum(((cum - counts[d] / 2) / total * n_bins).astype(int), n_bins - 1)
        bounds = np.concatenate([[lo[d]], edges[d], [hi[d]]])
        for g in range(n_bins):
            members = np.flatnonzero((group == g) & (counts[d] > 0))
            if not len(members):
                continue
            ranges[d, g] = (max(bounds[members[0]], lo[d]), min(bounds[members[-1] + 1], hi[d]))
            fractions[d, g] = (
                (cum[members[0]] - counts[d, members[0]]) / total,
                cum[members[-1]] / total,
            )
            # Each histogram bin's reservoir is in random order; draw bins ∝ their counts.
            queues = {
                int(m): [
                    m * per_bin + j for j in range(per_bin) if hist.window[d, m * per_bin + j] >= 0
                ]
                for m in members
            }
            for j in range(per_bin):
                live = [m for m in queues if queues[m]]
                if not live:
                    break
                weights = counts[d, live] / counts[d, live].sum()
                slot = queues[int(rng.choice(live, p=weights))].pop(0)
                for name in _SAMPLE_FIELDS:
                    getattr(out, name)[d, g, j] = getattr(hist, name)[d, slot]
    return out, ranges, fractions


__all__ = ["finish", "quantile_bins"]
