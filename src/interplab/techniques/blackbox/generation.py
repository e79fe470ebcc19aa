"""Batched sampling: many continuations of one prompt, the prompt computed once.

Algorithm (the prefix-cache engine; models with partial forwards, the Llama family):

1. Run the prompt once with `Model.base_run`: HF's keys and values of every layer (after rotary)
   and the next-token logits.
2. For each chunk of ``batch_size`` samples, allocate key/value buffers ``[batch, kv_head,
   prompt + new, d_head]`` and copy the prompt's keys into every row: the prompt is never
   recomputed, whatever the number of samples.
3. Each step: draw one token per live row (temperature, top-k, nucleus top-p, from a generator
   seeded by ``seed``, so a run is deterministic given its seed and batch size); embed it; run
   HF's own decoder layers on that one position with `Model.partial` over the buffers, capturing
   each layer's ``attn.k``/``attn.v``; rotate the new keys with the partial's rotary embeddings
   (HF's rotary module's output, the same cos/sin HF applies) and write both into the buffers;
   unembed the last residual (`Model.unembed`).
4. A row stops at an end token (the tokenizer's end of turn by default) or ``max_new_tokens``;
   finished rows leave the batch, so later steps cost only the live rows.

Models without partial forwards take the plain engine: the whole sequence through
`Model.forward` at every step (exact, quadratic in length; same sampler and seeds). The tests
check both engines against each other and against HF's ``generate`` (greedy).

Each sample also keeps its log-probability under the model at temperature 1 (the sum over its
tokens), so samples can be weighed or compared without re-running the model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from interplab.configs import Config, ConfigError, positive
from interplab.core.model import Model
from interplab.core.partial import BaseRun
from interplab.errors import UserError
from interplab.progress import progress_bar
from interplab.sites import Site


class GenerationError(UserError):
    """Prompts or options that cannot be sampled from."""


@dataclass(frozen=True)
class SamplingConfig(Config):
    """How to sample: ``n`` continuations of at most ``max_new_tokens`` per prompt.

    ``temperature`` 0 is greedy; ``top_k`` 0 and ``top_p`` 1 switch those filters off;
    ``batch_size`` rows share one forward (the seed fixes the draws for a given batch size).
    """

    n: int = 16
    max_new_tokens: int = 48
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    seed: int = 0
    batch_size: int = 32

    def check(self) -> None:
        positive("n", self.n)
        positive("max_new_tokens", self.max_new_tokens)
        positive("temperature", self.temperature, allow_zero=True)
        positive("top_k", self.top_k, allow_zero=True)
        positive("batch_size", self.batch_size)
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"top_p must lie in (0, 1], got {self.top_p}")
        if self.n > 100_000 or self.max_new_tokens > 4096:
            raise ConfigError("n is at most 100000 and max_new_tokens at most 4096")


@dataclass(frozen=True)
class Samples:
    """The continuations of one prompt: new token ids and text per sample."""

    prompt_ids: list[int]
    ids: list[list[int]]  # new tokens of each sample, end token excluded
    texts: list[str]
    finished: list[bool]  # stopped at an end token (else cut at max_new_tokens)
    logprob: np.ndarray  # [n] sum of the model's log-probabilities (temperature 1) of the tokens
    engine: str  # "prefix-cache" or "plain"


def sample(
    model: Model,
    prompt: str | Sequence[int],
    config: SamplingConfig | None = None,
    *,
    stop_ids: Sequence[int] | None = None,
    progress: bool = False,
) -> Samples:
    """Returns ``config.n`` sampled continuations of ``prompt`` (text, tokenised without extra
    special tokens, or token ids). Stops at ``stop_ids`` (default: the tokenizer's end token)."""
    cfg = config if config is not None else SamplingConfig()
    ids = _prompt_ids(model, prompt)
    stops = _stop_ids(model, stop_ids)
    engine = "prefix-cache" if model.supports_partial() else "plain"
    gen = torch.Generator().manual_seed(cfg.seed)
    chunks = [min(cfg.batch_size, cfg.n - s) for s in range(0, cfg.n, cfg.batch_size)]
    new: list[list[int]] = []
    finished: list[bool] = []
    logprob: list[float] = []
    with torch.no_grad(), progress_bar(cfg.n, "sampling", progress) as advance:
        base = model.base_run(torch.tensor([ids])) if engine == "prefix-cache" else None
        for m in chunks:
            if base is not None:
                out = _decode_cached(model, base, m, cfg, stops, gen)
            else:
                out = _decode_plain(model, ids, m, cfg, stops, gen)
            new += out[0]
            finished += out[1]
            logprob += out[2]
            advance(m)
    tok = model.tokenizer
    texts = [tok.decode(t, skip_special_tokens=True) if tok else "" for t in new]
    return Samples(ids, new, texts, finished, np.asarray(logprob, dtype=np.float64), engine)


def _prompt_ids(model: Model, prompt: str | Sequence[int]) -> list[int]:
    if isinstance(prompt, str):
        if not prompt:
            raise GenerationError("the prompt is empty")
        if model.tokenizer is None:
            raise GenerationError("this model has no tokenizer: pass token ids")
        ids = list(model.tokenizer(prompt, add_special_tokens=False)["input_ids"])
    else:
        ids = [int(i) for i in prompt]
    if not ids:
        raise GenerationError("the prompt has no tokens")
    if min(ids) < 0 or max(ids) >= model.dims.d_vocab:
        raise GenerationError(f"token ids must lie in 0..{model.dims.d_vocab - 1}")
    return ids


def _stop_ids(model: Model, stop_ids: Sequence[int] | None) -> set[int]:
    if stop_ids is not None:
        return {int(i) for i in stop_ids}
    eos = getattr(model.tokenizer, "eos_token_id", None)
    return set() if eos is None else {int(eos)}


def pick(logits: Tensor, cfg: SamplingConfig, gen: torch.Generator) -> Tensor:
    """Returns one token id per row of ``logits`` ``[rows, vocab]`` drawn as ``cfg`` says."""
    logits = logits.float()
    if cfg.temperature == 0:
        return logits.argmax(-1)
    logits = logits / cfg.temperature
    if cfg.top_k:
        kth = logits.topk(min(cfg.top_k, logits.shape[-1]), dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if cfg.top_p < 1:
        sorted_logits, order = logits.sort(-1, descending=True)
        cum = sorted_logits.softmax(-1).cumsum(-1)
        # Drop a token once the mass before it already reaches top_p (the first always stays).
        drop_sorted = (cum - sorted_logits.softmax(-1)) >= cfg.top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    # Inverse-CDF draw: one uniform per row against the cumulative probabilities (exact, and
    # several times faster than torch.multinomial over a 50k vocabulary on CPU).
    cdf = logits.softmax(-1).cumsum(-1)
    u = torch.rand((logits.shape[0], 1), generator=gen).to(cdf.device) * cdf[:, -1:]
    return torch.searchsorted(cdf, u).clamp(max=logits.shape[-1] - 1)[:, 0]


def _keep(active: Tensor, live: list[int]) -> Tensor:
    """Returns the indices into ``active`` of the rows still live."""
    alive = set(live)
    return torch.tensor([i for i, r in enumerate(active.tolist()) if r in alive], dtype=torch.long)


class _Rows:
    """Bookkeeping of one chunk: each row's tokens, log-probability and whether it stopped."""

    def __init__(self, m: int, stops: set[int]) -> None:
        self.tokens: list[list[int]] = [[] for _ in range(m)]
        self.logprob = [0.0] * m
        self.done = [False] * m
        self.stops = stops

    def add(self, rows: Tensor, logits: Tensor, chosen: Tensor) -> None:
        lp = logits.float().log_softmax(-1).gather(-1, chosen[:, None])[:, 0]
        for r, t, v in zip(rows.tolist(), chosen.tolist(), lp.tolist(), strict=True):
            self.logprob[r] += v
            if t in self.stops:
                self.done[r] = True
            else:
                self.tokens[r].append(t)

    def live(self) -> list[int]:
        return [r for r, d in enumerate(self.done) if not d]

    def result(self) -> tuple[list[list[int]], list[bool], list[float]]:
        return self.tokens, self.done, self.logprob


def _decode_cached(
    model: Model,
    base: BaseRun,
    m: int,
    cfg: SamplingConfig,
    stops: set[int],
    gen: torch.Generator,
) -> tuple[list[list[int]], list[bool], list[float]]:
    n_layers = model.dims.n_layers
    p = base.length
    total = p + cfg.max_new_tokens
    keys = [_buffer(k, m, total) for k in base.keys]
    values = [_buffer(v, m, total) for v in base.values]
    sites = [Site(i, c) for i in range(n_layers) for c in ("attn.k", "attn.v")]
    rows = _Rows(m, stops)
    active = torch.arange(m)
    logits = base.logits[0, -1].expand(m, -1)
    for step in range(cfg.max_new_tokens):
        chosen = pick(logits, cfg, gen)
        rows.add(active, logits, chosen)
        live = rows.live()
        if not live or step == cfg.max_new_tokens - 1:
            break
        keep = _keep(active, live)
        active, chosen = active[keep], chosen[keep]
        length = p + step
        # The partial reads only keys and values; the other fields are empty views of the
        # right shapes (core has no decode-step API yet, see docs/blackbox.md).
        view = BaseRun(
            tokens=base.tokens,
            resid=[],
            keys=[k[:, :, :length] for k in keys],
            values=[v[:, :, :length] for v in values],
            logits=base.logits.new_zeros(()).expand(m, length, base.logits.shape[-1]),
            cache=base.cache,
        )
        part = model.partial(length, length + 1, view)
        with model.capture(sites) as cache:
            hidden = part.layers(0, n_layers, model.embed(chosen[:, None]), active)
        cos, sin = part.position_embeddings
        for i in range(n_layers):
            k = _rotate(cache[Site(i, "attn.k")], cos, sin)  # [rows, 1, kv_head, d_head]
            keys[i][active, :, length] = k[:, 0]
            values[i][active, :, length] = cache[Site(i, "attn.v")][:, 0]
        logits = model.unembed(hidden[:, -1])
    return rows.result()


def _buffer(prefix: Tensor, m: int, total: int) -> Tensor:
    """Returns ``[m, kv_head, total, d_head]`` with the prompt's keys in every row."""
    _, heads, p, d = prefix.shape
    out = prefix.new_empty((m, heads, total, d))
    out[:, :, :p] = prefix[:1]
    return out


def _rotate(k: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Returns keys ``[rows, pos, kv_head, d_head]`` rotated as HF's Llama attention rotates
    them (``k * cos + rotate_half(k) * sin``, cos and sin ``[1, pos, d_head]``)."""
    half = k.shape[-1] // 2
    rotated = torch.cat((-k[..., half:], k[..., :half]), dim=-1)
    return k * cos[:, :, None] + rotated * sin[:, :, None]


def _decode_plain(
    model: Model,
    ids: list[int],
    m: int,
    cfg: SamplingConfig,
    stops: set[int],
    gen: torch.Generator,
) -> tuple[list[list[int]], list[bool], list[float]]:
    rows = _Rows(m, stops)
    seq = torch.tensor([ids] * m)
    active = torch.arange(m)
    logits = model.forward(seq[:1])[0, -1].expand(m, -1)
    for step in range(cfg.max_new_tokens):
        chosen = pick(logits, cfg, gen)
        rows.add(active, logits, chosen)
        live = rows.live()
        if not live or step == cfg.max_new_tokens - 1:
            break
        keep = _keep(active, live)
        active = active[keep]
        seq = torch.cat([seq[keep], chosen[keep][:, None]], dim=1)
        logits = model.forward(seq)[:, -1]
    return rows.result()


__all__ = ["GenerationError", "Samples", "SamplingConfig", "pick", "sample"]
