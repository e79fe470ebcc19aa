"""Max-activating examples over corpus shards: each task streams a run of batches, the driver
merges the streaming states into the one-pass state and finishes the result.

1. The driver prepares the pass (`stream.prepare`: the directions, the sites read, the options)
   and streams the corpus's first batch itself: that batch's quantiles are the histogram edges
   every part of the corpus shares (`state`, step 3).
2. The other batches are cut into ``tasks`` contiguous shards of whole batches, so every forward
   reads the same windows as in the one-pass stream; a task carries its windows and the number
   of its first batch; the `Reading` and the edges go to each worker once.
3. A worker streams its shard from an empty state with those edges (`stream.stream`, which keeps
   the corpus's window and batch numbers: the random keys are seeded by the global batch index)
   and returns the state's tensors; finished shards are checkpointed (`run_tasks`).
4. The driver merges batch 0's state and the shards' in corpus order (`state.merge_states`: top-k
   of the union with ties to the earlier token, bottom-k random keys, per-bin reservoirs, summed
   counts) and finishes into the local `TopExamplesResult` (`stream.conclude`). With the same
   device, dtype and thread count every kept example (scores, windows, positions, contexts), the
   quantile bins, counts, min and max equal the local `top_examples`'s bit for bit; mean and std
   come from float64 sums added in another order (equal to ~1e-15 relative).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from interplab.core.model import Model
from interplab.data.corpus import TokenizedCorpus
from interplab.distributed.backend import Backend, DistributedError, make_backend
from interplab.distributed.tasks import run_tasks
from interplab.results.top_examples import TopExamplesConfig, TopExamplesResult
from interplab.sites import FeatureSite, SiteLike
from interplab.store import recorded
from interplab.techniques.top_examples.state import State, merge_states
from interplab.techniques.top_examples.stream import (
    Directions,
    Pass,
    Reading,
    conclude,
    prepare,
    stream,
)

JOB = "interplab.distributed.top_examples:stream_shard"


def stream_shard(
    model: Model, shared: tuple[Reading, Tensor], task: tuple[int, np.ndarray]
) -> dict[str, Tensor]:
    """The task a worker runs: the streaming state's tensors after its shard of windows."""
    reading, edges = shared
    first_batch, windows = task
    with torch.inference_mode():
        start = reading.new_state(edges)
        return _last(stream(model, reading, windows, first_batch, start), start).tensors()


@torch.inference_mode()
@recorded("top_examples")
def top_examples(
    model: Model,
    corpus: TokenizedCorpus | np.ndarray,
    *,
    site: SiteLike | FeatureSite | None = "L15.mlp.post",
    neurons: Sequence[int] | None = None,
    directions: Directions | None = None,
    config: TopExamplesConfig | None = None,
    corpus_name: str = "",
    backend: str | Backend = "local",
    address: str | None = None,
    workers: int = 2,
    threads: int = 1,
    tasks: int | None = None,
    model_factory: str | None = None,
    checkpoint: str | Path | None = None,
    progress: bool = True,
) -> TopExamplesResult:
    """Returns `interplab.techniques.top_examples.top_examples`'s result, with the corpus
    streamed as contiguous shards on ``backend``: ``"local"`` (this process), ``"ray"``
    (``workers`` actors on the cluster at ``address``, or on a private local one when None), or a
    `Backend`. ``tasks`` (default: four per worker) sets how many shards; ``model_factory``
    (``"module:function"``) rebuilds the model on workers that cannot load it by name;
    ``checkpoint`` is a folder that keeps finished shards, so a restarted pass streams only the
    missing ones. The options (k, n_random, ... batch_size, max_tokens, seed) come from
    ``config``."""
    cfg = config or TopExamplesConfig()
    if tasks is not None and tasks < 1:
        raise DistributedError(f"tasks must be at least 1, got {tasks}")
    p = prepare(
        model, corpus, site=site, neurons=neurons, directions=directions, config=cfg,
        corpus_name=corpus_name,
    )  # fmt: skip
    empty = p.reading.new_state()  # batch 0 here: its quantiles are every shard's histogram edges
    first = _last(stream(model, p.reading, _windows(p, 0, 1), 0, empty), empty)
    if p.n_batches == 1:
        return conclude(model, p, first)
    runner, owned = make_backend(
        backend, model, address=address, workers=workers, threads=threads,
        model_factory=model_factory,
    )  # fmt: skip
    try:
        n_tasks = tasks or 4 * (workers if runner.name == "ray" else 1)
        bounds = shard_bounds(p.n_batches, n_tasks)
        pieces = [(a, np.asarray(_windows(p, a, b))) for a, b in bounds]
        fingerprint = {
            "job": JOB,
            "weights": model.info.weights_sha256,
            "pass": p.identity,
            "sites": [str(s) for s in p.reading.sites],
            "max_tokens": cfg.max_tokens,
            "tasks": [list(b) for b in bounds],
        }
        run = run_tasks(
            runner, JOB, (p.reading, first.edges), pieces, fingerprint=fingerprint,
            checkpoint=checkpoint, label=f"top examples ({runner.name}, {len(pieces)} shards)",
            progress=progress,
        )  # fmt: skip
    finally:
        if owned:
            runner.close()
    states = [first, *(State.from_tensors(r) for r in run.results)]
    return conclude(model, p, merge_states(states))


def shard_bounds(n_batches: int, n_tasks: int) -> list[tuple[int, int]]:
    """Returns ``[first, stop)`` batch ranges cutting batches ``1 .. n_batches - 1`` into at most
    ``n_tasks`` contiguous shards of near-equal size (batch 0 is the driver's)."""
    rest = n_batches - 1
    n = max(1, min(n_tasks, rest))
    cuts = [1 + rest * i // n for i in range(n + 1)]
    return [(cuts[i], cuts[i + 1]) for i in range(n)]


def _last(states: Iterator[State], start: State) -> State:
    """Returns the last state ``states`` yields (``start`` when it yields none)."""
    last = start
    for last in states:  # noqa: B007
        pass
    return last


def _windows(p: Pass, first: int, stop: int) -> np.ndarray:
    size = p.reading.cfg.batch_size
    return p.windows[first * size : min(stop * size, p.n_windows)]


__all__ = ["JOB", "shard_bounds", "stream_shard", "top_examples"]
