"""Causal tracing column by column: the split and merge points of a sweep run in pieces.

Every restored run of one prompt at one position i (its rows: one per component, layer and noise
sample) reads only what the prompt's cells share: the clean activations, the answer, the noise
and, on the suffix path, the corrupted base run. Nothing couples one (prompt, position) column to
another, so a sweep can be cut into any sets of columns and put back together:

1. `plan` runs what every column of a prompt shares once per prompt, on the driver
   (`interplab.techniques._trace_sweep.prompt_run`: the clean run and the corrupted run with the
   noise drawn by `interplab.techniques.tracing.plan_tracing`), and returns a `TraceWork` of CPU
   tensors that pickle: all a worker needs besides the model.
2. `cell_keys` lists every column ``(prompt, position)`` from each prompt's subject on; `split`
   cuts them into contiguous tasks.
3. `compute` returns restored p(answer) ``[k, component, layer]`` of a set of columns, each
   through the same `column` runner, with the same chunks, that the local sweep uses.
4. `merge` writes the pieces and the baselines into a `Sweep`, which
   `interplab.techniques.tracing.tracing_result` turns into the `TracingResult`.

A column is computed exactly as in the one-piece sweep (same rows, same chunks, same kernels),
so merged pieces equal `causal_tracing` bit for bit on one device, dtype and thread count.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from interplab.core.memory import resolve_budget
from interplab.core.model import Model
from interplab.results.tracing import TracingError
from interplab.techniques._trace_sweep import (
    PromptRun,
    Sweep,
    TraceInputs,
    column,
    empty_sweep,
    prompt_run,
    record_column,
    record_prompt,
)

CellKey = tuple[int, int]
"""One column of the sweep: (prompt, position)."""


@dataclass(frozen=True)
class TraceWork:
    """Everything a worker needs, besides the model, to compute any column of one sweep."""

    runs: list[PromptRun]  # per prompt, on the CPU
    components: tuple[str, ...]
    window: int
    budget_mb: float
    n_layers: int


def plan(
    model: Model,
    inputs: TraceInputs,
    components: tuple[str, ...],
    noises: list[Tensor],
    window: int,
    method: str,
    budget_mb: float | str,
) -> TraceWork:
    """Returns the shared part of a sweep: every prompt's clean and corrupted runs (the budget
    resolved here, on the driver, so every worker cuts the same chunks)."""
    runs = [
        prompt_run(model, row, start, answer, components, noise, method).to("cpu")
        for row, (start, _), answer, noise in zip(
            inputs.ids, inputs.spans, inputs.answer_ids, noises, strict=True
        )
    ]
    budget = resolve_budget(budget_mb, model.device)
    return TraceWork(runs, tuple(components), window, budget, model.dims.n_layers)


def cell_keys(work: TraceWork) -> list[CellKey]:
    """Returns every column of the sweep, prompt by prompt, from its subject to its end."""
    return [(e, i) for e, run in enumerate(work.runs) for i in range(run.start, len(run.row))]


def split(work: TraceWork, parts: int) -> list[list[CellKey]]:
    """Returns the columns cut into up to ``parts`` contiguous tasks of near-equal size."""
    if not isinstance(parts, int) or parts < 1:
        raise TracingError(f"parts must be an int of at least 1, got {parts!r}")
    keys = cell_keys(work)
    bounds = np.linspace(0, len(keys), min(parts, len(keys)) + 1).round().astype(int)
    return [keys[a:b] for a, b in itertools.pairwise(bounds)]


def compute(model: Model, work: TraceWork, keys: Sequence[CellKey]) -> Tensor:
    """Returns restored p(answer) ``[len(keys), component, layer]`` (float64) of the columns."""
    out = torch.empty((len(keys), len(work.components), work.n_layers), dtype=torch.float64)
    if model.dims.n_layers != work.n_layers:
        raise TracingError(
            f"the worker's model has {model.dims.n_layers} layers, the sweep {work.n_layers}"
        )
    for e, group in itertools.groupby(enumerate(keys), key=lambda k: k[1][0]):
        if not 0 <= e < len(work.runs):
            raise TracingError(f"column of prompt {e}: the sweep has {len(work.runs)} prompts")
        run = work.runs[e].to(model.device)
        for j, (_, i) in group:
            if not run.start <= i < len(run.row):
                raise TracingError(f"prompt {e} has no column at position {i}")
            col = column(model, run, work.components, work.window, i, work.budget_mb)
            out[j] = col.cpu()
    return out


def merge(work: TraceWork, parts: Iterable[tuple[Sequence[CellKey], Tensor]]) -> Sweep:
    """Returns the `Sweep` written from the baselines and ``(keys, columns)`` pieces; raises when
    a column is missing."""
    runs = work.runs
    width = max(len(r.row) for r in runs)
    out = empty_sweep(work.components, len(runs), work.n_layers, width, runs[0].noise.shape[0])
    for e, run in enumerate(runs):
        record_prompt(out, e, run)
    filled: set[CellKey] = set()
    for keys, cols in parts:
        for (e, i), col in zip(keys, cols, strict=True):
            record_column(out, e, i, col)
            filled.add((e, i))
    missing = [k for k in cell_keys(work) if k not in filled]
    if missing:
        raise TracingError(f"{len(missing)} columns (prompt, position) were not computed, e.g. {missing[0]}; cannot merge")  # fmt: skip
    return out


__all__ = ["CellKey", "TraceWork", "cell_keys", "compute", "merge", "plan", "split"]
