"""Harvesting: a corpus streamed through the model once, many sites at a time, in shuffled blocks.

Training reads activations in *blocks*, the unit of shuffling and of resumption:

1. Each epoch orders the corpus windows by a permutation seeded with ``(seed, epoch)``; block
   ``i`` is windows ``order[i * block_windows : (i + 1) * block_windows]``, so a block is a sample
   of windows from the whole corpus, not a run of neighbouring text.
2. `ModelSource.block` runs those windows through the model in batches of ``batch_windows`` with
   `Model.activations`, which stops the forward after the deepest site asked for (no later block,
   no unembedding), and returns every site's activations as ``[tokens, width]`` float32. The
   first ``skip_first`` positions of each window are dropped: a window's first token is an
   attention sink whose residual norm is ~100x the others', and a dictionary should not spend
   capacity on it (splicing and evaluation leave those positions untouched too). Sinks also occur
   mid-window ("massive activations", Sun et al. 2024: in SmolLM2 e.g. some "\n" after "\n",
   norm ~24,000 against a median of ~150): one such token outweighs ~20,000 ordinary ones in a
   squared error, so tokens whose norm at any harvested site exceeds ``outlier_ratio`` times that
   forward's median norm are dropped as well (`outliers`; about 1 in 10,000 tokens).
3. The trainer shuffles a block's tokens with a generator seeded by ``(seed, epoch, block)``.
   Every block is a pure function of ``(epoch, index)``, so an interrupted run resumes by
   recomputing one block: no buffer is saved and the batches are bit-identical.
4. Memory: one block of every site (``block_windows * (window_len - skip_first) * width * 4``
   bytes per site), whatever the corpus size. `interplab.dictionaries.shards` writes the same
   blocks to disk once, for training several times from one harvest.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor

from interplab.configs import Config, ConfigError, positive
from interplab.core.model import Model
from interplab.data.corpus import TokenizedCorpus
from interplab.errors import UserError
from interplab.sites import Site, SiteLike


class HarvestError(UserError):
    """Activations that cannot be harvested or read back (bad site, NaN, damaged shard, full disk)."""


@dataclass(frozen=True)
class HarvestConfig(Config):
    """How windows are grouped: per block (the shuffling unit) and per forward pass."""

    block_windows: int = 256
    batch_windows: int = 16
    skip_first: int = 1
    outlier_ratio: float | None = 10.0
    seed: int = 0

    def check(self) -> None:
        if self.outlier_ratio is not None and self.outlier_ratio <= 1:
            raise ConfigError(f"outlier_ratio must exceed 1 (or be None), got {self.outlier_ratio}")
        positive("block_windows", self.block_windows)
        positive("batch_windows", self.batch_windows)
        positive("skip_first", self.skip_first, allow_zero=True)


class ActivationSource(Protocol):
    """Blocks of activations ``{site: [tokens, width]}``, a pure function of (epoch, index)."""

    sites: tuple[Site, ...]
    widths: dict[Site, int]
    n_blocks: int

    def block(self, epoch: int, index: int) -> dict[Site, Tensor]: ...

    def fingerprint(self) -> dict[str, Any]: ...


def site_width(model: Model, site: Site) -> int:
    """Returns the width of one token's activation vector at ``site`` (heads flattened)."""
    d = model.dims
    c = site.component
    if c == "attn.pattern":
        raise HarvestError(
            f"{site} holds attention patterns, not vectors; dictionaries read vectors"
        )
    if c in ("mlp.pre", "mlp.post"):
        return d.d_mlp
    if c == "logits":
        return d.d_vocab
    if c in ("attn.q", "attn.z") or (c in ("attn.k", "attn.v") and model.dims.group_size == 1):
        return d.d_head if site.head is not None else d.n_heads * d.d_head
    if c in ("attn.k", "attn.v"):
        return d.d_head if site.head is not None else d.n_kv_heads * d.d_head
    return d.d_model


def token_vectors(value: Tensor, skip_first: int) -> Tensor:
    """Returns ``[batch * (pos - skip_first), width]`` float32 from a site's ``[batch, pos, ...]``."""
    b, t = value.shape[:2]
    return value[:, skip_first:].reshape(b * (t - skip_first), -1).float()


def outliers(values: Sequence[Tensor], ratio: float | None) -> Tensor:
    """Returns a bool mask over the leading axes: tokens whose norm at any of ``values``
    (``[..., width]`` each) exceeds ``ratio`` times that tensor's median token norm."""
    shape = values[0].shape[:-1]
    mask = torch.zeros(shape, dtype=torch.bool, device=values[0].device)
    if ratio is None:
        return mask
    for v in values:
        norms = v.float().norm(dim=-1)
        mask |= norms > ratio * norms.median()
    return mask


def check_finite(site: Site, x: Tensor, where: str) -> None:
    """Raises HarvestError naming ``site`` and ``where`` if ``x`` holds NaN or inf."""
    bad = ~torch.isfinite(x)
    if bool(bad.any()):
        raise HarvestError(
            f"{int(bad.sum())} non-finite activations (NaN or inf) at {site} in {where}; a "
            "dictionary cannot be trained on them (check the model's dtype: float16 overflows)"
        )


