"""The split and merge points and the task runner, without Ray: pieces merged equal one sweep."""

from __future__ import annotations

import builtins
import sys

import numpy as np
import pytest

from interplab.distributed import DistributedError, LocalBackend, ModelSpec, activation_patching
from interplab.distributed.tasks import run_tasks
from interplab.techniques.patching import PatchingConfig, cells
from interplab.techniques.patching import activation_patching as local_patching

from helpers import tiny_model, token_pairs


@pytest.mark.parametrize(
    ("family", "method", "per"),
    [("llama", "fast", "position"), ("llama", "fast", "all"), ("gpt2", "hooks", "position")],
)
def test_cells_split_in_tasks_and_merged_equal_the_one_piece_sweep(family, method, per):
    model = tiny_model(family)
    tp = token_pairs(n=3, length=7)
    cfg = PatchingConfig(
        components=("resid_pre", "attn.z", "mlp_out"), method=method, per=per, control=False
    )
    ref = local_patching(model, tp, config=cfg, progress=False, record=False)
    plan = cells.plan(model, tp, cfg)
    for parts in (1, 3, 7):
        split = cells.split(plan.work, parts)
        assert sorted(k for keys in split for k in keys) == sorted(cells.cell_keys(plan.work))
        pieces = [(keys, cells.compute(model, plan.work, keys)) for keys in split]
        res = cells.finish(model, plan, cells.merge(plan.work, pieces))
        for c in cfg.components:
            assert np.array_equal(res.effects[c], ref.effects[c]), (parts, c)
        assert res.method == ref.method


def test_merge_refuses_a_sweep_with_missing_cells():
    model = tiny_model("llama")
    plan = cells.plan(model, token_pairs(), PatchingConfig(method="fast", control=False))
    keys = cells.cell_keys(plan.work)[:-1]
    with pytest.raises(Exception, match="1 cells of resid_pre were not computed"):
        cells.merge(plan.work, [(keys, cells.compute(model, plan.work, keys))])


def test_local_backend_with_control_equals_the_local_technique():
    model = tiny_model("llama")
    tp = token_pairs(n=3, length=7)
    kw = {"components": ("resid_pre", "attn_out"), "method": "fast", "control": True}
    ref = local_patching(model, tp, progress=False, record=False, **kw)
    got = activation_patching(
        model, tp, backend="local", tasks=3, progress=False, record=False, **kw
    )
    assert got.control is not None and ref.control is not None
    for c in ("resid_pre", "attn_out"):
        assert np.array_equal(got.effects[c], ref.effects[c])
        assert np.array_equal(got.control.effects[c], ref.control.effects[c])
    assert got.provenance is not None and ref.provenance is not None
    assert got.provenance.config == ref.provenance.config


class _Counting(LocalBackend):
    def __init__(self, model, stop_after=None):
        super().__init__(model)
        self.ran, self.stop_after = 0, stop_after

    def map(self, job, shared, tasks, done):
        def counted(i, result):
            if self.stop_after is not None and self.ran >= self.stop_after:
                raise KeyboardInterrupt
            self.ran += 1
            done(i, result)

        super().map(job, shared, tasks, counted)


def test_a_restarted_sweep_computes_only_the_missing_tasks(tmp_path):
    model = tiny_model("llama")
    tp = token_pairs(n=3, length=7)
    kw = {"components": ("resid_pre",), "method": "fast", "control": False, "tasks": 7}
    ref = local_patching(model, tp, progress=False, record=False, method="fast", control=False)
    first = _Counting(model, stop_after=3)
    with pytest.raises(KeyboardInterrupt):
        activation_patching(model, tp, backend=first, checkpoint=tmp_path, progress=False, record=False, **kw)  # fmt: skip
    assert first.ran == 3 and len(list(tmp_path.glob("*/task-*.pt"))) == 3
    second = _Counting(model)
    got = activation_patching(model, tp, backend=second, checkpoint=tmp_path, progress=False, record=False, **kw)  # fmt: skip
    assert second.ran == 4
    assert np.array_equal(got.effects["resid_pre"], ref.effects["resid_pre"])


def test_run_tasks_keeps_results_in_task_order(tmp_path):
    backend = LocalBackend(None)
    run = run_tasks(
        backend, "factories:pick", [10, 20, 30], [2, 0, 1],
        fingerprint={"t": 1}, checkpoint=tmp_path, progress=False,
    )  # fmt: skip
    assert [int(r) for r in run.results] == [30, 10, 20] and run.computed == [0, 1, 2]
    again = run_tasks(
        backend, "factories:pick", [10, 20, 30], [2, 0, 1],
        fingerprint={"t": 1}, checkpoint=tmp_path, progress=False,
    )  # fmt: skip
    assert [int(r) for r in again.results] == [30, 10, 20] and again.computed == []


def test_ray_backend_without_ray_says_how_to_install_it(monkeypatch):
    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray" or name.startswith("ray."):
            raise ImportError("No module named 'ray'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setitem(sys.modules, "ray", None)
    monkeypatch.setattr(builtins, "__import__", no_ray)
    with pytest.raises(DistributedError, match=r"pip install 'interplab\[ray\]'"):
        activation_patching(tiny_model("llama"), token_pairs(), backend="ray", record=False)


def test_unknown_backend_and_bad_specs_are_clear_errors():
    with pytest.raises(DistributedError, match="valid: 'local', 'ray'"):
        activation_patching(tiny_model("llama"), token_pairs(), backend="dask", record=False)
    with pytest.raises(DistributedError, match="module:function"):
        ModelSpec(factory="nofunction")
    with pytest.raises(DistributedError, match="exactly one"):
        ModelSpec()


def test_a_worker_with_other_weights_is_refused():
    spec = ModelSpec(factory="factories:tiny_llama", weights_sha256="0" * 64)
    with pytest.raises(DistributedError, match="must load the same weights"):
        spec.load()
