"""Max-activating dataset examples, streamed: top-k, random and quantile samples for many
directions in one pass over a tokenised corpus, in memory that does not grow with the corpus.

Algorithm (the dataset examples of Olah et al. 2017 "Feature Visualization"; the random and
quantile-interval samples beside the top ones follow Bricken et al. 2023, "Towards
Monosemanticity", whose feature pages show examples from every activation range, because the top
examples alone make a direction look cleaner than it is):

1. Directions are read from one captured forward per batch of corpus windows: the units of a site
   (``L15.mlp.post`` gives the MLP neurons; all or a selection) and user vectors (probe or
   steering directions) at any site, scored as the projection ``x · v / |v|``. Only the sites
   needed are captured, and with ``stop_early`` the forward stops after the last block read
   (no later layers, no unembedding). Each window is one independent context.
2. Top-k: the k best kept so far and the batch's scores are concatenated and stable-sorted,
   descending. Kept items come first and batch items are in corpus order, so ties go to the
   earlier token, exactly as one stable sort of the whole corpus would: the streamed top-k equals
   the brute-force top-k, bit for bit.
3. Random examples: every (direction, token) draws a uniform key from a generator seeded by
   (seed, batch index); the ``n_random`` smallest keys are a uniform sample without replacement
   (bottom-k sampling: a reservoir sample that merges like step 2).
4. Quantile samples: on the first batch each direction gets ``n_hist`` histogram bins with edges
   at that batch's quantiles (open-ended at both ends); every token is counted in its bin, and
   each bin keeps a reservoir (step 3) of ``per_bin`` tokens. At the end the histogram bins are
   grouped into ``n_bins`` bins of about equal token counts (approximate quantiles, as exact as
   the histogram's resolution), and each group draws its samples from its bins' reservoirs in
   proportion to their counts. Each quantile bin records its value range and token fraction.
5. Running count, sum and sum of squares (float64), min and max give each direction's mean/std.
6. Every kept token also keeps the direction's activations on its context (``context`` tokens
   left and right, inside its window), so the HTML colours each context token without a second
   pass. State: directions × (k + n_random + n_hist · per_bin) × (context + 4) numbers plus
   directions × n_hist counts, whatever the corpus length.
7. With ``checkpoint`` the state is saved atomically (temp file + rename) every
   ``checkpoint_every`` batches and on Ctrl-C, and a later call with the same configuration
   resumes after the last saved batch; without it an interrupt writes nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import html
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from interplab.core.model import Model
from interplab.data.cache import atomic_write, atomic_write_text
from interplab.data.corpus import TokenizedCorpus
from interplab.provenance import Provenance, jsonable, write_json
from interplab.sites import Site, SiteLike

_FIELDS = ("key", "score", "window", "pos", "ctx")


class _Stop(Exception):
    """Raised in a pre-hook of the first block not needed, to end the forward early."""


@dataclass(frozen=True)
class Samples:
    """Kept tokens of each direction: scores, window ids, positions, context ids and activations.

    Arrays are ``[direction, *slots]``; ``window == -1`` marks an empty slot (fewer tokens than
    slots); context arrays add a last axis of ``left + 1 + right`` tokens, ``-1`` / NaN outside
    the window.
    """

    score: np.ndarray
    window: np.ndarray
    position: np.ndarray
    context_ids: np.ndarray
    context_acts: np.ndarray

    def to_dict(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in self.__dataclass_fields__}


@dataclass(frozen=True)
class TopExamplesResult:
    """Per direction: top-k, random and quantile-bin examples with contexts, and activation facts."""

    labels: list[str]  # per direction: "L15.mlp.post[7]" or the user's name
    sites: list[str]
    top: Samples  # [direction, k]
    random: Samples  # [direction, n_random]
    quantiles: Samples  # [direction, n_bins, per_bin]
    bin_ranges: np.ndarray  # [direction, n_bins, 2]: activation range of each quantile bin
    bin_fractions: np.ndarray  # [direction, n_bins, 2]: cumulative token fraction at its ends
    context: tuple[int, int]
    token_strings: dict[int, str]
    n_tokens: int
    n_windows: int
    mean: np.ndarray  # [direction]
    std: np.ndarray
    min: np.ndarray
    max: np.ndarray
    state_bytes: int
    provenance: Provenance

    @property
    def n_directions(self) -> int:
        return len(self.labels)

    def index(self, direction: str | int) -> int:
        if isinstance(direction, int):
            return direction
        if direction not in self.labels:
            raise KeyError(f"no direction {direction!r}; e.g. {self.labels[:5]}")
        return self.labels.index(direction)

    def contexts(self, direction: str | int, kind: str = "top") -> list[dict[str, Any]]:
        """Returns the kept examples of one direction: tokens, activations, the token's score."""
        d = self.index(direction)
        s: Samples = {"top": self.top, "random": self.random, "quantiles": self.quantiles}[kind]
        shape = s.score.shape[1:]
        out = []
        for slot in np.ndindex(*shape):
            w = int(s.window[(d, *slot)])
            if w < 0:
                continue
            ids, acts = s.context_ids[(d, *slot)], s.context_acts[(d, *slot)]
            keep = ids >= 0
            out.append(
                {
                    "slot": list(slot),
                    "score": float(s.score[(d, *slot)]),
                    "window": w,
                    "position": int(s.position[(d, *slot)]),
                    "tokens": [self.token_strings[int(i)] for i in ids[keep]],
                    "acts": acts[keep].tolist(),
                    "focus": int(np.flatnonzero(keep).tolist().index(self.context[0])),
                }
            )
        return out

    def summary(self) -> dict[str, Any]:
        """Returns the facts of the pass: tokens scanned, activation mean/std/min/max per direction."""
        return {
            "n_tokens": self.n_tokens,
            "n_windows": self.n_windows,
            "n_directions": self.n_directions,
            "state_bytes": self.state_bytes,
            "directions": {
                label: {
                    "mean": float(self.mean[i]),
                    "std": float(self.std[i]),
                    "min": float(self.min[i]),
                    "max": float(self.max[i]),
                    "top1": float(self.top.score[i, 0]),
                }
                for i, label in enumerate(self.labels)
            },
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "technique": "top_examples",
            **{k: getattr(self, k) for k in self.__dataclass_fields__ if k != "provenance"},
            "provenance": self.provenance.to_dict(),
        }

    def to_json(self, path: str | Path) -> Path:
        return write_json(path, self.to_dict())

    def to_html(
        self, path: str | Path, *, directions: Sequence[str | int] | None = None, limit: int = 50
    ) -> Path:
        """Writes one self-contained HTML page: per direction, its top, quantile-bin and random
        examples, each context token's background ∝ its activation (red +, blue −)."""
        chosen = [self.index(d) for d in directions] if directions else range(self.n_directions)
        parts = [
            "<!doctype html><html><head><meta charset='utf-8'><title>max-activating examples"
            f"</title><style>{_CSS}</style></head><body><h1>Max-activating dataset examples</h1>",
            f"<p>{self.n_tokens:,} tokens in {self.n_windows:,} windows of "
            f"{html.escape(str(self.provenance.config.get('corpus', '')))}; model "
            f"{html.escape(str(self.provenance.model.get('name', '')))}. Colour ∝ activation / "
            "the direction's largest |activation|; the boxed token is the example.</p>",
        ]
        for d in list(chosen)[:limit]:
            scale = float(max(abs(self.max[d]), abs(self.min[d]), 1e-12))
            parts.append(
                f"<h2>{html.escape(self.labels[d])}</h2><p class='facts'>mean "
                f"{self.mean[d]:.3g}, std {self.std[d]:.3g}, min {self.min[d]:.3g}, max "
                f"{self.max[d]:.3g} over {self.n_tokens:,} tokens</p><h3>top {self.top.score.shape[1]}"
                "</h3>"
            )
            parts += [_row(ex, scale) for ex in self.contexts(d, "top")]
            parts.append("<h3>quantile bins (approximate), low to high</h3>")
            by_bin: dict[int, list[dict[str, Any]]] = {}
            for ex in self.contexts(d, "quantiles"):
                by_bin.setdefault(ex["slot"][0], []).append(ex)
            for b in sorted(by_bin):
                lo, hi = self.bin_ranges[d, b]
                flo, fhi = self.bin_fractions[d, b]
                parts.append(
                    f"<h4>bin {b + 1}: activations {lo:.3g} to {hi:.3g} (tokens {flo:.0%}–"
                    f"{fhi:.0%})</h4>"
                )
                parts += [_row(ex, scale) for ex in by_bin[b]]
            parts.append("<h3>random tokens (uniform over the corpus)</h3>")
            parts += [_row(ex, scale) for ex in self.contexts(d, "random")]
        parts.append("</body></html>")
        target = Path(path)
        return atomic_write_text(target, "\n".join(parts))


_CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}
.ex{font-family:ui-monospace,monospace;font-size:.85em;margin:.15em 0;white-space:pre-wrap}
.ex .s{display:inline-block;width:5.5em;color:#555;text-align:right;margin-right:.6em}
.t{border-radius:2px} .f{outline:1.5px solid #000} .facts{color:#555}"""


def _row(ex: dict[str, Any], scale: float) -> str:
    spans = []
    for i, (tok, act) in enumerate(zip(ex["tokens"], ex["acts"], strict=True)):
        a = 0.0 if act != act else max(-1.0, min(1.0, act / scale))  # NaN-safe
        colour = f"rgba(220,40,40,{a:.2f})" if a >= 0 else f"rgba(40,90,220,{-a:.2f})"
        cls = "t f" if i == ex["focus"] else "t"
        text = html.escape(tok).replace("\n", "⏎")
        spans.append(
            f"<span class='{cls}' style='background:{colour}' title='{act:.4g}'>{text}</span>"
        )
    return (
        f"<div class='ex'><span class='s'>{ex['score']:.3g}</span>{''.join(spans)}"
        f"<span class='s'>w{ex['window']}:{ex['position']}</span></div>"
    )


@dataclass
class _Slots:
    """Kept tokens of every direction: a sort key, the score, where it is, its context's acts."""

    key: Tensor  # [D, S]
    score: Tensor
    window: Tensor  # int64, -1 = empty
    pos: Tensor
    ctx: Tensor  # [D, S, C]

    @classmethod
    def empty(cls, d: int, s: int, c: int, fill: float) -> _Slots:
        return cls(
            key=torch.full((d, s), fill),
            score=torch.full((d, s), float("nan")),
            window=torch.full((d, s), -1, dtype=torch.long),
            pos=torch.full((d, s), -1, dtype=torch.long),
            ctx=torch.full((d, s, c), float("nan")),
        )

    def take(self, src: Tensor, cand_key: Tensor, batch: _Batch, fill: float) -> _Slots:
        """Returns new slots filled from ``src`` [D, S'] indexing [old slots | batch items]
        (``-1``: empty)."""
        s_old = self.key.shape[1]
        d_idx = torch.arange(src.shape[0])[:, None].expand_as(src)
        out = _Slots.empty(src.shape[0], src.shape[1], self.ctx.shape[2], fill)
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
        return {f: getattr(self, f) for f in _FIELDS}


@dataclass
class _Batch:
    acts: Tensor  # [B, T, D] float32
    start: int  # window index of row 0
    length: int
    offsets: Tensor  # [C]


def _merge_sorted(slots: _Slots, cand: Tensor, batch: _Batch, *, descending: bool) -> _Slots:
    """Returns the S best of kept ∪ batch by key (stable: ties keep corpus order)."""
    keys = torch.cat([slots.key, cand], 1)
    order = torch.sort(keys, dim=1, descending=descending, stable=True).indices
    src = order[:, : slots.key.shape[1]]
    fill = float("-inf") if descending else float("inf")
    picked = keys.gather(1, src)
    src = torch.where(torch.isinf(picked), torch.full_like(src, -1), src)
    return slots.take(src, cand, batch, fill)


def _merge_binned(slots: _Slots, cand: Tensor, batch: _Batch, n_bins: int, per_bin: int) -> _Slots:
    """Returns, per histogram bin, the ``per_bin`` smallest keys (key = bin + uniform)."""
    keys = torch.cat([slots.key, cand], 1)
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
    src = torch.full_like(slots.key, -1, dtype=torch.long)
    di = keep.nonzero()[:, 0]
    src[di, (b * per_bin + rank)[keep]] = order[keep]
    return slots.take(src, cand, batch, float("inf"))


@torch.inference_mode()
def top_examples(
    model: Model,
    corpus: TokenizedCorpus | np.ndarray,
    *,
    site: SiteLike | None = "L15.mlp.post",
    neurons: Sequence[int] | None = None,
    directions: Mapping[str, tuple[SiteLike, Tensor]] | None = None,
    k: int = 20,
    n_random: int = 10,
    n_bins: int = 5,
    per_bin: int = 4,
    n_hist: int = 32,
    context: tuple[int, int] = (12, 4),
    batch_size: int = 8,
    max_tokens: int | None = None,
    seed: int = 0,
    stop_early: bool = True,
    progress: bool = True,
    checkpoint: str | Path | None = None,
    checkpoint_every: int = 50,
    corpus_name: str = "",
) -> TopExamplesResult:
    """Returns, for each neuron of ``site`` (or the selected ``neurons``) and each named
    ``(site, vector)`` direction, its top-``k`` tokens in the corpus with contexts, beside uniform
    random tokens and samples from approximate quantile bins, from one streaming pass."""
    windows = corpus.windows if isinstance(corpus, TokenizedCorpus) else np.asarray(corpus)
    if windows.ndim != 2 or windows.shape[0] == 0:
        raise ValueError(f"corpus must be [windows, tokens] with >= 1 window, got {windows.shape}")
    if min(k, n_random, n_bins, per_bin) < 0 or k < 1 or n_hist < max(n_bins, 2):
        raise ValueError("need k >= 1, n_random/n_bins/per_bin >= 0 and n_hist >= max(n_bins, 2)")
    n_win = windows.shape[0]
    if max_tokens is not None:
        n_win = min(n_win, max(1, -(-max_tokens // windows.shape[1])))
    length = int(windows.shape[1])
    readers, labels, label_sites = _readers(model, site, neurons, directions)
    sites = sorted({r[0] for r in readers}, key=lambda s: s.sort_key)
    n_dir = len(labels)
    c_left, c_right = context
    offsets = torch.arange(-c_left, c_right + 1)
    n_ctx = len(offsets)
    config = {
        "corpus": corpus_name or str(getattr(corpus, "folder", "array")),
        "corpus_sha256": _corpus_hash(corpus, windows),
        "n_windows": n_win,
        "window_len": length,
        "labels_sha256": hashlib.sha256(json.dumps(labels).encode()).hexdigest(),
        "directions_sha256": _directions_hash(directions),
        "k": k,
        "n_random": n_random,
        "n_bins": n_bins,
        "per_bin": per_bin,
        "n_hist": n_hist,
        "context": [c_left, c_right],
        "batch_size": batch_size,
        "seed": seed,
    }
    state = _State.new(n_dir, k, n_random, n_hist, per_bin, n_ctx)
    done = 0
    ckpt = Path(checkpoint) if checkpoint is not None else None
    if ckpt is not None and ckpt.is_file():
        saved = torch.load(ckpt, weights_only=True)
        if saved.get("config") == json.dumps(config, sort_keys=True):
            state, done = _State.load(saved), int(saved["batches_done"])
    stop_layer = max(s.layer for s in sites if s.layer is not None) + 1 if stop_early else None
    stopper = None
    if stop_layer is not None and stop_layer < model.dims.n_layers:
        block = model.adapter.block(model.hf, stop_layer)

        def stop(*_: Any) -> None:
            raise _Stop

        stopper = block.register_forward_pre_hook(stop)
    n_batches = -(-n_win // batch_size)
    bar = tqdm(
        total=n_win * length,
        initial=min(done * batch_size, n_win) * length,
        unit="tok",
        unit_scale=True,
        desc="max-activating examples",
        disable=not progress,
    )
    try:
        for bi in range(done, n_batches):
            start = bi * batch_size
            ids = torch.from_numpy(windows[start : min(start + batch_size, n_win)].astype(np.int64))
            acts = _activations(model, ids, sites, readers)
            state = state.update(
                _Batch(acts, start, length, offsets), seed, bi, n_hist, per_bin, n_bins
            )
            done = bi + 1
            bar.update(ids.numel())
            if ckpt is not None and done % checkpoint_every == 0:
                _save(ckpt, state, done, config)
    except KeyboardInterrupt:
        if ckpt is not None:
            _save(ckpt, state, done, config)
        raise
    finally:
        bar.close()
        if stopper is not None:
            stopper.remove()
    if ckpt is not None:
        ckpt.unlink(missing_ok=True)
    return _result(model, windows, state, labels, label_sites, config, context, n_bins, per_bin)


@dataclass
class _State:
    top: _Slots
    rnd: _Slots
    hist: _Slots
    counts: Tensor  # [D, n_hist] int64
    edges: Tensor  # [D, n_hist - 1]; empty until the first batch
    count: int
    total: Tensor  # [D] float64
    total_sq: Tensor
    lo: Tensor
    hi: Tensor

    @classmethod
    def new(cls, d: int, k: int, n_random: int, n_hist: int, per_bin: int, c: int) -> _State:
        return cls(
            top=_Slots.empty(d, k, c, float("-inf")),
            rnd=_Slots.empty(d, n_random, c, float("inf")),
            hist=_Slots.empty(d, n_hist * per_bin, c, float("inf")),
            counts=torch.zeros(d, n_hist, dtype=torch.long),
            edges=torch.empty(d, 0),
            count=0,
            total=torch.zeros(d, dtype=torch.float64),
            total_sq=torch.zeros(d, dtype=torch.float64),
            lo=torch.full((d,), float("inf")),
            hi=torch.full((d,), float("-inf")),
        )

    def update(
        self, batch: _Batch, seed: int, index: int, n_hist: int, per_bin: int, n_bins: int
    ) -> _State:
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
        return _State(
            top=_merge_sorted(self.top, flat, batch, descending=True),
            rnd=_merge_sorted(self.rnd, u_rnd, batch, descending=False)
            if self.rnd.key.shape[1]
            else self.rnd,
            hist=_merge_binned(self.hist, bins.float() + u_hist * 0.999, batch, n_hist, per_bin)
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

    def tensors(self) -> dict[str, Tensor]:
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
    def load(cls, saved: dict[str, Any]) -> _State:
        t = saved["state"]

        def slots(prefix: str) -> _Slots:
            return _Slots(**{f: t[f"{prefix}.{f}"] for f in _FIELDS})

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


def _save(path: Path, state: _State, done: int, config: dict[str, Any]) -> None:
    payload = {
        "state": state.tensors(),
        "batches_done": done,
        "config": json.dumps(config, sort_keys=True),
    }
    atomic_write(path, lambda handle: torch.save(payload, handle))


def _readers(
    model: Model,
    site: SiteLike | None,
    neurons: Sequence[int] | None,
    directions: Mapping[str, tuple[SiteLike, Tensor]] | None,
) -> tuple[list[tuple[Site, Tensor | None, Tensor | None]], list[str], list[str]]:
    """Returns (site, unit indices or None, unit vectors or None) per read, labels and sites."""
    readers: list[tuple[Site, Tensor | None, Tensor | None]] = []
    labels: list[str] = []
    label_sites: list[str] = []
    if site is not None:
        s = model.sites(site)[0]
        width = _width(model, s)
        units = list(range(width)) if neurons is None else [int(i) for i in neurons]
        bad = [i for i in units if not 0 <= i < width]
        if bad or not units:
            raise ValueError(f"neurons {bad or units} outside {s}'s 0..{width - 1}")
        readers.append((s, torch.tensor(units), None))
        labels += [f"{s}[{i}]" for i in units]
        label_sites += [str(s)] * len(units)
    for name, (dsite, vector) in (directions or {}).items():
        s = model.sites(dsite)[0]
        v = torch.as_tensor(vector, dtype=torch.float32).flatten()
        if v.numel() != _width(model, s) or float(v.norm()) == 0.0:
            raise ValueError(
                f"direction {name!r} has {v.numel()} entries (norm {float(v.norm()):.3g}); "
                f"{s} has width {_width(model, s)} and the vector must be non-zero"
            )
        readers.append((s, None, (v / v.norm())[:, None]))
        labels.append(name)
        label_sites.append(str(s))
    if not readers:
        raise ValueError("nothing to read: give site= (neurons) and/or directions=")
    if len(set(labels)) != len(labels):
        raise ValueError("direction names must be unique and differ from the neuron labels")
    return readers, labels, label_sites


def _width(model: Model, site: Site) -> int:
    if site.head is not None or site.component.startswith("attn."):
        raise ValueError(f"{site}: top examples read one vector per token (no per-head sites)")
    return model.dims.d_mlp if site.component in ("mlp.pre", "mlp.post") else model.dims.d_model


def _activations(
    model: Model,
    ids: Tensor,
    sites: list[Site],
    readers: list[tuple[Site, Tensor | None, Tensor | None]],
) -> Tensor:
    """Returns ``[batch, pos, direction]`` float32 activations of one forward."""
    with model.capture(sites) as cache, contextlib.suppress(_Stop):
        model.forward(ids.to(model.device))
    parts = []
    for s, units, vecs in readers:
        a = cache[s].float()
        if units is not None:
            parts.append(a if len(units) == a.shape[-1] else a[..., units.to(a.device)])
        else:
            parts.append(a @ vecs.to(a.device))  # type: ignore[operator]
    return torch.cat(parts, -1).cpu()


def _result(
    model: Model,
    windows: np.ndarray,
    state: _State,
    labels: list[str],
    label_sites: list[str],
    config: dict[str, Any],
    context: tuple[int, int],
    n_bins: int,
    per_bin: int,
) -> TopExamplesResult:
    offsets = np.arange(-context[0], context[1] + 1)
    length = windows.shape[1]
    used: set[int] = set()

    def samples(slots: _Slots) -> Samples:
        w, p = slots.window.numpy(), slots.pos.numpy()
        q = p[..., None] + offsets
        ok = (w[..., None] >= 0) & (q >= 0) & (q < length)
        gathered = windows[np.clip(w, 0, None)[..., None], np.clip(q, 0, length - 1)]
        ids = np.where(ok, gathered.astype(np.int64), -1)
        used.update(np.unique(ids[ids >= 0]).tolist())
        return Samples(slots.score.numpy(), w, p, ids, slots.ctx.numpy())

    top, rnd, hist = samples(state.top), samples(state.rnd), samples(state.hist)
    quant, ranges, fractions = _quantile_bins(state, hist, n_bins, per_bin, config["seed"])
    n = max(state.count, 1)
    mean = state.total.numpy() / n
    var = np.maximum(state.total_sq.numpy() / n - mean**2, 0.0)
    tok = model.tokenizer
    strings = {i: tok.decode([i]) if tok is not None else str(i) for i in sorted(used)}
    prov = Provenance(
        technique="top_examples",
        model=model.info.to_dict(),
        config=config | {"labels": labels if len(labels) <= 64 else f"{len(labels)} directions"},
        data_sha256=config["corpus_sha256"],
        seed=config["seed"],
    )
    return TopExamplesResult(
        labels=labels,
        sites=label_sites,
        top=top,
        random=rnd,
        quantiles=quant,
        bin_ranges=ranges,
        bin_fractions=fractions,
        context=context,
        token_strings=strings,
        n_tokens=state.count,
        n_windows=config["n_windows"],
        mean=mean,
        std=np.sqrt(var),
        min=state.lo.double().numpy(),
        max=state.hi.double().numpy(),
        state_bytes=state.nbytes,
        provenance=prov,
    )


def _quantile_bins(
    state: _State, hist: Samples, n_bins: int, per_bin: int, seed: int
) -> tuple[Samples, np.ndarray, np.ndarray]:
    """Returns samples grouped into ``n_bins`` approximate quantile bins, their value ranges and
    cumulative token fractions (step 4 of the module docstring)."""
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
                for name in ("score", "window", "position", "context_ids", "context_acts"):
                    getattr(out, name)[d, g, j] = getattr(hist, name)[d, slot]
    return out, ranges, fractions


def _corpus_hash(corpus: TokenizedCorpus | np.ndarray, windows: np.ndarray) -> str:
    if isinstance(corpus, TokenizedCorpus):
        return str(corpus.manifest.get("tokens_sha256", ""))
    return hashlib.sha256(np.ascontiguousarray(windows).tobytes()).hexdigest()


def _directions_hash(directions: Mapping[str, tuple[SiteLike, Tensor]] | None) -> str:
    payload = {
        name: [str(s), jsonable(torch.as_tensor(v).flatten())]
        for name, (s, v) in (directions or {}).items()
    }
    return hashlib.sha256(json.dumps(payload).encode()).hexdigest()
