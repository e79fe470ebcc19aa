"""Causal tracing split into tasks of columns, run on a backend, merged into one result.

1. The driver plans once (`interplab.techniques.tracing.plan_tracing`: prompts, subject spans,
   σ and the noise, drawn from ``seed`` here only) and runs what every column of a prompt shares
   (`trace_cells.plan`: the clean run and the corrupted runs) on its own model.
2. `trace_cells.split` cuts the (prompt, position) columns into tasks; the plan's `TraceWork`,
   noise and base runs included, goes to each worker once, so every worker restores into the
   same corrupted runs.
3. The workers (`backend`) compute their columns with `trace_cells.compute`; finished tasks are
   checkpointed (`run_tasks`), so a restarted sweep computes only the missing ones.
4. `trace_cells.merge` writes the columns and the baselines into one sweep and
   `tracing_result` builds the `TracingResult`. With the same device, dtype and thread count it
   equals the local `causal_tracing`'s bit for bit (tested).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from torch import Tensor

from interplab.core.model import Model
from interplab.distributed.backend import Backend, make_backend
from interplab.distributed.tasks import run_tasks
from interplab.results.tracing import (
    TRACE_COMPONENTS,
    TraceComponent,
    TracingConfig,
    TracingError,
    TracingResult,
)
from interplab.store import recorded
from interplab.techniques import trace_cells
from interplab.techniques.tracing import (
    PromptsLike,
    SubjectsLike,
    plan_tracing,
    tracing_result,
)

JOB = "interplab.distributed.tracing:compute_columns"


def compute_columns(
    model: Model, work: trace_cells.TraceWork, keys: list[trace_cells.CellKey]
) -> Tensor:
    """The task a worker runs: restored p(answer) ``[len(keys), component, layer]``."""
    return trace_cells.compute(model, work, keys)


@recorded("causal_tracing", inputs="prompts")
def causal_tracing(
    model: Model,
    prompts: PromptsLike,
    *,
    backend: str | Backend = "local",
    address: str | None = None,
    workers: int = 2,
    threads: int = 1,
    tasks: int | None = None,
    model_factory: str | None = None,
    checkpoint: str | Path | None = None,
    subjects: SubjectsLike = None,
    answers: Sequence[str] | Sequence[int] | Tensor | None = None,
    noise: float = 3.0,
    sigma: float | None = None,
    samples: int = 10,
    window: int = 10,
    components: Sequence[TraceComponent] | TraceComponent = TRACE_COMPONENTS,
    seed: int = 0,
    method: str = "auto",
    batch_budget_mb: float | Literal["auto"] = 512.0,
    progress: bool = True,
    config: TracingConfig | None = None,
) -> TracingResult:
    """Returns `interplab.techniques.tracing.causal_tracing`'s result, computed as tasks of
    (prompt, position) columns on ``backend``: ``"local"`` (this process), ``"ray"``
    (``workers`` actors on the cluster at ``address``, or on a private local one when None), or
    a `Backend`. ``tasks`` (default: four per worker) sets how finely the columns are cut;
    ``model_factory`` (``"module:function"``) rebuilds the model on workers that cannot load it
    by name; ``checkpoint`` is a folder that keeps finished tasks, so a restarted sweep computes
    only what is missing."""
    cfg = config or TracingConfig(
        components=(components,) if isinstance(components, str) else tuple(components),
        noise=noise,
        sigma=sigma,
        samples=samples,
        window=window,
        seed=seed,
        method=method,  # type: ignore[arg-type]
        batch_budget_mb=batch_budget_mb,
    )
    if tasks is not None and (not isinstance(tasks, int) or tasks < 1):
        raise TracingError(f"tasks must be an int of at least 1, got {tasks!r}")
    plan = plan_tracing(model, prompts, subjects=subjects, answers=answers, config=cfg)
    work = trace_cells.plan(
        model, plan.inputs, cfg.components, plan.noises, cfg.window, plan.method,
        cfg.batch_budget_mb,
    )  # fmt: skip
    runner, owned = make_backend(
        backend, model, address=address, workers=workers, threads=threads,
        model_factory=model_factory,
    )  # fmt: skip
    n_tasks = tasks or 4 * (workers if runner.name == "ray" else 1)
    split = trace_cells.split(work, n_tasks)
    fingerprint = {
        "job": JOB,
        "weights": model.info.weights_sha256,
        "config": cfg.to_dict(),
        "data": plan.inputs.data_sha256,
        "method": plan.method,
        "sigma": plan.sigma,
        "tasks": [[list(k) for k in keys] for keys in split],
    }
    try:
        run = run_tasks(
            runner, JOB, work, split, fingerprint=fingerprint, checkpoint=checkpoint,
            label=f"causal tracing ({runner.name}, {len(split)} tasks)", progress=progress,
        )  # fmt: skip
    finally:
        if owned:
            runner.close()
    return tracing_result(
        model, plan, trace_cells.merge(work, zip(split, run.results, strict=True))
    )


__all__ = ["JOB", "causal_tracing", "compute_columns"]
