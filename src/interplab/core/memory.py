"""Memory budgets read from the device: how much a batch may take when the user says ``"auto"``.

1. `free_mb` is what the device has free now: CUDA's ``mem_get_info`` (free bytes on that GPU,
   other processes' use included), MPS's recommended working set less what this process holds,
   and on the CPU the kernel's ``MemAvailable`` (``/proc/meminfo``; ``os.sysconf`` pages where
   that file is missing).
2. `resolve_budget` turns a budget option into megabytes: a number is used as given; ``"auto"``
   is `AUTO_SHARE` of the free memory, read once when the sweep sizes its batches, at least
   `AUTO_FLOOR_MB`. A quarter leaves room for the model's own activations, the results and other
   processes.

Batch sizes change the order of floating-point sums on some paths, so a rerun that must be
bit-identical passes a number (the docs of each technique say where this applies).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from interplab.configs import AUTO, ConfigError

AUTO_SHARE = 0.25
AUTO_FLOOR_MB = 64.0


def free_mb(device: torch.device | str) -> float:
    """Returns the memory free on ``device`` now, in MiB."""
    dev = torch.device(device)
    if dev.type == "cuda":
        free, _ = torch.cuda.mem_get_info(dev)
        return free / 2**20
    if dev.type == "mps":
        mps = torch.mps
        limit = mps.recommended_max_memory() - mps.driver_allocated_memory()
        return max(0.0, limit / 2**20)
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**20


def resolve_budget(budget: float | str, device: torch.device | str) -> float:
    """Returns the budget in MiB: ``budget`` itself when a number, else (``"auto"``)
    `AUTO_SHARE` of ``device``'s free memory, at least `AUTO_FLOOR_MB`."""
    if isinstance(budget, str):
        if budget != AUTO:
            raise ConfigError(f"a memory budget is a number of MiB or {AUTO!r}, got {budget!r}")
        return max(AUTO_FLOOR_MB, AUTO_SHARE * free_mb(device))
    return float(budget)


__all__ = ["AUTO_FLOOR_MB", "AUTO_SHARE", "free_mb", "resolve_budget"]
