"""A fake technique for the store's tests: deterministic, torch-free, recorded and re-runnable.

``fake_sweep(prompts, shift=..., cells=..., seed=...)`` returns a `FakeResult` of per-example
values ``[n, cells]`` that depend only on the prompts, the config and the seed, so a re-run
reproduces every number exactly. Importing this module registers the result type, its re-run
function and (with `register_renderer`) a figure, as a real technique and viz module would.
``fake_scaled`` registers nothing: it re-runs from the call it stored (an array and a function
among its arguments).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from interplab.provenance import Provenance, data_hash
from interplab.results.base import Result
from interplab.stats import Summary, summarize
from interplab.store import recorded, rerun

MODEL = {"name": "fake-model", "weights_sha256": "f" * 64, "family": "fake"}


@dataclass(frozen=True)
class FakeResult(Result):
    """Per-example values of a fake sweep over ``cells`` cells."""

    technique = "fake_sweep"

    prompts: list[str]
    values: np.ndarray
    provenance: Provenance

    def summary(self, *, seed: int = 0) -> Summary:
        return summarize(self.values, n_resamples=2000, seed=seed)


@dataclass(frozen=True)
class PlainResult(Result):
    """A result no renderer draws (the report must say so)."""

    technique = "fake_plain"

    values: np.ndarray

    def summary(self) -> Summary:
        return summarize(self.values, n_resamples=500)


def compute(prompts: list[str], *, shift: float, cells: int, seed: int) -> np.ndarray:
    """Returns deterministic per-example values: a seeded draw mixed with each prompt's hash."""
    rng = np.random.default_rng(seed)
    base = rng.normal(shift, 1.0, size=(len(prompts), cells))
    per_prompt = np.array([zlib.crc32(p.encode()) % 97 / 97.0 for p in prompts])
    return base + per_prompt[:, None] * 0.1


@recorded("fake_sweep", inputs="prompts")
def fake_sweep(
    prompts: list[str],
    *,
    shift: float = 0.5,
    cells: int = 4,
    seed: int = 0,
    model_info: dict[str, Any] | None = None,
) -> FakeResult:
    """The fake technique, recorded like a real one."""
    config = {"shift": shift, "cells": cells, "seed": seed}
    return FakeResult(
        prompts=list(prompts),
        values=compute(list(prompts), shift=shift, cells=cells, seed=seed),
        provenance=Provenance(
            technique="fake_sweep",
            model=dict(model_info or MODEL),
            config=config,
            data_sha256=data_hash(list(prompts)),
            seed=seed,
        ),
    )


def double(values: np.ndarray) -> np.ndarray:
    """A module-level function, which a stored call keeps by its import path."""
    return 2.0 * values


@recorded("fake_scaled", inputs="prompts")
def fake_scaled(
    prompts: list[str], factor: np.ndarray, *, transform: Any = double, seed: int = 0
) -> FakeResult:
    """A fake technique re-run from its stored call: values scaled per cell, then transformed."""
    values = transform(compute(list(prompts), shift=0.0, cells=len(factor), seed=seed) * factor)
    prov = Provenance(
        "fake_scaled", dict(MODEL), {"seed": seed}, data_hash(list(prompts)), seed=seed
    )
    return FakeResult(list(prompts), values, prov)


def rerun_fake(config: dict[str, Any], model_info: dict[str, Any], inputs: list[str]) -> FakeResult:
    """How the store re-runs a recorded fake sweep."""
    return fake_sweep(inputs, shift=config["shift"], cells=config["cells"], seed=config["seed"],
                      model_info=model_info)  # fmt: skip


rerun.register("fake_sweep", rerun_fake)


def register_renderer() -> None:
    """Registers a figure for FakeResult, as a viz module would."""
    from matplotlib.figure import Figure

    from interplab.viz.render import renders

    @renders(FakeResult, title=lambda r: "fake sweep")
    def draw(result: FakeResult, **_: Any) -> Figure:
        fig = Figure(figsize=(3, 2))
        ax = fig.subplots()
        ax.bar(range(result.values.shape[1]), result.values.mean(0))
        return fig


PROMPTS = [f"prompt number {i} about {w}" for i, w in enumerate("abcdefghijklmnopqrst")]
