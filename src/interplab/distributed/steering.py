"""Steering coefficient sweeps split into tasks of coefficients, merged into one result per vector.

1. The driver checks the prompts, vectors and coefficients, and cuts each vector's coefficients
   into contiguous chunks (by default one coefficient per task); a task is ``(vector name,
   coefficients)``.
2. The prompts, the vectors, the behaviour and the `SteerConfig` go to every worker once. A
   worker runs the local `steer` on its chunk: the steered and norm-matched random rows of its
   coefficients, next to the no-steering row and the prompt baseline (these two do not depend on
   the coefficients; every task computes them, the merge keeps the first task's).
3. Finished tasks are checkpointed (`run_tasks`), so a restarted sweep computes only the missing
   ones.
4. The driver joins the chunks along the coefficient axis into one `SteeringResult` per vector,
   with the provenance of the whole sweep.

Exactness: each chunk of the merged result equals the local ``steer(..., coefficients=chunk)``
bit for bit (same device, dtype and thread count; tested), and with ``tasks=1`` the whole result
equals the local `steer`'s. The local sweep generates all of a prompt's rows in one batch and
scores all continuations in batches of 16, so cutting the coefficients changes the batch shapes:
a value can then differ from the one-piece sweep's in its last float bits (and, with sampling,
``temperature > 0``, the draws differ, since they follow the batch).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import fields, replace
from itertools import pairwise
from pathlib import Path

import numpy as np

from interplab.configs import ConfigError
from interplab.core.interventions import Positions
from interplab.core.model import Model
from interplab.distributed.backend import Backend, DistributedError, make_backend
from interplab.distributed.tasks import run_tasks
from interplab.provenance import Provenance, data_hash
from interplab.results.base import encode
from interplab.results.steering import SteerConfig, SteeringResult, SteeringVector
from interplab.store import recorded
from interplab.store.recording import suppressed
from interplab.techniques.steering import HAPPINESS, Behaviour, SteeringError
from interplab.techniques.steering import steer as local_steer
from interplab.techniques.steering.vector import check_finite

JOB = "interplab.distributed.steering:steer_task"

Shared = tuple[list[str], dict[str, SteeringVector], Behaviour, SteerConfig]
Task = tuple[str, list[float]]  # (vector name, coefficients)


def steer_task(model: Model, shared: Shared, task: Task) -> str:
    """The task a worker runs: the local `steer` of one vector at its coefficients, its fields as
    JSON text (exact: floats round-trip through their repr; no summaries, the driver's merge has
    its own)."""
    prompts, vectors, behaviour, cfg = shared
    name, coefficients = task
    with suppressed():  # the driver records the sweep; a worker records nothing
        result = local_steer(
            model,
            prompts,
            vectors[name],
            behaviour=behaviour,
            config=replace(cfg, coefficients=tuple(coefficients)),
        )
    return json.dumps({f.name: encode(getattr(result, f.name)) for f in fields(result)})


@recorded("steering", inputs="prompts")
def steer(
    model: Model,
    prompts: str | Sequence[str],
    vector: SteeringVector,
    *,
    backend: str | Backend = "local",
    address: str | None = None,
    workers: int = 2,
    threads: int = 1,
    tasks: int | None = None,
    model_factory: str | None = None,
    checkpoint: str | Path | None = None,
    progress: bool = True,
    coefficients: Sequence[float] = (0.0, 2.0, 4.0, 8.0),
    behaviour: Behaviour = HAPPINESS,
    positions: Positions = None,
    n_random: int = 3,
    prompt_baseline: bool = True,
    max_new_tokens: int = 24,
    temperature: float = 0.0,
    seed: int = 0,
    config: SteerConfig | None = None,
) -> SteeringResult:
    """Returns `interplab.techniques.steering.steer`'s result, computed as tasks of coefficients
    on ``backend``: ``"local"`` (this process), ``"ray"`` (``workers`` actors on the cluster at
    ``address``, or on a private local one when None), or a `Backend`. ``tasks`` (default: one
    per coefficient) sets how many chunks the coefficients are cut into; ``model_factory``
    (``"module:function"``) rebuilds the model on workers that cannot load it by name;
    ``checkpoint`` is a folder that keeps finished tasks. ``config`` replaces the sweep's
    keyword options (not ``behaviour``)."""
    cfg = config or _config(
        coefficients, positions, n_random, prompt_baseline, max_new_tokens, temperature, seed
    )
    results = _sweep(
        model, prompts, {"vector": vector}, behaviour, cfg, backend=backend, address=address,
        workers=workers, threads=threads, tasks=tasks, model_factory=model_factory,
        checkpoint=checkpoint, progress=progress,
    )  # fmt: skip
    return results["vector"]


def steer_vectors(
    model: Model,
    prompts: str | Sequence[str],
    vectors: Mapping[str, SteeringVector],
    *,
    backend: str | Backend = "local",
    address: str | None = None,
    workers: int = 2,
    threads: int = 1,
    tasks: int | None = None,
    model_factory: str | None = None,
    checkpoint: str | Path | None = None,
    progress: bool = True,
    coefficients: Sequence[float] = (0.0, 2.0, 4.0, 8.0),
    behaviour: Behaviour = HAPPINESS,
    positions: Positions = None,
    n_random: int = 3,
    prompt_baseline: bool = True,
    max_new_tokens: int = 24,
    temperature: float = 0.0,
    seed: int = 0,
    config: SteerConfig | None = None,
) -> dict[str, SteeringResult]:
    """Returns `steer`'s result for each of several vectors (one per layer, say), by the
    mapping's keys, as one sweep of tasks of (vector, coefficients) on ``backend``; ``tasks``
    is the number of coefficient chunks per vector (default: one per coefficient)."""
    cfg = config or _config(
        coefficients, positions, n_random, prompt_baseline, max_new_tokens, temperature, seed
    )
    return _sweep(
        model, prompts, vectors, behaviour, cfg, backend=backend, address=address,
        workers=workers, threads=threads, tasks=tasks, model_factory=model_factory,
        checkpoint=checkpoint, progress=progress,
    )  # fmt: skip


def _sweep(
    model: Model,
    prompts: str | Sequence[str],
    vectors: Mapping[str, SteeringVector],
    behaviour: Behaviour,
    cfg: SteerConfig,
    *,
    backend: str | Backend,
    address: str | None,
    workers: int,
    threads: int,
    tasks: int | None,
    model_factory: str | None,
    checkpoint: str | Path | None,
    progress: bool,
) -> dict[str, SteeringResult]:
    prompt_list = [prompts] if isinstance(prompts, str) else list(prompts)
    if not prompt_list:
        raise SteeringError("steer needs at least one prompt")
    if not vectors:
        raise SteeringError("no steering vectors: give at least one name -> SteeringVector")
    if workers < 1:
        raise DistributedError(f"workers must be at least 1, got {workers}")
    named = {str(k): v for k, v in vectors.items()}
    for name, v in named.items():
        check_finite(v.vectors, v.layers, f"steering vector {name!r}")
    split = [(name, chunk) for name in named for chunk in _chunks(cfg.coefficients, tasks)]
    fingerprint = {
        "job": JOB,
        "weights": model.info.weights_sha256,
        "config": cfg.to_dict(),
        "behaviour": [
            behaviour.name,
            behaviour.instruction,
            f"{behaviour.score.__module__}:{behaviour.score.__qualname__}",
        ],
        "prompts": data_hash(prompt_list),
        "vectors": {name: _sha256(v) for name, v in named.items()},
        "tasks": [[name, chunk] for name, chunk in split],
    }
    runner, owned = make_backend(
        backend, model, address=address, workers=workers, threads=threads,
        model_factory=model_factory,
    )  # fmt: skip
    try:
        run = run_tasks(
            runner, JOB, (prompt_list, named, behaviour, cfg), split, fingerprint=fingerprint,
            checkpoint=checkpoint, label=f"steering ({runner.name}, {len(split)} tasks)",
            progress=progress,
        )  # fmt: skip
    finally:
        if owned:
            runner.close()
    parts: dict[str, list[SteeringResult]] = {name: [] for name in named}
    for (name, _), text in zip(split, run.results, strict=True):
        parts[name].append(SteeringResult.from_dict({"technique": "steering", **json.loads(text)}))
    prov = Provenance(
        technique="steering",
        model=model.info.to_dict(),
        config=cfg.to_dict(),
        data_sha256=data_hash(prompt_list),
        seed=cfg.seed,
    )
    return {name: _merge(parts[name], prov) for name in named}


def _sha256(vector: SteeringVector) -> str:
    return hashlib.sha256(json.dumps(vector.to_dict(), sort_keys=True).encode()).hexdigest()


def _config(
    coefficients: Sequence[float],
    positions: Positions,
    n_random: int,
    prompt_baseline: bool,
    max_new_tokens: int,
    temperature: float,
    seed: int,
) -> SteerConfig:
    if isinstance(positions, slice):
        raise ConfigError("give steering positions as a list of ints (e.g. [-1]), not a slice")
    return SteerConfig(
        coefficients=tuple(float(c) for c in coefficients),
        positions=None if positions is None else tuple(np.atleast_1d(positions).tolist()),
        n_random=n_random,
        prompt_baseline=prompt_baseline,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        seed=seed,
    )


def _chunks(coefficients: Sequence[float], tasks: int | None) -> list[list[float]]:
    """Returns the coefficients cut into ``tasks`` contiguous chunks of near-equal size (default:
    one per coefficient; never more chunks than coefficients)."""
    if tasks is not None and tasks < 1:
        raise SteeringError(f"tasks must be at least 1 (or None: one per coefficient), got {tasks}")
    values = [float(c) for c in coefficients]
    n = min(tasks or len(values), len(values))
    bounds = np.linspace(0, len(values), n + 1).round().astype(int)
    return [values[int(a) : int(b)] for a, b in pairwise(bounds)]


def _merge(parts: list[SteeringResult], provenance: Provenance) -> SteeringResult:
    """Returns the chunks joined along the coefficient axis; the coefficient-free conditions (no
    steering, the prompt baseline) come from the first chunk."""
    first = parts[0]

    def cat(field: str) -> np.ndarray:
        return np.concatenate([getattr(p, field) for p in parts], axis=1)

    return replace(
        first,
        coefficients=[c for p in parts for c in p.coefficients],
        steered_scores=cat("steered_scores"),
        random_scores=cat("random_scores"),
        steered_perplexity=cat("steered_perplexity"),
        random_perplexity=cat("random_perplexity"),
        steered_texts=[[t for p in parts for t in p.steered_texts[i]] for i in range(first.n)],
        random_texts=[[t for p in parts for t in p.random_texts[i]] for i in range(first.n)],
        provenance=provenance,
    )


__all__ = ["JOB", "steer", "steer_task", "steer_vectors"]
