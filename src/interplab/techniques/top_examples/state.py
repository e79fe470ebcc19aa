"""The streaming state of a max-activating pass: what every direction keeps, merged batch by batch.

1. Top-k (`merge_sorted`, descending): the kept items and the batch's scores are concatenated and
   stable-sorted. Kept items come first and batch items are in corpus order, so ties go to the
   earlier token, exactly as one stable sort of the whole corpus would: the streamed top-k
   equals the brute-force top-k, bit for bit.
2. Random examples (`merge_sorted`, ascending): every (direction, token) draws a uniform key from a
   generator seeded by (seed, batch index); the ``n_random`` smallest keys are a uniform sample
   without replacement (bottom-k sampling: a reservoir sample that merges like step 1).
3. Quantile reservoirs (`merge_binned`): on the first batch each direction gets ``n_hist``
   histogram bins with edges at that batch's quantiles (open-ended at both ends); every token is
   counted in its bin, and each bin keeps the ``per_bin`` tokens with the smallest uniform keys.
4. Running count, sum and sum of squares (float64), min and max give each direction's mean/std.
5. Each kept token keeps the direction's activations on its context (``left + 1 + right``
   tokens inside its window). The state's size is directions × slots × context, whatever the
   corpus length. `State.update` returns a new state, so an interrupt mid-batch leaves the last
   complete one to checkpoint.
6. Parts of the corpus streamed apart (each from an empty state with batch 0's histogram edges,
   keeping the corpus's window and batch numbers) merge into the one-pass state (`merge_states`):
   the slots by the same stable selections over [earlier part | later part], so ties still go to
   the earlier token and the slots equal the one pass's bit for bit; counts, min and max add up
   exactly; the float64 sums are added in another order, so mean and std may differ from the one
   pass's in the last bits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from interplab.results.top_examples import TopExamplesError

SLOT_FIELDS = ("key", "score", "window", "pos", "ctx")


@dataclass
class Batch:
    """One batch's activations and where it sits in the corpus."""

    acts: Tensor  # [B, T, D] float32
    start: int  # window index of row 0
    length: int
    offsets: Tensor  # [C]: context offsets, -left..right


@dataclass
class Slots:
    """Kept tokens of every direction: a sort key, the score, where it is, its context's acts."""

    key: Tensor  # [D, S]
    score: Tensor
    window: Tensor  # int64, -1 = empty
    pos: Tensor
    ctx: Tensor  # [D, S, C]

    @classmethod
    def empty(cls, d: int, s: int, c: int, fill: float) -> Slots:
        return cls(
            key=torch.full((d, s), fill),
            score=torch.full((d, s), float("nan")),
            window=torch.full((d, s), -1, dtype=torch.long),
            pos=torch.full((d, s), -1, dtype=torch.long),
            ctx=torch.full((d, s, c), float("nan")),
        )

    def take(self, src: Tensor, cand_key: Tensor, batch: Batch, fill: float) -> Slots:
        """Returns new slots filled from ``src`` [D, S'] indexing [old slots | batch items]
        (``-1``: empty)."""
        s_old = self.key.shape[1]
        d_idx = torch.arange(src.shape[0])[:, None].expand_as(src)
        out = Slots.empty(src.shape[0], src.shape[1], self.ctx.shape[2], fill)
        old = (src >= 0) & (src < s_old)
        if bool(old.any()):
            di, si, oi = d_idx[old], old.nonzero()[:, 1], src[old]
            out.key[di, si] = self.key[di, oi]
            out.score[di, si] = self.score[di, oi]
            out.window[di, si] = self.window[di, oi]
            out.pos[di, si] = self.pos[di, oi]
            out.ctx[di, si] = self.ctx[di, oi]
        new = src >= s_old
        if bool(new.any()):
            di, si, n = d_idx[new], new.nonzero()[:, 1], src[new] - s_old
            b, p = n // batch.length, n % batch.length
            out.key[di, si] = cand_key[di, n]
            out.score[di, si] = batch.acts[b, p, di]
            out.window[di, si] = batch.start + b
            out.pos[di, si] = p
            q = p[:, None] + batch.offsets[None]
            inside = (q >= 0) & (q < batch.length)
            vals = batch.acts[b[:, None], q.clamp(0, batch.length - 1), di[:, None]]
            out.ctx[di, si] = torch.where(inside, vals, torch.full_like(vals, float("nan")))
        return out

    def tensors(self) -> dict[str, Tensor]:
        return {f: getattr(self, f) for f in SLOT_FIELDS}

    def pick(self, src: Tensor, fill: float) -> Slots:
        """Returns new slots holding the slots ``src`` [D, S'] names (``-1``: empty)."""
        out = Slots.empty(src.shape[0], src.shape[1], self.ctx.shape[2], fill)
        used = src >= 0
        if bool(used.any()):
            di, si = used.nonzero().unbind(1)
            for f in SLOT_FIELDS:
                getattr(out, f)[di, si] = getattr(self, f)[di, src[used]]
        return out

    @staticmethod
    def cat(a: Slots, b: Slots) -> Slots:
        """Returns ``a``'s slots followed by ``b``'s (the earlier part of the corpus first)."""
        return Slots(**{f: torch.cat([getattr(a, f), getattr(b, f)], 1) for f in SLOT_FIELDS})


