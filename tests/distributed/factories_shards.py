"""Builders shared by the corpus-sharded job tests (local and Ray): corpora, sources, the
comparison of two top-examples results, and a local backend that counts the tasks it runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from interplab.dictionaries import HarvestConfig, ModelSource
from interplab.distributed import LocalBackend
from interplab.sites import Site
from interplab.techniques.top_examples import TopExamplesConfig

from helpers import VOCAB

SITES = (Site(0, "mlp.in"), Site(0, "mlp_out"), Site(1, "resid_pre"))
TOP = TopExamplesConfig(
    k=5, n_random=6, n_bins=3, per_bin=2, n_hist=8, context=(3, 2), batch_size=4
)
SAMPLE_FIELDS = ("score", "window", "position", "context_ids", "context_acts")


def corpus(n_windows: int = 21, length: int = 16) -> np.ndarray:
    return np.random.default_rng(0).integers(0, VOCAB, (n_windows, length)).astype(np.uint32)


def top_kwargs(**overrides: Any) -> dict[str, Any]:
    probe = torch.randn(64, generator=torch.Generator().manual_seed(3))
    kw = {
        "site": "L1.mlp.post",
        "directions": {"probe": ("L0.resid_post", probe)},
        "config": TOP,
        "progress": False,
        "record": False,
    }
    return kw | overrides


def assert_same_top_examples(got: Any, ref: Any) -> None:
    """Every kept example, bin and count exactly; mean and std to float64 rounding (their sums
    are added in another order)."""
    for kind in ("top", "random", "quantiles"):
        for field in SAMPLE_FIELDS:
            a, b = getattr(getattr(got, kind), field), getattr(getattr(ref, kind), field)
            assert a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True), (kind, field)
    for field in ("bin_ranges", "bin_fractions", "min", "max"):
        assert np.array_equal(getattr(got, field), getattr(ref, field), equal_nan=True), field
    assert (got.n_tokens, got.n_windows, got.state_bytes) == (
        ref.n_tokens, ref.n_windows, ref.state_bytes,
    )  # fmt: skip
    assert got.units == ref.units and got.token_strings == ref.token_strings
    np.testing.assert_allclose(got.mean, ref.mean, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(got.std, ref.std, rtol=1e-12, atol=1e-15)
    assert got.provenance is not None and ref.provenance is not None
    assert got.provenance.config == ref.provenance.config
    assert got.provenance.data_sha256 == ref.provenance.data_sha256


def harvest_source(model: Any, n_windows: int = 40) -> ModelSource:
    windows = np.random.default_rng(0).integers(0, 256, (n_windows, 10)).astype(np.uint32)
    return ModelSource(model, windows, SITES, HarvestConfig(block_windows=8, batch_windows=3))


def folder_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


class Counting(LocalBackend):
    """The local backend, counting the tasks it runs; raises Ctrl-C after ``stop_after``."""

    def __init__(self, model: Any, stop_after: int | None = None) -> None:
        super().__init__(model)
        self.ran, self.stop_after = 0, stop_after

    def map(self, job: Any, shared: Any, tasks: Any, done: Any) -> None:
        def counted(i: int, result: Any) -> None:
            if self.stop_after is not None and self.ran >= self.stop_after:
                raise KeyboardInterrupt
            self.ran += 1
            done(i, result)

        super().map(job, shared, tasks, counted)
