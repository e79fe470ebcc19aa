"""Streaming example selection for every feature at once, in memory that does not grow with the
corpus (the dataset examples of Olah et al. 2017; random and quantile samples beside the top
ones as in Bricken et al. 2023, because top examples alone make a feature look cleaner).

Per batch of windows, with ``f [tokens, features]`` the activations and each token's context:

1. Top: the batch's k largest activations per feature are concatenated with the k kept so far
   and the k largest of those kept (ties go to the earlier token: kept slots come first).
2. Reservoir: every active (feature, token) pair draws a uniform key from a generator seeded by
   (seed, batch); the ``r`` smallest keys per feature are kept (bottom-k sampling), a uniform
   sample without replacement of the feature's active tokens, merged like step 1.
3. Every kept slot carries the token's window, position, context ids and the feature's
   activation on each context token, so pages colour their contexts without a second pass.
4. Density, maximum and the window/position of the maximum of every feature, and an exact
   histogram of active values on fixed log-spaced edges (1e-4 to 1e4; values outside land in
   the end bins).
5. A uniform sample of tokens (bottom-k over one key per token) keeps every feature's
   activation there, zeros included: the feature's mean activation on the corpus, with a CI.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

HIST_EDGES = np.logspace(-4, 4, 161)


@dataclass
class Slots:
    """Kept examples of every feature: arrays ``[features, slots, ...]`` (window -1: empty)."""

    order: Tensor  # the ranking key: activation (top) or random key (reservoir)
    value: Tensor
    window: Tensor
    position: Tensor
    ctx_ids: Tensor  # [features, slots, context]
    ctx_acts: Tensor

    @classmethod
    def empty(cls, features: int, slots: int, context: int, fill: float) -> Slots:
        return cls(
            torch.full((features, slots), fill, dtype=torch.float64),
            torch.zeros(features, slots),
            torch.full((features, slots), -1, dtype=torch.long),
            torch.full((features, slots), -1, dtype=torch.long),
            torch.full((features, slots, context), -1, dtype=torch.long),
            torch.full((features, slots, context), float("nan")),
        )

    def merge(self, other: Slots, largest: bool) -> None:
        """Keeps the best ``slots`` of self + other per feature (self first on ties)."""
        k = self.order.shape[1]
        order = torch.cat([self.order, other.order], 1)
        key = -order if largest else order
        pick = torch.sort(key, dim=1, stable=True).indices[:, :k]
        for name in ("order", "value", "window", "position", "ctx_ids", "ctx_acts"):
            both = torch.cat([getattr(self, name), getattr(other, name)], 1)
            index = pick if both.ndim == 2 else pick[..., None].expand(-1, -1, both.shape[2])
            setattr(self, name, both.gather(1, index))


class ExampleTracker:
    """Top and reservoir examples, density, maxima and histograms of ``features`` features."""

    def __init__(
        self,
        features: int,
        *,
        top: int,
        reservoir: int,
        left: int,
        right: int,
        seed: int,
        sample: int = 256,
    ) -> None:
        self.features, self.left, self.right, self.seed = features, left, right, seed
        context = left + 1 + right
        self.top = Slots.empty(features, top, context, -np.inf)
        self.reservoir = Slots.empty(features, reservoir, context, np.inf)
        self.count = torch.zeros(features, dtype=torch.long)
        self.tokens = 0
        self.max = torch.zeros(features)
        self.max_window = torch.full((features,), -1, dtype=torch.long)
        self.max_position = torch.full((features,), -1, dtype=torch.long)
        self.hist = torch.zeros(features, len(HIST_EDGES) - 1, dtype=torch.long)
        self.sample_keys = torch.full((sample,), np.inf, dtype=torch.float64)
        self.sample = torch.zeros(sample, features)
        self.batches = 0

    def add(self, f: Tensor, ids: Tensor, windows: Tensor, first: int) -> None:
        """Adds a batch: activations ``f [rows, pos, features]`` of token ``ids [rows, pos]`` in
        corpus ``windows [rows]``; positions before ``first`` are not counted."""
        rows, length, n = f.shape
        flat = f[:, first:].reshape(-1, n)
        token_row = torch.arange(rows).repeat_interleave(length - first)
        token_pos = torch.arange(first, length).repeat(rows)
        active = flat > 0
        self.count += active.sum(0)
        self.tokens += flat.shape[0]
        best, where = flat.max(0)
        better = best > self.max
        self.max = torch.where(better, best, self.max)
        self.max_window = torch.where(better, windows[token_row[where]], self.max_window)
        self.max_position = torch.where(better, token_pos[where], self.max_position)
        token, feature = torch.nonzero(active, as_tuple=True)
        bins = len(HIST_EDGES) - 1
        b = (
            torch.bucketize(flat[token, feature].double(), torch.from_numpy(HIST_EDGES)) - 1
        ).clamp(0, bins - 1)
        self.hist += torch.bincount(feature * bins + b, minlength=n * bins).reshape(n, bins)
        padded_f = torch.nn.functional.pad(f, (0, 0, self.left, self.right), value=float("nan"))
        padded_ids = torch.nn.functional.pad(ids, (self.left, self.right), value=-1)

        def slots(order: Tensor, token: Tensor) -> Slots:  # order, token: [features, k]
            r, p = token_row[token], token_pos[token]
            span = torch.arange(self.left + 1 + self.right)
            cols = p[..., None] + span  # positions in the padded arrays
            feature = torch.arange(n)[:, None, None].expand_as(cols)
            return Slots(
                order.double(),
                flat.T.gather(1, token),
                windows[r],
                p,
                padded_ids[r[..., None].expand_as(cols), cols],
                padded_f[r[..., None].expand_as(cols), cols, feature],
            )

        k = min(self.top.order.shape[1], flat.shape[0])
        values, token = flat.T.topk(k, dim=1)
        batch_top = slots(values, token)
        batch_top.window[values <= 0] = -1  # a feature silent here keeps nothing from this batch
        batch_top.order[values <= 0] = -np.inf
        self.top.merge(batch_top, largest=True)
        g = torch.Generator().manual_seed(
            int(np.random.SeedSequence([self.seed, self.batches]).generate_state(1)[0])
        )
        token_keys = torch.rand(flat.shape[0], generator=g, dtype=torch.float64)
        keys_all = torch.cat([self.sample_keys, token_keys])
        keep = torch.sort(keys_all, stable=True).indices[: len(self.sample_keys)]
        self.sample_keys = keys_all[keep]
        self.sample = torch.cat([self.sample, flat])[keep]
        keys = torch.rand(flat.shape, generator=g, dtype=torch.float64)
        keys[~active] = np.inf
        r = min(self.reservoir.order.shape[1], flat.shape[0])
        low, token = keys.T.topk(r, dim=1, largest=False)
        batch_res = slots(low, token)
        batch_res.window[~torch.isfinite(low)] = -1
        self.reservoir.merge(batch_res, largest=False)
        self.batches += 1

    @property
    def density(self) -> np.ndarray:
        return (self.count.double() / max(self.tokens, 1)).numpy()


__all__ = ["HIST_EDGES", "ExampleTracker", "Slots"]