class ModelSource:
    """Blocks computed live from a model and a tokenised corpus (nothing written to disk)."""

    def __init__(
        self,
        model: Model,
        corpus: TokenizedCorpus | np.ndarray,
        sites: Sequence[SiteLike],
        config: HarvestConfig | None = None,
    ) -> None:
        self.model = model
        self.config = config or HarvestConfig()
        self.windows = corpus.windows if isinstance(corpus, TokenizedCorpus) else corpus
        self.corpus_label = (
            corpus.folder.name if isinstance(corpus, TokenizedCorpus) else _array_label(corpus)
        )
        if self.windows.ndim != 2 or self.windows.shape[0] == 0:
            raise HarvestError(f"a corpus is [windows, tokens], got shape {self.windows.shape}")
        if self.windows.shape[1] <= self.config.skip_first:
            raise HarvestError(
                f"windows of {self.windows.shape[1]} tokens leave nothing after skip_first="
                f"{self.config.skip_first}"
            )
        self.sites = tuple(dict.fromkeys(model.sites(list(sites))))
        self.widths = {s: site_width(model, s) for s in self.sites}
        self.n_windows = int(self.windows.shape[0])
        self.n_blocks = math.ceil(self.n_windows / self.config.block_windows)
        self.tokens_per_window = int(self.windows.shape[1]) - self.config.skip_first
        self._order: tuple[int, np.ndarray] | None = None

    def window_ids(self, epoch: int, index: int) -> np.ndarray:
        """Returns the corpus windows of block ``index`` in epoch ``epoch``."""
        if self._order is None or self._order[0] != epoch:
            rng = np.random.default_rng([self.config.seed, epoch])
            self._order = (epoch, rng.permutation(self.n_windows))
        size = self.config.block_windows
        return self._order[1][index * size : (index + 1) * size]

    def block(self, epoch: int, index: int) -> dict[Site, Tensor]:
        """Returns ``{site: [tokens, width]}`` float32 for block ``index`` of ``epoch``."""
        ids = self.window_ids(epoch, index)
        return self.activations(ids, where=f"block {index} of epoch {epoch}")

    def activations(self, window_ids: np.ndarray, where: str = "the corpus") -> dict[Site, Tensor]:
        """Returns ``{site: [tokens, width]}`` float32 on the CPU (where shards are written and
        dictionaries train, whatever device the model runs on) of the given windows, one forward
        per batch."""
        parts: dict[Site, list[Tensor]] = {s: [] for s in self.sites}
        step = self.config.batch_windows
        for start in range(0, len(window_ids), step):
            chunk = np.sort(window_ids[start : start + step])
            ids = torch.from_numpy(np.asarray(self.windows[chunk], dtype=np.int64))
            cache = self.model.activations(ids, list(self.sites))
            vectors = {s: token_vectors(cache[s], self.config.skip_first) for s in self.sites}
            keep = ~outliers(list(vectors.values()), self.config.outlier_ratio)
            for s in self.sites:
                parts[s].append(vectors[s][keep])
        out = {s: torch.cat(v).cpu() for s, v in parts.items()}
        for s, x in out.items():
            check_finite(s, x, where)
        return out

    def fingerprint(self) -> dict[str, Any]:
        """Returns what identifies this stream: model weights, corpus, sites, grouping."""
        return {
            "source": "model",
            "model": self.model.info.name,
            "weights_sha256": self.model.info.weights_sha256,
            "corpus": self.corpus_label,
            "n_windows": self.n_windows,
            "sites": [str(s) for s in self.sites],
            "harvest": self.config.to_dict(),
        }


class TensorSource:
    """Blocks cut from activations already in memory (tests, benchmarks, small experiments):
    block ``i`` of an epoch is the ``order[i]``-th run of ``block_tokens`` rows."""

    def __init__(
        self, activations: dict[Site, Tensor], block_tokens: int = 65536, seed: int = 0
    ) -> None:
        if not activations:
            raise HarvestError("no activations given")
        sizes = {int(x.shape[0]) for x in activations.values()}
        if len(sizes) != 1:
            raise HarvestError(f"every site needs the same number of tokens, got {sorted(sizes)}")
        self.data = {Site.parse(s): x.float() for s, x in activations.items()}
        self.sites = tuple(self.data)
        self.widths = {s: int(x.shape[-1]) for s, x in self.data.items()}
        self.tokens = sizes.pop()
        self.block_tokens = block_tokens
        self.n_blocks = max(1, math.ceil(self.tokens / block_tokens))
        self.seed = seed
        for s, x in self.data.items():
            check_finite(s, x, "the given activations")

    def block(self, epoch: int, index: int) -> dict[Site, Tensor]:
        order = np.random.default_rng([self.seed, epoch]).permutation(self.n_blocks)
        start = int(order[index]) * self.block_tokens
        return {s: x[start : start + self.block_tokens] for s, x in self.data.items()}

    def fingerprint(self) -> dict[str, Any]:
        h = hashlib.sha256()
        for s in self.sites:
            h.update(str(s).encode())
            h.update(self.data[s][: min(self.tokens, 256)].numpy().tobytes())
        return {
            "source": "tensors",
            "tokens": self.tokens,
            "sha": h.hexdigest()[:16],
            "block_tokens": self.block_tokens,
            "seed": self.seed,
        }


def _array_label(windows: np.ndarray) -> str:
    digest = hashlib.sha256(np.ascontiguousarray(windows[: min(len(windows), 64)]).tobytes())
    return f"array-{windows.shape[0]}x{windows.shape[1]}-{digest.hexdigest()[:12]}"


def fingerprint_hash(fingerprint: dict[str, Any]) -> str:
    """Returns a short stable hash of a fingerprint dict."""
    return hashlib.sha256(json.dumps(fingerprint, sort_keys=True).encode()).hexdigest()[:16]


__all__ = [
    "ActivationSource",
    "HarvestConfig",
    "HarvestError",
    "ModelSource",
    "TensorSource",
    "check_finite",
    "fingerprint_hash",
    "outliers",
    "site_width",
    "token_vectors",
]
