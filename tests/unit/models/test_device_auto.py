"""``device="auto"``: the freest CUDA GPU, else MPS, else the CPU; bad names say what is valid."""

from __future__ import annotations

import pytest
import torch

from interplab.errors import UserError
from interplab.models import load as load_module


def test_auto_is_the_cpu_without_an_accelerator(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert load_module._device("auto") == torch.device("cpu")


def test_auto_picks_the_gpu_with_the_most_free_memory(monkeypatch):
    free = {0: 3 << 30, 1: 70 << 30, 2: 12 << 30}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 3)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda i: (free[i], 80 << 30))
    assert load_module.auto_device() == torch.device("cuda", 1)


def test_a_bad_device_names_the_valid_ones():
    with pytest.raises(UserError, match="'auto', 'cpu', 'cuda'"):
        load_module._device("tpu-ish")
