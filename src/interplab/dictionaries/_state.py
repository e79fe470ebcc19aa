"""Training state: the dictionaries being trained, where the data stream is, and checkpoints.

A checkpoint holds everything the next step depends on: each dictionary's parameters and buffers,
its Adam state, its dead-latent counters, its input/output scales, the stream position (epoch,
block, next batch), and the metric history. Blocks and batches are pure functions of the
position and the seed (`interplab.dictionaries.harvest`), so a resumed run computes the same
weights bit for bit. Checkpoints are written to a temporary file and renamed into place, so a
kill mid-write leaves the previous checkpoint intact.
"""

from __future__ import annotations

import dataclasses
import errno
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from interplab.data.cache import atomic_write
from interplab.dictionaries.base import Dictionary
from interplab.dictionaries.config import DictionaryError

CHECKPOINT = "checkpoint.pt"
_FORMAT = 1
HISTORY_KEYS = ("tokens", "mse", "fve", "l0", "dead_fraction", "lr")


@dataclass
class Position:
    """Where training is: the next batch to train on, and how far it has come."""

    epoch: int = 0
    block: int = 0
    batch: int = 0
    step: int = 0
    tokens: int = 0
    finished: bool = False


@dataclass
class Member:
    """One dictionary in training with its optimiser, counters, scales and history."""

    name: str
    dictionary: Dictionary
    optimizer: torch.optim.Optimizer
    since_fired: Tensor
    scale_in: float
    scale_out: float
    history: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in HISTORY_KEYS})
    evals: dict[str, list[float]] = field(default_factory=dict)
    window: dict[str, float] = field(default_factory=dict)

    def accumulate(self, **values: float) -> None:
        """Adds one batch's metrics to the current logging interval."""
        for k, v in values.items():
            self.window[k] = self.window.get(k, 0.0) + v
        self.window["count"] = self.window.get("count", 0.0) + 1

    def log(self, tokens: int, lr: float, dead_fraction: float) -> dict[str, float]:
        """Closes the logging interval: appends its means to the history and returns them."""
        count = self.window.pop("count", 0.0)
        if count == 0:
            return {}
        row = {k: v / count for k, v in self.window.items()}
        row.update(tokens=float(tokens), lr=lr, dead_fraction=dead_fraction)
        for k in HISTORY_KEYS:
            self.history[k].append(float(row.get(k, float("nan"))))
        self.window = {}
        return row

    def state(self) -> dict[str, Any]:
        return {
            "dictionary": self.dictionary.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "since_fired": self.since_fired,
            "scale_in": self.scale_in,
            "scale_out": self.scale_out,
            "history": self.history,
            "evals": self.evals,
            "window": self.window,
        }

    def restore(self, state: dict[str, Any]) -> None:
        self.dictionary.load_state_dict(state["dictionary"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.since_fired = state["since_fired"]
        self.scale_in, self.scale_out = float(state["scale_in"]), float(state["scale_out"])
        self.history = {k: list(v) for k, v in state["history"].items()}
        self.evals = {k: list(v) for k, v in state["evals"].items()}
        self.window = dict(state["window"])


def save_checkpoint(
    folder: Path,
    fingerprint: dict[str, Any],
    position: Position,
    members: dict[str, Member],
    seconds: float,
) -> Path:
    """Writes the training state to ``folder/checkpoint.pt`` atomically and returns the path."""
    state = {
        "format": _FORMAT,
        "fingerprint": fingerprint,
        "position": dataclasses.asdict(position),
        "seconds": seconds,
        "members": {name: m.state() for name, m in members.items()},
        "torch_rng": torch.get_rng_state(),
    }
    path = folder / CHECKPOINT
    try:
        return atomic_write(path, lambda f: torch.save(state, f))
    except OSError as e:
        reason = "the disk is full" if e.errno == errno.ENOSPC else (e.strerror or str(e))
        raise DictionaryError(
            f"cannot write the checkpoint {path}: {reason}; the previous checkpoint is intact"
        ) from None


def load_checkpoint(folder: Path, fingerprint: dict[str, Any]) -> dict[str, Any] | None:
    """Returns the saved state in ``folder`` (None if there is none); refuses a checkpoint made
    with different dictionaries, data or settings."""
    path = folder / CHECKPOINT
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for a damaged file
        raise DictionaryError(
            f"the checkpoint {path} cannot be read ({type(e).__name__}: {e}); delete it to start "
            "over"
        ) from None
    if not isinstance(state, dict) or state.get("format") != _FORMAT:
        raise DictionaryError(f"{path} is not a training checkpoint of this version")
    if state["fingerprint"] != fingerprint:
        saved, now = state["fingerprint"], fingerprint
        changed = sorted(k for k in set(saved) | set(now) if saved.get(k) != now.get(k))
        raise DictionaryError(
            f"the checkpoint {path} was made with different settings (differs in: "
            f"{', '.join(changed)}); use another output folder, or delete it to start over"
        )
    return state


@contextmanager
def deferred_interrupt() -> Iterator[dict[str, bool]]:
    """Yields a flag dict; a Ctrl-C during a step sets ``now`` (the step finishes, then the loop
    checkpoints and stops); between steps, or a second Ctrl-C, interrupts at once."""
    pending: dict[str, bool] = {}
    try:
        previous = signal.getsignal(signal.SIGINT)
    except ValueError:  # not the main thread: no handler can be installed
        yield pending
        return
    if previous is signal.SIG_IGN or not callable(previous):
        yield pending
        return

    def handler(signum: int, frame: Any) -> None:
        if pending.get("now") or not pending.get("stepping", False):
            previous(signum, frame)  # type: ignore[operator]
        pending["now"] = True

    try:
        signal.signal(signal.SIGINT, handler)
    except ValueError:
        yield pending
        return
    try:
        yield pending
    finally:
        signal.signal(signal.SIGINT, previous)


__all__ = [
    "CHECKPOINT",
    "Member",
    "Position",
    "deferred_interrupt",
    "load_checkpoint",
    "save_checkpoint",
]
