"""The sweeps on a real local Ray cluster (a head started with ``ray start`` and two worker
processes), compared with the local backend; faults: a killed worker, Ctrl-C, a restart."""

from __future__ import annotations

import _thread
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import tiny_model, token_pairs

ray = pytest.importorskip("ray")

from interplab.dictionaries import DictionaryConfig  # noqa: E402
from interplab.dictionaries.harvest import TensorSource  # noqa: E402
from interplab.dictionaries.train import TrainConfig  # noqa: E402
from interplab.distributed import (  # noqa: E402
    LocalBackend,
    ModelSpec,
    RayBackend,
    activation_patching,
    train_grid,
)
from interplab.distributed.patching import JOB  # noqa: E402
from interplab.techniques.patching import PatchingConfig, cells  # noqa: E402
from interplab.techniques.patching import activation_patching as local_patching  # noqa: E402

pytestmark = pytest.mark.ray
HERE = Path(__file__).resolve().parent
FACTORY = "factories:tiny_llama"


def _free_cpus(expected: float, timeout_s: float = 60) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if ray.available_resources().get("CPU", 0) >= expected:
            return True
        time.sleep(0.5)
    return False


def test_patching_on_two_ray_workers_equals_the_local_sweep_bit_for_bit(llama_workers):
    model = tiny_model("llama")
    tp = token_pairs(n=3, length=7)
    cfg = PatchingConfig(components=("resid_pre", "attn.z"), method="fast", control=False)
    ref = local_patching(model, tp, config=cfg, progress=False, record=False)
    got = activation_patching(
        model, tp, backend=llama_workers, config=cfg, tasks=7, progress=False, record=False
    )
    for c in cfg.components:
        assert np.array_equal(got.effects[c], ref.effects[c])
    hooks = {"components": ("mlp_out",), "method": "hooks", "control": True}
    ref = local_patching(model, tp, progress=False, record=False, **hooks)
    got = activation_patching(model, tp, backend=llama_workers, progress=False, record=False, **hooks)  # fmt: skip
    assert got.control is not None and ref.control is not None
    assert np.array_equal(got.effects["mlp_out"], ref.effects["mlp_out"])
    assert np.array_equal(got.control.effects["mlp_out"], ref.control.effects["mlp_out"])
    info = llama_workers.worker_info()
    assert len({i["pid"] for i in info}) == 2 and os.getpid() not in {i["pid"] for i in info}
    assert [i["loads"] for i in info] == [1, 1]  # each actor loaded the model once, for 3 sweeps


def test_a_dictionary_grid_on_ray_equals_the_local_grid(cluster):
    g = torch.Generator().manual_seed(0)
    acts = {"L1.resid_post": torch.randn(2048, 16, generator=g)}
    source = TensorSource(acts, block_tokens=1024)
    site = "L1.resid_post"
    grid = {
        "topk-32": DictionaryConfig("topk", d_in=16, d_sae=32, k=4, site=site),
        "relu-48": DictionaryConfig("standard", d_in=16, d_sae=48, site=site),
    }
    cfg = TrainConfig(total_tokens=4096, batch_tokens=256, log_every=4, checkpoint_every=1000)
    local = train_grid(source, grid, cfg, backend="local", progress=False)
    remote = train_grid(
        source, grid, cfg, backend="ray", address=cluster, progress=False
    )  # by name
    assert remote.computed == ("relu-48", "topk-32")
    for name in grid:
        a, b = local.dictionaries[name].state_dict(), remote.dictionaries[name].state_dict()
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a), name
        assert np.array_equal(local.curves[name].mse, remote.curves[name].mse)


def test_a_worker_killed_mid_sweep_is_replaced_and_the_sweep_completes_unchanged(llama_workers):
    model = tiny_model("llama")
    tp = token_pairs(n=3, length=8)
    cfg = PatchingConfig(components=("resid_pre", "mlp_out"), method="fast", control=False)
    ref = local_patching(model, tp, config=cfg, progress=False, record=False)
    plan = cells.plan(model, tp, cfg)
    split = cells.split(plan.work, 8)
    backend = llama_workers
    before = backend.worker_info()
    results: dict[int, torch.Tensor] = {}

    def done(i, result):
        if not results:  # the first result: kill a worker that holds queued tasks
            os.kill(before[1]["pid"], signal.SIGKILL)
        results[i] = result

    backend.map("factories:slow_cells", plan.work, split, done)
    after = backend.worker_info()
    assert sorted(results) == list(range(len(split)))
    got = cells.finish(
        model, plan, cells.merge(plan.work, [(split[i], results[i]) for i in results])
    )
    for c in cfg.components:
        assert np.array_equal(got.effects[c], ref.effects[c])
    assert after[1]["pid"] != before[1]["pid"]  # Ray restarted the actor in a new process
    assert after[0]["pid"] == before[0]["pid"]


class _Slow(RayBackend):
    def map(self, job, shared, tasks, done):
        assert job == JOB
        super().map("factories:slow_cells", shared, tasks, done)


def test_ctrl_c_leaves_no_task_running_records_interrupted_and_a_restart_finishes(
    cluster, tmp_path, monkeypatch
):
    from interplab.store import Project

    project = Project.init(tmp_path / "proj")
    monkeypatch.setenv("INTERPLAB_PROJECT", str(project.root))
    monkeypatch.setenv("INTERPLAB_HOME", str(tmp_path / "home"))
    model = tiny_model("llama")
    tp = token_pairs(n=3, length=10)
    cfg = PatchingConfig(components=("resid_pre",), method="fast", control=False)
    ckpt = tmp_path / "ckpt"
    free_before = ray.available_resources().get("CPU", 0)
    backend = _Slow(ModelSpec.of(model, FACTORY), address=cluster, workers=2)
    pids = [i["pid"] for i in backend.worker_info()]

    def press_ctrl_c():
        deadline = time.monotonic() + 120
        while not list(ckpt.glob("*/task-*.pt")) and time.monotonic() < deadline:
            time.sleep(0.02)
        _thread.interrupt_main()

    threading.Thread(target=press_ctrl_c, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        activation_patching(model, tp, backend=backend, config=cfg, tasks=10, checkpoint=ckpt, progress=False)  # fmt: skip
    finished = len(list(ckpt.glob("*/task-*.pt")))
    assert 1 <= finished < 10
    assert _free_cpus(free_before)  # the actors and their tasks are gone
    deadline = time.monotonic() + 30
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not any(_alive(p) for p in pids)
    runs = project.runs(technique="activation_patching")
    assert [r.status for r in runs] == ["interrupted"]

    ref = local_patching(model, tp, config=cfg, progress=False, record=False)
    again = LocalBackend(model)  # the Ray run's checkpoint, finished here
    ran: list[int] = []
    original = again.map

    def counting(job, shared, tasks, done):
        ran.append(len(tasks))
        original(job, shared, tasks, done)

    again.map = counting  # type: ignore[method-assign]
    got = activation_patching(model, tp, backend=again, config=cfg, tasks=10, checkpoint=ckpt, progress=False, record=False)  # fmt: skip
    assert ran == [10 - finished]
    assert np.array_equal(got.effects["resid_pre"], ref.effects["resid_pre"])
    project.close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead too
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False
