"""Memory budgets: a number is used as given; "auto" is a share of the device's free memory."""

from __future__ import annotations

from pathlib import Path

import pytest

from interplab.configs import ConfigError
from interplab.core import memory
from interplab.techniques.patching import PatchingConfig, activation_patching

from helpers import tiny_model, token_pairs


def test_cpu_free_memory_is_the_kernels_available_memory():
    meminfo = Path("/proc/meminfo")
    if not meminfo.exists():
        pytest.skip("no /proc/meminfo")
    line = next(x for x in meminfo.read_text().splitlines() if x.startswith("MemAvailable:"))
    expected = int(line.split()[1]) / 1024
    assert memory.free_mb("cpu") == pytest.approx(expected, rel=0.05)


def test_auto_is_a_share_of_free_memory_with_a_floor(monkeypatch):
    monkeypatch.setattr(memory, "free_mb", lambda device: 10_000.0)
    assert memory.resolve_budget("auto", "cpu") == 10_000.0 * memory.AUTO_SHARE
    monkeypatch.setattr(memory, "free_mb", lambda device: 10.0)
    assert memory.resolve_budget("auto", "cpu") == memory.AUTO_FLOOR_MB
    assert memory.resolve_budget(123.0, "cpu") == 123.0


def test_cuda_budget_reads_mem_get_info(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (8 * 2**30, 80 * 2**30))
    assert memory.free_mb("cuda:0") == 8 * 1024
    assert memory.resolve_budget("auto", "cuda:0") == 8 * 1024 * memory.AUTO_SHARE


def test_a_budget_is_a_number_or_auto():
    with pytest.raises(ConfigError, match="number of MiB or 'auto'"):
        PatchingConfig(batch_budget_mb="lots")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="must be > 0"):
        PatchingConfig(batch_budget_mb=0)
    with pytest.raises(ConfigError, match="number of MiB or 'auto'"):
        memory.resolve_budget("big", "cpu")
    cfg = PatchingConfig(batch_budget_mb="auto")
    assert PatchingConfig.from_dict(cfg.to_dict()) == cfg


def test_an_auto_budget_sweep_equals_a_fixed_one_where_batches_do_not_matter(monkeypatch):
    model = tiny_model("llama")
    tp = token_pairs(n=3, length=6)
    fixed = activation_patching(
        model, tp, method="hooks", batch_budget_mb=512.0, control=False, progress=False
    )
    seen = []
    real = memory.free_mb
    monkeypatch.setattr(memory, "free_mb", lambda device: seen.append(device) or real(device))
    auto = activation_patching(
        model, tp, method="hooks", batch_budget_mb="auto", control=False, progress=False
    )
    assert seen, "the auto budget never read the device's free memory"
    assert (auto.effects["resid_pre"] == fixed.effects["resid_pre"]).all()
