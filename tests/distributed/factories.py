"""Model factories and slow jobs that Ray workers import by ``"module:function"`` path."""

from __future__ import annotations

import time
from typing import Any

from helpers import tiny_model


def tiny_llama() -> Any:
    """The tiny random Llama of `helpers.tiny_model` (seeded: every process builds the same)."""
    return tiny_model("llama")


def tiny_gpt2() -> Any:
    """The tiny random GPT-2 (no partial forwards: the hook path)."""
    return tiny_model("gpt2")


def slow_cells(model: Any, work: Any, keys: Any) -> Any:
    """The patching task, slowed so that a test can interrupt a sweep in the middle."""
    from interplab.distributed.patching import compute_cells

    time.sleep(0.4)
    return compute_cells(model, work, keys)


def pick(model: Any, shared: Any, task: Any) -> Any:
    """A trivial job: item ``task`` of the shared list."""
    del model
    return shared[task]