def merge_sorted(slots: Slots, cand: Tensor, batch: Batch, *, descending: bool) -> Slots:
    """Returns the S best of kept ∪ batch by key (stable: ties keep corpus order)."""
    keys = torch.cat([slots.key, cand], 1)
    src = _best(keys, slots.key.shape[1], descending)
    fill = float("-inf") if descending else float("inf")
    return slots.take(src, cand, batch, fill)


def _best(keys: Tensor, s: int, descending: bool) -> Tensor:
    """Returns the columns of the ``s`` best keys per row, in order (``-1``: an empty slot)."""
    order = torch.sort(keys, dim=1, descending=descending, stable=True).indices
    src = order[:, :s]
    picked = keys.gather(1, src)
    return torch.where(torch.isinf(picked), torch.full_like(src, -1), src)


def merge_binned(slots: Slots, cand: Tensor, batch: Batch, n_bins: int, per_bin: int) -> Slots:
    """Returns, per histogram bin, the ``per_bin`` smallest keys (key = bin + uniform)."""
    keys = torch.cat([slots.key, cand], 1)
    src = _best_per_bin(keys, slots.key, n_bins, per_bin)
    return slots.take(src, cand, batch, float("inf"))


def _best_per_bin(keys: Tensor, like: Tensor, n_bins: int, per_bin: int) -> Tensor:
    """Returns the columns of each bin's ``per_bin`` smallest keys, at ``bin * per_bin + rank``
    (``-1``: an empty slot); ``like`` is the kept slots' key tensor (the output's shape)."""
    sorted_keys, order = torch.sort(keys, dim=1, stable=True)
    bins = sorted_keys.floor()
    starts = torch.searchsorted(
        sorted_keys.contiguous(),
        torch.arange(n_bins, dtype=keys.dtype)[None].expand(keys.shape[0], -1).contiguous(),
    )
    finite = torch.isfinite(sorted_keys)
    b = bins.clamp(0, n_bins - 1).long()
    rank = torch.arange(keys.shape[1])[None] - starts.gather(1, b)
    keep = finite & (rank < per_bin)
    src = torch.full_like(like, -1, dtype=torch.long)
    di = keep.nonzero()[:, 0]
    src[di, (b * per_bin + rank)[keep]] = order[keep]
    return src


