"""Path patching split into tasks of row chunks, run on a backend, merged into one result.

1. The driver plans once (`interplab.techniques.patching.path.plan_path`: senders and receivers
   checked, the clean and corrupt runs cached, the (example, sender) rows listed and sorted by
   the sender's layer) on its own model.
2. `path_sweep.split` cuts the rows into tasks along the chunks the local sweep runs one batch
   each (``batch_budget_mb`` sets them: a smaller budget gives more, smaller chunks and so more
   tasks); the plan's `PathWork` goes to each worker once.
3. The workers (`backend`) compute their chunks with `path_sweep.compute`; finished tasks are
   checkpointed (`run_tasks`), so a restarted sweep computes only the missing ones.
4. `path_sweep.merge` writes the effects into the grids and `path_result` builds the
   `PathPatchingResult`. With the same device, dtype and thread count it equals the local
   `path_patching`'s bit for bit (tested).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from torch import Tensor

from interplab.core.model import Model
from interplab.distributed.backend import Backend, make_backend
from interplab.distributed.tasks import run_tasks
from interplab.results.patching import PatchingError, PathPatchingResult
from interplab.sites import SiteLike
from interplab.store import recorded
from interplab.techniques.metrics import Metric, MetricName
from interplab.techniques.patching import path_sweep
from interplab.techniques.patching.config import PathMethod, PathPatchingConfig
from interplab.techniques.patching.grid import PairsLike
from interplab.techniques.patching.path import (
    SenderSet,
    path_config,
    path_result,
    plan_path,
)

JOB = "interplab.distributed.path_patching:compute_rows"


def compute_rows(model: Model, work: path_sweep.PathWork, spans: list[path_sweep.Span]) -> Tensor:
    """The task a worker runs: the effect of every row of its chunks, in order."""
    return path_sweep.compute(model, work, spans)


@recorded("path_patching", inputs="pairs")
def path_patching(
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
    senders: SenderSet | Sequence[SiteLike] = "heads",
    receivers: Literal["logits"] | SiteLike | Sequence[SiteLike] = "logits",
    freeze_mlps: bool = False,
    metric: MetricName | Metric = "logit_diff",
    method: PathMethod = "auto",
    batch_budget_mb: float | Literal["auto"] = 512.0,
    progress: bool = True,
    config: PathPatchingConfig | None = None,
) -> PathPatchingResult:
    """Returns `interplab.techniques.patching.path_patching`'s result, computed as tasks of
    (example, sender) rows on ``backend``: ``"local"`` (this process), ``"ray"`` (``workers``
    actors on the cluster at ``address``, or on a private local one when None), or a `Backend`.
    ``tasks`` (default: four per worker) is how many pieces the rows are cut into, along the
    local sweep's chunks (at most one task per chunk: lower ``batch_budget_mb`` for more);
    ``model_factory`` (``"module:function"``) rebuilds the model on workers that cannot load it
    by name; ``checkpoint`` is a folder that keeps finished tasks, so a restarted sweep
    computes only what is missing."""
    cfg = config or path_config(senders, receivers, freeze_mlps, metric, method, batch_budget_mb)
    if tasks is not None and (not isinstance(tasks, int) or tasks < 1):
        raise PatchingError(f"tasks must be an int of at least 1, got {tasks!r}")
    plan = plan_path(model, pairs, cfg)
    work = plan.work
    runner, owned = make_backend(
        backend, model, address=address, workers=workers, threads=threads,
        model_factory=model_factory,
    )  # fmt: skip
    n_tasks = tasks or 4 * (workers if runner.name == "ray" else 1)
    split = path_sweep.split(work, n_tasks)
    fingerprint = {
        "job": JOB,
        "weights": model.info.weights_sha256,
        "config": cfg.to_dict(),
        "data": plan.inputs.data_sha256,
        "fast": work.fast,
        "rows": len(work.rows["example"]),
        "tasks": [[list(s) for s in spans] for spans in split],
    }
    try:
        run = run_tasks(
            runner, JOB, work.to("cpu"), split, fingerprint=fingerprint, checkpoint=checkpoint,
            label=f"path patching ({runner.name}, {len(split)} tasks)", progress=progress,
        )  # fmt: skip
    finally:
        if owned:
            runner.close()
    effects = path_sweep.merge(work, plan.grids, zip(split, run.results, strict=True))
    return path_result(model, plan, effects)


__all__ = ["JOB", "compute_rows", "path_patching"]
