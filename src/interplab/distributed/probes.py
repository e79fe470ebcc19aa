"""Linear probes for several datasets split into tasks of (dataset, layers), merged per dataset.

1. The driver checks every dataset (binary labels, distinct names) and the layers, and cuts the
   work into tasks of ``(dataset, layer chunk)``: by default one task per dataset holding every
   layer; ``layers_per_task`` cuts finer.
2. The datasets and the `ProbeConfig` go to every worker once; a task carries only its dataset's
   name and its layers. The worker gathers that dataset's activations at those layers
   (`gather_activations`) and fits the fold, control and all-examples probes there
   (`probes.fit_layers`), returning the held-out scores and the directions, not the activations.
3. Finished tasks are checkpointed (`run_tasks`), so a restarted sweep computes only the missing
   ones.
4. The driver joins each dataset's pieces in layer order and scores them (`probes.probe_result`:
   accuracy, AUROC, control and selectivity with their intervals), one `ProbeResult` per dataset.

Exactness: a task holding all of a dataset's layers runs the arithmetic of `linear_probe`, so the
result equals it bit for bit (same device, dtype and thread count; tested). A task's layers share
one L-BFGS run (the optimiser's step and curvature memory span every problem in it), so with
``layers_per_task`` each chunk equals ``linear_probe(..., layers=chunk)`` bit for bit and differs
from the one-piece fit within the optimiser's tolerance.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from interplab.core.model import Model
from interplab.data import LabelledDataset
from interplab.distributed.backend import Backend, DistributedError, make_backend
from interplab.distributed.tasks import run_tasks
from interplab.results.probes import (
    Position,
    ProbeConfig,
    ProbeError,
    ProbeKind,
    ProbeResult,
    ResidualComponent,
)
from interplab.techniques.activations import gather_activations
from interplab.techniques.probes import LayerFits, fit_layers, probe_result
from interplab.techniques.probes.folds import binary_labels

JOB = "interplab.distributed.probes:fit_task"

Task = tuple[str, list[int]]  # (dataset name, layers)


def fit_task(
    model: Model, shared: tuple[dict[str, LabelledDataset], ProbeConfig], task: Task
) -> dict[str, Any]:
    """The task a worker runs: one dataset's activations at its layers, the probes fit there,
    returned as tensors (held-out scores, control scores, the all-examples directions)."""
    datasets, cfg = shared
    name, layers = task
    dataset = datasets[name]
    acts = gather_activations(
        model,
        dataset.texts,
        component=cfg.component,
        position=cfg.position,
        layers=layers,
        batch_size=cfg.batch_size,
    )
    fits = fit_layers(acts, dataset, config=cfg, device=model.device)
    return {
        "layers": list(fits.layers),
        "component": fits.component,
        "position": fits.position,
        "model": fits.model,
        "scores": torch.from_numpy(fits.scores),
        "control_scores": torch.from_numpy(fits.control_scores),
        "coef": fits.coef.cpu(),
        "bias": fits.bias.cpu(),
    }


def linear_probes(
    model: Model,
    datasets: Mapping[str, LabelledDataset] | Sequence[LabelledDataset],
    *,
    backend: str | Backend = "local",
    address: str | None = None,
    workers: int = 2,
    threads: int = 1,
    layers_per_task: int | None = None,
    model_factory: str | None = None,
    checkpoint: str | Path | None = None,
    progress: bool = True,
    probe: ProbeKind = "logistic",
    component: ResidualComponent = "resid_post",
    position: Position = "last",
    layers: Sequence[int] | None = None,
    folds: int = 5,
    seed: int = 0,
    c: float = 0.01,
    batch_size: int = 64,
    n_controls: int = 3,
    n_resamples: int = 10_000,
    config: ProbeConfig | None = None,
) -> dict[str, ProbeResult]:
    """Returns `interplab.techniques.probes.linear_probe`'s result for every dataset (keyed by the
    mapping's keys, or by each dataset's name), computed as tasks of (dataset, layers) on
    ``backend``: ``"local"`` (this process), ``"ray"`` (``workers`` actors on the cluster at
    ``address``, or on a private local one when None), or a `Backend`. A task holds all of a
    dataset's layers unless ``layers_per_task`` cuts them finer (see the module docstring for
    what that changes); ``model_factory`` (``"module:function"``) rebuilds the model on workers
    that cannot load it by name; ``checkpoint`` is a folder that keeps finished tasks."""
    cfg = config or ProbeConfig(
        probe=probe,
        component=component,
        position=position,
        layers=None if layers is None else tuple(int(i) for i in layers),
        folds=folds,
        c=c,
        n_controls=n_controls,
        n_resamples=n_resamples,
        batch_size=batch_size,
        seed=seed,
    )
    named = _named(datasets)
    layer_list = _layers(model, cfg.layers)
    tasks = _split(named, layer_list, layers_per_task)
    if workers < 1:
        raise DistributedError(f"workers must be at least 1, got {workers}")
    fingerprint = {
        "job": JOB,
        "weights": model.info.weights_sha256,
        "config": cfg.to_dict(),
        "data": {name: ds.hash for name, ds in named.items()},
        "tasks": [[name, chunk] for name, chunk in tasks],
    }
    runner, owned = make_backend(
        backend, model, address=address, workers=workers, threads=threads,
        model_factory=model_factory,
    )  # fmt: skip
    try:
        run = run_tasks(
            runner, JOB, (named, cfg), tasks, fingerprint=fingerprint, checkpoint=checkpoint,
            label=f"probes ({runner.name}, {len(tasks)} tasks)", progress=progress,
        )  # fmt: skip
    finally:
        if owned:
            runner.close()
    pieces: dict[str, list[LayerFits]] = {name: [] for name in named}
    for (name, _), out in zip(tasks, run.results, strict=True):
        pieces[name].append(_fits(out))
    return {name: probe_result(named[name], pieces[name], config=cfg) for name in named}


def _named(
    datasets: Mapping[str, LabelledDataset] | Sequence[LabelledDataset],
) -> dict[str, LabelledDataset]:
    """Returns the datasets by name, each checked to have binary labels."""
    if isinstance(datasets, LabelledDataset):
        raise ProbeError("give the datasets as a list or a name -> dataset mapping, not one")
    if isinstance(datasets, Mapping):
        named = {str(k): v for k, v in datasets.items()}
    else:
        named = {}
        for ds in datasets:
            if ds.name in named:
                raise ProbeError(
                    f"two datasets are named {ds.name!r}; pass a mapping name -> dataset"
                )
            named[ds.name] = ds
    if not named:
        raise ProbeError("no datasets to probe: give at least one")
    for ds in named.values():
        binary_labels(ds)
    return named


def _layers(model: Model, layers: Sequence[int] | None) -> list[int]:
    """Returns the layers to probe (every layer when None), checked against the model."""
    n = model.dims.n_layers
    if layers is None:
        return list(range(n))
    bad = [layer for layer in layers if not 0 <= layer < n]
    if bad:
        raise ProbeError(f"layers {bad} are not in the model, which has layers 0..{n - 1}")
    if len(set(layers)) != len(layers):
        raise ProbeError(f"layers {list(layers)} repeat a layer")
    return [int(layer) for layer in layers]


def _split(
    named: Mapping[str, LabelledDataset], layers: list[int], per_task: int | None
) -> list[Task]:
    """Returns the tasks: each dataset's layers in chunks of ``per_task`` (None: all at once)."""
    if per_task is not None and per_task < 1:
        raise ProbeError(f"layers_per_task must be at least 1 (or None), got {per_task}")
    size = per_task or len(layers)
    return [
        (name, layers[start : start + size])
        for name in named
        for start in range(0, len(layers), size)
    ]


def _fits(out: dict[str, Any]) -> LayerFits:
    return LayerFits(
        tuple(out["layers"]),
        out["component"],
        out["position"],
        out["model"],
        np.asarray(out["scores"].numpy()),
        np.asarray(out["control_scores"].numpy()),
        out["coef"],
        out["bias"],
    )


__all__ = ["JOB", "fit_task", "linear_probes"]