@dataclass
class State:
    """Everything a pass keeps between batches (module docstring, steps 1-5)."""

    top: Slots
    rnd: Slots
    hist: Slots
    counts: Tensor  # [D, n_hist] int64
    edges: Tensor  # [D, n_hist - 1]; empty until the first batch
    count: int
    total: Tensor  # [D] float64
    total_sq: Tensor
    lo: Tensor
    hi: Tensor

    @classmethod
    def new(cls, d: int, k: int, n_random: int, n_hist: int, per_bin: int, c: int) -> State:
        return cls(
            top=Slots.empty(d, k, c, float("-inf")),
            rnd=Slots.empty(d, n_random, c, float("inf")),
            hist=Slots.empty(d, n_hist * per_bin, c, float("inf")),
            counts=torch.zeros(d, n_hist, dtype=torch.long),
            edges=torch.empty(d, 0),
            count=0,
            total=torch.zeros(d, dtype=torch.float64),
            total_sq=torch.zeros(d, dtype=torch.float64),
            lo=torch.full((d,), float("inf")),
            hi=torch.full((d,), float("-inf")),
        )

    def update(
        self, batch: Batch, seed: int, index: int, n_hist: int, per_bin: int, n_bins: int
    ) -> State:
        """Returns the state after one batch (a new object: an interrupt leaves the old one)."""
        flat = batch.acts.flatten(0, 1).T.contiguous()  # [D, N], items in corpus order
        g = torch.Generator().manual_seed(seed * 1_000_003 + index)
        u_rnd = torch.rand(flat.shape, generator=g)
        u_hist = torch.rand(flat.shape, generator=g)
        edges = self.edges
        if edges.shape[1] == 0:
            q = torch.linspace(0, 1, n_hist + 1)[1:-1]
            edges = torch.quantile(flat, q, dim=1).T.contiguous()
        bins = torch.searchsorted(edges, flat, right=True)
        counts = self.counts.clone()
        counts.scatter_add_(1, bins, torch.ones_like(bins))
        f64 = flat.double()
        return State(
            top=merge_sorted(self.top, flat, batch, descending=True),
            rnd=merge_sorted(self.rnd, u_rnd, batch, descending=False)
            if self.rnd.key.shape[1]
            else self.rnd,
            hist=merge_binned(self.hist, bins.float() + u_hist * 0.999, batch, n_hist, per_bin)
            if per_bin and n_bins
            else self.hist,
            counts=counts,
            edges=edges,
            count=self.count + flat.shape[1],
            total=self.total + f64.sum(1),
            total_sq=self.total_sq + (f64 * f64).sum(1),
            lo=torch.minimum(self.lo, flat.min(1).values),
            hi=torch.maximum(self.hi, flat.max(1).values),
        )

    def merge(self, later: State) -> State:
        """Returns the state of this part of the corpus followed by ``later``'s, as one pass
        over both would leave it (step 6 of the module docstring)."""
        if not torch.equal(self.edges, later.edges):
            raise TopExamplesError("states to merge need the same histogram edges (batch 0's)")
        top, rnd = Slots.cat(self.top, later.top), Slots.cat(self.rnd, later.rnd)
        hist = Slots.cat(self.hist, later.hist)
        n_hist, width = self.counts.shape[1], self.hist.key.shape[1]
        per_bin = width // n_hist
        return State(
            top=top.pick(_best(top.key, self.top.key.shape[1], True), float("-inf")),
            rnd=rnd.pick(_best(rnd.key, self.rnd.key.shape[1], False), float("inf")),
            hist=hist.pick(_best_per_bin(hist.key, self.hist.key, n_hist, per_bin), float("inf"))
            if width
            else self.hist,
            counts=self.counts + later.counts,
            edges=self.edges,
            count=self.count + later.count,
            total=self.total + later.total,
            total_sq=self.total_sq + later.total_sq,
            lo=torch.minimum(self.lo, later.lo),
            hi=torch.maximum(self.hi, later.hi),
        )

    def tensors(self) -> dict[str, Tensor]:
        """Returns every tensor of the state, by name (what a checkpoint stores)."""
        out = {f"top.{k}": v for k, v in self.top.tensors().items()}
        out |= {f"rnd.{k}": v for k, v in self.rnd.tensors().items()}
        out |= {f"hist.{k}": v for k, v in self.hist.tensors().items()}
        out |= {
            "counts": self.counts,
            "edges": self.edges,
            "count": torch.tensor(self.count),
            "total": self.total,
            "total_sq": self.total_sq,
            "lo": self.lo,
            "hi": self.hi,
        }
        return out

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.tensors().values())

    @classmethod
    def from_tensors(cls, t: dict[str, Any]) -> State:
        """Returns the state `tensors` described."""

        def slots(prefix: str) -> Slots:
            return Slots(**{f: t[f"{prefix}.{f}"] for f in SLOT_FIELDS})

        return cls(
            top=slots("top"),
            rnd=slots("rnd"),
            hist=slots("hist"),
            counts=t["counts"],
            edges=t["edges"],
            count=int(t["count"]),
            total=t["total"],
            total_sq=t["total_sq"],
            lo=t["lo"],
            hi=t["hi"],
        )


def merge_states(states: Sequence[State]) -> State:
    """Returns the one-pass state of consecutive corpus parts, from their states in corpus order
    (each part streamed from an empty state with batch 0's histogram edges)."""
    if not states:
        raise TopExamplesError("no states to merge")
    merged = states[0]
    for later in states[1:]:
        merged = merged.merge(later)
    return merged


__all__ = ["Batch", "Slots", "State", "merge_binned", "merge_sorted", "merge_states"]
