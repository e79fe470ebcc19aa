"""A grid of dictionaries (widths, k, architectures, sites) trained as one task each.

1. The activations (a `TensorSource`, harvested once by the driver) and the `TrainConfig` go to
   every worker once; each task is one ``(name, DictionaryConfig)``.
2. A worker trains its dictionary alone with `interplab.dictionaries.train` (the seed of each
   dictionary comes from the run's seed and its name, the batch order from the run's seed, so a
   dictionary's training does not depend on where, or beside which others, it runs) and returns
   its folded weights and its training curve.
3. Finished dictionaries are checkpointed (`run_tasks`), so a restarted grid trains only the
   missing ones. With the same thread count, the weights equal a local run's bit for bit.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import Tensor

from interplab.dictionaries.base import Dictionary
from interplab.dictionaries.config import DictionaryConfig, DictionaryError
from interplab.dictionaries.harvest import TensorSource
from interplab.dictionaries.registry import build
from interplab.dictionaries.train import TrainConfig, train
from interplab.distributed.backend import Backend, make_backend
from interplab.distributed.tasks import run_tasks
from interplab.results.dictionaries import TrainingCurve

JOB = "interplab.distributed.training:train_one"


@dataclass(frozen=True)
class GridRun:
    """The trained dictionaries (folded: they read raw activations) and their curves, by name;
    ``computed`` names those trained now, the others came from the checkpoint."""

    dictionaries: dict[str, Dictionary]
    curves: dict[str, TrainingCurve]
    computed: tuple[str, ...]


def train_one(
    model: Any, shared: tuple[TensorSource, TrainConfig], task: tuple[str, DictionaryConfig]
) -> dict[str, Any]:
    """The task a worker runs: one dictionary's folded weights and its curve (as JSON text)."""
    del model  # the activations are already harvested
    source, cfg = shared
    name, dcfg = task
    run = train(source, {name: dcfg}, cfg, progress=False)
    state = {k: v.detach().cpu().clone() for k, v in run.dictionaries[name].state_dict().items()}
    return {"state": state, "curve": json.dumps(run.curves[name].to_dict())}


def train_grid(
    source: TensorSource,
    grid: Mapping[str, DictionaryConfig],
    config: TrainConfig | None = None,
    *,
    backend: str | Backend = "local",
    address: str | None = None,
    workers: int = 2,
    threads: int = 1,
    checkpoint: str | Path | None = None,
    progress: bool = True,
) -> GridRun:
    """Returns every dictionary of ``grid`` trained on ``source``, one task each, on ``backend``
    (``"local"``, ``"ray"`` or a `Backend`); ``checkpoint`` keeps finished dictionaries."""
    if not grid:
        raise DictionaryError("the grid is empty: give at least one name -> DictionaryConfig")
    cfg = config or TrainConfig()
    names = sorted(grid)
    tasks = [(name, grid[name]) for name in names]
    runner, owned = make_backend(backend, None, address=address, workers=workers, threads=threads)
    fingerprint = {
        "job": JOB,
        "source": source.fingerprint(),
        "train": cfg.to_dict(),
        "grid": {n: grid[n].to_dict() for n in names},
    }
    try:
        run = run_tasks(
            runner, JOB, (source, cfg), tasks, fingerprint=fingerprint, checkpoint=checkpoint,
            label=f"dictionary grid ({runner.name}, {len(tasks)} runs)", progress=progress,
        )  # fmt: skip
    finally:
        if owned:
            runner.close()
    dictionaries, curves = {}, {}
    for name, out in zip(names, run.results, strict=True):
        dictionaries[name] = _rebuild(grid[name], out["state"])
        curves[name] = TrainingCurve.from_dict(json.loads(out["curve"]))
    return GridRun(dictionaries, curves, tuple(names[i] for i in run.computed))


def _rebuild(config: DictionaryConfig, state: dict[str, Tensor]) -> Dictionary:
    d = build(config)
    d.load_state_dict(state)
    return d.eval()


__all__ = ["GridRun", "train_grid", "train_one"]
