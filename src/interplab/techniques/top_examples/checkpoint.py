"""Checkpoints of a max-activating pass: the state after the last finished batch, on disk.

1. `save` writes the state's tensors, the number of batches done and the pass's identity (the
   corpus, its hash, the directions and every option that changes the state) atomically: a temp
   file in the same folder, then a rename, so an interrupt never leaves half a checkpoint.
2. `resume` returns the saved state and batch count when the file exists and its identity is
   this pass's; any other checkpoint is ignored (and overwritten at the next save).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from interplab.data.cache import atomic_write
from interplab.techniques.top_examples.state import State


def save(path: Path, state: State, done: int, identity: dict[str, Any]) -> None:
    """Writes the state after ``done`` batches of the pass ``identity`` describes."""
    payload = {
        "state": state.tensors(),
        "batches_done": done,
        "config": json.dumps(identity, sort_keys=True),
    }
    atomic_write(path, lambda handle: torch.save(payload, handle))


def resume(path: Path | None, identity: dict[str, Any]) -> tuple[State, int] | None:
    """Returns (state, batches done) saved for this pass at ``path``, or None."""
    if path is None or not path.is_file():
        return None
    saved = torch.load(path, weights_only=True)
    if saved.get("config") != json.dumps(identity, sort_keys=True):
        return None
    return State.from_tensors(saved["state"]), int(saved["batches_done"])


__all__ = ["resume", "save"]
