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
   (`Model.activations`: no later layers, no unembedding). Each window is one independent
   context.
2. The streaming state (`state`) keeps per direction the exact top-k (ties to the earlier token,
   equal to a brute-force sort bit for bit), a uniform random sample (bottom-k keys), histogram
   counts with a reservoir per histogram bin, and running moments; each kept token keeps the
   direction's activations on its context.
3. With ``checkpoint`` the state is saved atomically every ``checkpoint_every`` batches and on
   Ctrl-C, and a later call with the same corpus, directions and options resumes after the last
   saved batch (`checkpoint`); without it an interrupt writes nothing.
4. At the end (`finish`) contexts are read back from the corpus, the histogram is grouped into
   approximate quantile bins with samples drawn from each, and mean/std/min/max are reported.

`top_examples` is `prepare` (step 1's choices, checked), `stream` over the batches (steps 1-3)
and `conclude` (step 4); a scale-out streams parts of the corpus with the same three and merges
their states (`state.merge_states`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from interplab.core.model import Model
from interplab.data.corpus import TokenizedCorpus
from interplab.dictionaries.attach import Resolved, encode_at, resolve
from interplab.progress import progress_bar
from interplab.provenance import Provenance, jsonable
from interplab.results.top_examples import (
    TopExamplesConfig,
    TopExamplesError,
    TopExamplesResult,
    Unit,
)
from interplab.sites import FeatureSite, Site, SiteLike, is_feature_site
from interplab.store import recorded
from interplab.techniques.top_examples import checkpoint as checkpoints
from interplab.techniques.top_examples.finish import finish
from interplab.techniques.top_examples.state import Batch, State

Directions = Mapping[str, tuple[SiteLike, Tensor]]


@dataclass(frozen=True)
class _Reader:
    """How one site's activations become directions: unit indices, or unit vectors ``[d, m]``."""

    site: Site
    units: Tensor | None
    vectors: Tensor | None
    feature: Resolved | None = None  # read a dictionary's features (``units`` index them)


@torch.inference_mode()
@recorded("top_examples")
def top_examples(
    model: Model,
    corpus: TokenizedCorpus | np.ndarray,
    *,
    site: SiteLike | FeatureSite | None = "L15.mlp.post",
    neurons: Sequence[int] | None = None,
    directions: Directions | None = None,
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
    checkpoint_every: int = 50,
    config: TopExamplesConfig | None = None,
    progress: bool = True,
    checkpoint: str | Path | None = None,
    corpus_name: str = "",
) -> TopExamplesResult:
    """Returns, for each neuron of ``site`` (or the selected ``neurons``) and each named
    ``(site, vector)`` direction, its top-``k`` tokens in the corpus with contexts, beside uniform
    random tokens and samples from approximate quantile bins, from one streaming pass.
    ``config`` replaces the sampling and reading options (k ... checkpoint_every)."""
    cfg = config or TopExamplesConfig(
        k=k,
        n_random=n_random,
        n_bins=n_bins,
        per_bin=per_bin,
        n_hist=n_hist,
        context=(int(context[0]), int(context[1])),
        batch_size=batch_size,
        max_tokens=max_tokens,
        seed=seed,
        stop_early=stop_early,
        checkpoint_every=checkpoint_every,
    )
    p = prepare(
        model, corpus, site=site, neurons=neurons, directions=directions, config=cfg,
        corpus_name=corpus_name,
    )  # fmt: skip
    state = p.reading.new_state()
    done = 0
    ckpt = Path(checkpoint) if checkpoint is not None else None
    resumed = checkpoints.resume(ckpt, p.identity)
    if resumed is not None:
        state, done = resumed
    length = p.reading.length
    with progress_bar(
        p.n_windows * length, "max-activating examples (tokens)", progress
    ) as advance:
        advance(min(done * cfg.batch_size, p.n_windows) * length)
        try:
            rest = p.windows[done * cfg.batch_size : p.n_windows]
            states = stream(model, p.reading, rest, done, state)
            for state in states:  # the last complete state stays in ``state`` on Ctrl-C
                done += 1
                advance(min(cfg.batch_size, p.n_windows - (done - 1) * cfg.batch_size) * length)
                if ckpt is not None and done % cfg.checkpoint_every == 0:
                    checkpoints.save(ckpt, state, done, p.identity)
        except KeyboardInterrupt:
            if ckpt is not None:
                checkpoints.save(ckpt, state, done, p.identity)
            raise
    if ckpt is not None:
        ckpt.unlink(missing_ok=True)
    return conclude(model, p, state)


@dataclass(frozen=True)
class Reading:
    """What every batch of a pass reads: the sites captured, how each becomes directions, the
    options, and the window length (all a worker streaming a part of the corpus needs)."""

    readers: tuple[_Reader, ...]
    sites: tuple[Site, ...]
    cfg: TopExamplesConfig
    length: int

    @property
    def offsets(self) -> Tensor:
        return torch.arange(-self.cfg.context[0], self.cfg.context[1] + 1)

    def new_state(self, edges: Tensor | None = None) -> State:
        """Returns the empty state (with the histogram ``edges`` of batch 0, if given)."""
        cfg = self.cfg
        n_dir = sum(len(r.units) if r.units is not None else 1 for r in self.readers)
        state = State.new(n_dir, cfg.k, cfg.n_random, cfg.n_hist, cfg.per_bin, len(self.offsets))
        return state if edges is None else replace(state, edges=edges)


@dataclass(frozen=True)
class Pass:
    """One pass prepared on the driver: the corpus windows (``n_windows`` of them read), its
    `Reading`, the directions in result order, and what identifies the pass (checkpoints)."""

    windows: np.ndarray
    n_windows: int
    reading: Reading
    units: tuple[Unit, ...]
    corpus: str
    corpus_sha256: str
    identity: dict[str, Any]

    @property
    def n_batches(self) -> int:
        return -(-self.n_windows // self.reading.cfg.batch_size)


def prepare(
    model: Model,
    corpus: TokenizedCorpus | np.ndarray,
    *,
    site: SiteLike | FeatureSite | None,
    neurons: Sequence[int] | None,
    directions: Directions | None,
    config: TopExamplesConfig,
    corpus_name: str = "",
) -> Pass:
    """Returns the checked, prepared pass of `top_examples` (step 1: what is read, and how)."""
    cfg = config
    windows = corpus.windows if isinstance(corpus, TokenizedCorpus) else np.asarray(corpus)
    if windows.ndim != 2 or windows.shape[0] == 0:
        raise TopExamplesError(
            f"corpus must be [windows, tokens] with >= 1 window, got shape {windows.shape}"
        )
    n_win, length = windows.shape[0], int(windows.shape[1])
    if cfg.max_tokens is not None:
        n_win = min(n_win, max(1, -(-cfg.max_tokens // length)))
    readers, units = _readers(model, site, neurons, directions)
    sites = sorted({r.site for r in readers}, key=lambda s: s.sort_key)
    name = corpus_name or str(getattr(corpus, "folder", "array"))
    corpus_sha256 = _corpus_hash(corpus, windows)
    identity = {  # what the state depends on: a checkpoint resumes only the same pass
        "corpus": name,
        "corpus_sha256": corpus_sha256,
        "n_windows": n_win,
        "window_len": length,
        "labels_sha256": _sha256(json.dumps([u.label for u in units])),
        "directions_sha256": _directions_hash(directions),
        **{f: getattr(cfg, f) for f in ("k", "n_random", "n_bins", "per_bin", "n_hist")},
        "context": list(cfg.context),
        "batch_size": cfg.batch_size,
        "seed": cfg.seed,
    }
    reading = Reading(tuple(readers), tuple(sites), cfg, length)
    return Pass(windows, n_win, reading, tuple(units), name, corpus_sha256, identity)


def stream(
    model: Model, reading: Reading, windows: np.ndarray, first_batch: int, state: State
) -> Iterator[State]:
    """Yields the state after each batch of ``windows``: the corpus's windows from batch
    ``first_batch`` on (window and batch numbers stay the corpus's, so parts streamed apart
    merge into the one-pass state, `state.merge_states`)."""
    cfg = reading.cfg
    for j, start in enumerate(range(0, windows.shape[0], cfg.batch_size)):
        bi = first_batch + j
        ids = windows[start : start + cfg.batch_size].astype(np.int64)
        acts = _activations(
            model, torch.from_numpy(ids), list(reading.sites), list(reading.readers),
            cfg.stop_early,
        )  # fmt: skip
        batch = Batch(acts, bi * cfg.batch_size, reading.length, reading.offsets)
        state = state.update(batch, cfg.seed, bi, cfg.n_hist, cfg.per_bin, cfg.n_bins)
        yield state


def conclude(model: Model, p: Pass, state: State) -> TopExamplesResult:
    """Returns the result of the pass ``p`` from its final state (step 4)."""
    tok = model.tokenizer
    cfg = p.reading.cfg
    prov = Provenance(
        technique="top_examples",
        model=model.info.to_dict(),
        config=cfg.to_dict(),
        data_sha256=p.corpus_sha256,
        seed=cfg.seed,
    )
    return finish(
        p.windows,
        state,
        list(p.units),
        cfg,
        corpus=p.corpus,
        n_windows=p.n_windows,
        decode=None if tok is None else (lambda i: tok.decode([i])),
        provenance=prov,
    )


def _readers(
    model: Model,
    site: SiteLike | FeatureSite | None,
    neurons: Sequence[int] | None,
    directions: Directions | None,
) -> tuple[list[_Reader], list[Unit]]:
    """Returns how each site is read and the directions (`Unit`) in result order."""
    readers: list[_Reader] = []
    units: list[Unit] = []
    if site is not None and is_feature_site(site):
        r = resolve(model, site)  # type: ignore[arg-type]
        chosen = r.features if neurons is None else [int(i) for i in neurons]
        bad = [i for i in chosen if not 0 <= i < r.dictionary.d_sae]
        if bad or not chosen:
            raise TopExamplesError(
                f"features {bad or chosen} outside {r.site}'s 0..{r.dictionary.d_sae - 1}"
            )
        readers.append(_Reader(r.read, torch.tensor(chosen), None, r))
        units += [Unit(r.read, i, str(r.site.with_feature(i))) for i in chosen]
    elif site is not None:
        s = model.sites(site)[0]  # type: ignore[arg-type]
        width = _width(model, s)
        chosen = list(range(width)) if neurons is None else [int(i) for i in neurons]
        bad = [i for i in chosen if not 0 <= i < width]
        if bad or not chosen:
            raise TopExamplesError(f"neurons {bad or chosen} outside {s}'s 0..{width - 1}")
        readers.append(_Reader(s, torch.tensor(chosen), None))
        units += [Unit(s, i) for i in chosen]
    for name, (dsite, vector) in (directions or {}).items():
        s = model.sites(dsite)[0]
        v = torch.as_tensor(vector, dtype=torch.float32).flatten()
        norm = float(v.norm())
        if v.numel() != _width(model, s) or not np.isfinite(norm) or norm == 0.0:
            raise TopExamplesError(
                f"direction {name!r} has {v.numel()} entries (norm {norm:.3g}); {s} has width "
                f"{_width(model, s)} and the vector must be finite and non-zero"
            )
        readers.append(_Reader(s, None, (v / v.norm())[:, None]))
        units.append(Unit(s, None, name))
    if not readers:
        raise TopExamplesError("nothing to read: give site= (neurons) and/or directions=")
    labels = [u.label for u in units]
    if len(set(labels)) != len(labels):
        raise TopExamplesError("direction names must be unique and differ from the neuron labels")
    return readers, units


def _width(model: Model, site: Site) -> int:
    if site.head is not None or site.component.startswith("attn."):
        raise TopExamplesError(
            f"{site}: top examples read one vector per token (no per-head sites)"
        )
    if site.component == "logits":
        raise TopExamplesError("logits are not directions; read final_norm or a residual site")
    return model.dims.d_mlp if site.component in ("mlp.pre", "mlp.post") else model.dims.d_model


def _activations(
    model: Model, ids: Tensor, sites: list[Site], readers: list[_Reader], stop_early: bool
) -> Tensor:
    """Returns ``[batch, pos, direction]`` float32 activations of one (possibly stopped) forward."""
    cache = model.activations(ids, sites, stop_early=stop_early)
    parts = []
    for r in readers:
        a = cache[r.site].float()
        if r.feature is not None:
            assert r.units is not None
            parts.append(encode_at(r.feature, cache[r.site], r.units.tolist()))
        elif r.units is not None:
            parts.append(a if len(r.units) == a.shape[-1] else a[..., r.units.to(a.device)])
        else:
            parts.append(a @ r.vectors.to(a.device))  # type: ignore[union-attr]
    return torch.cat(parts, -1).cpu()


def _corpus_hash(corpus: TokenizedCorpus | np.ndarray, windows: np.ndarray) -> str:
    if isinstance(corpus, TokenizedCorpus):
        return str(corpus.manifest.get("tokens_sha256", ""))
    return hashlib.sha256(np.ascontiguousarray(windows).tobytes()).hexdigest()


def _directions_hash(directions: Directions | None) -> str:
    payload = {
        name: [str(s), jsonable(torch.as_tensor(v).flatten())]
        for name, (s, v) in (directions or {}).items()
    }
    return _sha256(json.dumps(payload))


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


__all__ = ["Directions", "Pass", "Reading", "conclude", "prepare", "stream", "top_examples"]
