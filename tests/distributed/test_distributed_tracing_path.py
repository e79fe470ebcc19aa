"""Causal tracing and path patching as tasks on the local backend and on a real local Ray cluster:
the merged results equal the local techniques' bit for bit, and a checkpoint is never recomputed."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from helpers import tiny_model, token_pairs

ray = pytest.importorskip("ray")

from interplab.distributed import DistributedError, LocalBackend  # noqa: E402
from interplab.distributed.path_patching import path_patching  # noqa: E402
from interplab.distributed.tracing import causal_tracing  # noqa: E402
from interplab.results.patching import PatchingError  # noqa: E402
from interplab.results.tracing import TracingError  # noqa: E402
from interplab.techniques import trace_cells  # noqa: E402
from interplab.techniques.patching import path_patching as local_path  # noqa: E402
from interplab.techniques.patching import path_sweep  # noqa: E402
from interplab.techniques.patching.path import path_config, plan_path  # noqa: E402
from interplab.techniques.tracing import TracingConfig, plan_tracing  # noqa: E402
from interplab.techniques.tracing import causal_tracing as local_tracing  # noqa: E402

pytestmark = pytest.mark.ray
SPANS = [(2, 4), (0, 1), (3, 6)]
TRACE: dict[str, Any] = {
    "subjects": SPANS,
    "samples": 2,
    "window": 3,
    "progress": False,
    "record": False,
}
HEADS = ["L1.attn.q.h2", "L1.attn.v.h0"]


def _ids() -> torch.Tensor:
    return torch.randint(256, (3, 7), generator=torch.Generator().manual_seed(0))


def _path(receivers: Any, budget: float) -> dict[str, Any]:
    return {"senders": "all", "receivers": receivers, "batch_budget_mb": budget,
            "progress": False, "record": False}  # fmt: skip


def _same_tracing(got, ref) -> None:
    for c in ref.components:
        assert np.array_equal(got.restored[c], ref.restored[c]), c
    assert np.array_equal(got.clean, ref.clean)
    assert np.array_equal(got.corrupted_samples, ref.corrupted_samples)
    assert got.answer_ids == ref.answer_ids and got.method == ref.method
    assert got.provenance is not None and ref.provenance is not None
    assert got.provenance.config == ref.provenance.config


def _same_path(got, ref) -> None:
    for c in ref.components:
        assert np.array_equal(got.effects[c], ref.effects[c], equal_nan=True), c
    assert np.array_equal(got.clean, ref.clean) and got.note == ref.note
    assert got.method == ref.method


class _Counting(LocalBackend):
    """The local backend, counting the tasks it is given."""

    def __init__(self, model):
        super().__init__(model)
        self.ran = 0

    def map(self, job, shared, tasks, done):
        self.ran += len(tasks)
        super().map(job, shared, tasks, done)


@pytest.fixture(scope="module")
def llama():
    return tiny_model("llama")


@pytest.mark.parametrize("family", ["llama", "gpt2"])  # the suffix path, the hook path
def test_tracing_columns_on_the_local_backend_equal_causal_tracing(llama, family):
    model = llama if family == "llama" else tiny_model(family)
    ref = local_tracing(model, _ids(), **TRACE)
    assert ref.method == ("suffix" if family == "llama" else "hooks")
    for tasks in (1, 5, 100):
        _same_tracing(causal_tracing(model, _ids(), backend="local", tasks=tasks, **TRACE), ref)


@pytest.mark.parametrize(
    ("family", "receivers", "budget"),
    [("llama", "logits", 0.05), ("llama", HEADS, 0.2), ("gpt2", HEADS[:1], 0.5)],
)
def test_path_chunks_on_the_local_backend_equal_path_patching(llama, family, receivers, budget):
    model = llama if family == "llama" else tiny_model(family)
    kw = _path(receivers, budget)
    ref = local_path(model, token_pairs(), **kw)
    cfg = path_config("all", receivers, False, "logit_diff", "auto", budget)
    assert len(path_sweep.chunks(plan_path(model, token_pairs(), cfg).work)) > 1  # really split
    for tasks in (1, 2, 50):
        _same_path(path_patching(model, token_pairs(), backend="local", tasks=tasks, **kw), ref)


def test_a_rerun_with_the_same_checkpoint_computes_no_task_again(llama, tmp_path):
    ref = local_tracing(llama, _ids(), **TRACE)
    first, again = _Counting(llama), _Counting(llama)
    causal_tracing(llama, _ids(), backend=first, tasks=4, checkpoint=tmp_path / "t", **TRACE)
    got = causal_tracing(llama, _ids(), backend=again, tasks=4, checkpoint=tmp_path / "t", **TRACE)
    assert (first.ran, again.ran) == (4, 0)
    _same_tracing(got, ref)
    kw = _path("logits", 0.05)
    ref_p = local_path(llama, token_pairs(), **kw)
    first, again = _Counting(llama), _Counting(llama)
    path_patching(llama, token_pairs(), backend=first, tasks=3, checkpoint=tmp_path / "p", **kw)
    got_p = path_patching(llama, token_pairs(), backend=again, tasks=3, checkpoint=tmp_path / "p", **kw)  # fmt: skip
    assert (first.ran, again.ran) == (3, 0)
    _same_path(got_p, ref_p)


def test_bad_input_gives_clear_errors(llama):
    with pytest.raises(TracingError, match="tasks must be an int of at least 1"):
        causal_tracing(llama, _ids(), tasks=0, **TRACE)
    with pytest.raises(TracingError, match="not inside its 7 tokens"):
        causal_tracing(llama, _ids(), **{**TRACE, "subjects": [(5, 9)] * 3})
    with pytest.raises(DistributedError, match="valid: 'local', 'ray'"):
        causal_tracing(llama, _ids(), backend="dask", **TRACE)
    with pytest.raises(PatchingError, match="tasks must be an int of at least 1"):
        path_patching(llama, token_pairs(), tasks=-1, **_path("logits", 1.0))
    with pytest.raises(DistributedError, match="valid: 'local', 'ray'"):
        path_patching(llama, token_pairs(), backend="dask", **_path("logits", 1.0))
    plan = plan_tracing(llama, _ids(), subjects=SPANS, config=TracingConfig(samples=2, window=3))
    work = trace_cells.plan(llama, plan.inputs, ("resid",), plan.noises, 3, plan.method, 512.0)
    keys = trace_cells.cell_keys(work)[1:]
    with pytest.raises(TracingError, match=r"1 columns .* were not computed"):
        trace_cells.merge(work, [(keys, trace_cells.compute(llama, work, keys))])
    with pytest.raises(TracingError, match="no column at position 1"):
        trace_cells.compute(llama, work, [(0, 1)])  # before prompt 0's subject
    pwork = plan_path(llama, token_pairs(), path_config("all", "logits", False, "logit_diff", "auto", 0.05))  # fmt: skip
    spans = path_sweep.chunks(pwork.work)[1:]
    with pytest.raises(PatchingError, match="1 chunks of rows were not computed"):
        path_sweep.merge(pwork.work, pwork.grids, [(spans, path_sweep.compute(llama, pwork.work, spans))])  # fmt: skip


def test_both_sweeps_on_two_ray_workers_equal_the_local_techniques(llama, llama_workers, tmp_path):
    for method in ("suffix", "hooks"):
        ref = local_tracing(llama, _ids(), method=method, **TRACE)
        got = causal_tracing(llama, _ids(), backend=llama_workers, tasks=6, method=method, checkpoint=tmp_path, **TRACE)  # fmt: skip
        _same_tracing(got, ref)
    rerun = _Counting(llama)  # the Ray run's checkpoint serves a local rerun: nothing recomputed
    _same_tracing(causal_tracing(llama, _ids(), backend=rerun, tasks=6, method="hooks", checkpoint=tmp_path, **TRACE), ref)  # fmt: skip
    assert rerun.ran == 0
    for receivers, budget, method in (("logits", 0.05, "fast"), (HEADS, 0.2, "fast"), (HEADS, 0.5, "hooks")):  # fmt: skip
        kw = {**_path(receivers, budget), "method": method}
        ref_p = local_path(llama, token_pairs(), **kw)
        _same_path(path_patching(llama, token_pairs(), backend=llama_workers, tasks=3, **kw), ref_p)
    info = llama_workers.worker_info()
    assert [i["loads"] for i in info] == [1, 1]  # each actor loaded the model once, for 5 sweeps


def test_backend_ray_by_name_starts_its_own_workers(llama, cluster):
    kw = _path(HEADS, 0.2)
    got = path_patching(
        llama, token_pairs(), backend="ray", address=cluster, workers=2,
        model_factory="factories:tiny_llama", **kw,
    )  # fmt: skip
    _same_path(got, local_path(llama, token_pairs(), **kw))
