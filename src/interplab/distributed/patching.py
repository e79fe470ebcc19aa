"""Activation patching split into tasks of cells, run on a backend, merged into one result.

1. The driver runs the shared part once (`cells.plan`: baselines, base activations, patch
   values) on its own model.
2. `cells.split` cuts the cells into tasks along the local sweep's batch lines; each task is a
   list of cells, the plan's `CellWork` goes to each worker once.
3. The workers (`backend`) compute their cells with `cells.compute`; finished tasks are
   checkpointed (`run_tasks`), so a restarted sweep computes only the missing ones.
4. `cells.merge` writes the pieces into the grids and `cells.finish` builds the result; the
   control sweep on unrelated prompts runs the same way. With the same device, dtype and thread
   count the merged effects equal the local `activation_patching`'s bit for bit (tested).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

from torch import Tensor

from interplab.core.model import Model
from interplab.distributed.backend import Backend, make_backend
from interplab.distributed.tasks import run_tasks
from interplab.results.patching import Direction, PatchingResult, Per, Source
from interplab.store import recorded
from interplab.techniques.metrics import MetricName
from interplab.techniques.patching import cells
from interplab.techniques.patching.config import Method, PatchingConfig
from interplab.techniques.patching.controls import run_control
from interplab.techniques.patching.grid import PairsLike, prepare

JOB = "interplab.distributed.patching:compute_cells"


def compute_cells(model: Model, work: cells.CellWork, keys: list[cells.CellKey]) -> Tensor:
    """The task a worker runs: the patched metric ``[len(keys), n]`` of its cells."""
    return cells.compute(model, work, keys)


@recorded("activation_patching", inputs="pairs")
def activation_patching(
    model: Model,
    pairs: PairsLike,
    *,
    backend: str | Backend = "local",
    address: str | None = None,
    workers: int = 2,
    threads: int = 1,
    tasks: int | None = None,
    model_factory: str | None = None,
    checkpoint: str | Path | None = None,
    components: Sequence[str] | str = ("resid_pre",),
    direction: Direction = "denoise",
    per: Per = "position",
    metric: MetricName = "logit_diff",
    source: Source = "contrast",
    seed: int = 0,
    method: Method = "auto",
    batch_budget_mb: float | Literal["auto"] = 512.0,
    control: bool = True,
    progress: bool = True,
    config: PatchingConfig | None = None,
) -> PatchingResult:
    """Returns `interplab.techniques.patching.activation_patching`'s result, computed as tasks of
    cells on ``backend``: ``"local"`` (this process), ``"ray"`` (``workers`` actors on the cluster
    at ``address``, or on a private local one when None), or a `Backend`. ``tasks`` (default:
    four per worker) sets how finely the cells are cut; ``model_factory`` (``"module:function"``)
    rebuilds the model on workers that cannot load it by name; ``checkpoint`` is a folder that
    keeps finished tasks, so a restarted sweep computes only what is missing."""
    cfg = config or PatchingConfig(
        components=(components,) if isinstance(components, str) else tuple(components),  # type: ignore[arg-type]
        direction=direction,
        per=per,
        metric=metric,
        source=source,
        method=method,
        seed=seed,
        batch_budget_mb=batch_budget_mb,
        control=control,
    )
    runner, owned = make_backend(
        backend, model, address=address, workers=workers, threads=threads,
        model_factory=model_factory,
    )  # fmt: skip
    n_tasks = tasks or 4 * (workers if runner.name == "ray" else 1)
    try:

        def sweep(m: Model, p: PairsLike, config: PatchingConfig, **_: Any) -> PatchingResult:
            return _sweep(m, p, config, runner, n_tasks, checkpoint, progress)

        result = sweep(model, pairs, cfg)
        if cfg.control:
            like = prepare(model, pairs, cfg.per).pairs
            result = replace(result, control=run_control(sweep, model, like, cfg))
        return result
    finally:
        if owned:
            runner.close()


def _sweep(
    model: Model,
    pairs: PairsLike,
    cfg: PatchingConfig,
    runner: Backend,
    n_tasks: int,
    checkpoint: str | Path | None,
    progress: bool,
) -> PatchingResult:
    plan = cells.plan(model, pairs, cfg)
    split = cells.split(plan.work, n_tasks)
    fingerprint = {
        "job": JOB,
        "weights": model.info.weights_sha256,
        "config": cfg.to_dict(),
        "data": plan.inputs.data_sha256,
        "fast": plan.work.fast,
        "tasks": [[[c, list(i)] for c, i in keys] for keys in split],
    }
    run = run_tasks(
        runner, JOB, plan.work, split, fingerprint=fingerprint, checkpoint=checkpoint,
        label=f"patching ({runner.name}, {len(split)} tasks)", progress=progress,
    )  # fmt: skip
    grids = cells.merge(plan.work, zip(split, run.results, strict=True))
    return cells.finish(model, plan, grids)


__all__ = ["JOB", "activation_patching", "compute_cells"]
