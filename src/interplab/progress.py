"""Progress for long work: a live bar on a terminal, plain lines when output goes to a file or CI.

`progress_bar(total, description, enabled)` yields ``advance(k)``. On a terminal it draws a rich
bar that disappears when done; otherwise (a log file, CI, a pipe) it prints a plain line to stderr
at every 10% and at most every 30 s in between, so a long run never looks hung.

Listeners (`listen`) hear every bar's progress, shown or not, at most every
`LISTEN_INTERVAL_S` and when it completes: the store records it in the running run's row, so
the dashboard shows how far a run has got (``progress`` sits below ``store`` in the layers, so
the store registers itself here rather than the bar calling the store).
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from typing import TextIO

Listener = Callable[[str, int, int], None]
"""``listener(description, done, total)``."""

LISTEN_INTERVAL_S = 1.0
_listeners: list[Listener] = []


def listen(listener: Listener) -> Callable[[], None]:
    """Adds ``listener`` to every progress bar from now on; returns the function removing it."""
    _listeners.append(listener)

    def remove() -> None:
        if listener in _listeners:
            _listeners.remove(listener)

    return remove


class _Heard:
    """Counts a bar's progress and tells the listeners, throttled."""

    def __init__(self, total: int, description: str, advance: Callable[[int], None]) -> None:
        self.total, self.description, self.inner = total, description, advance
        self.done = 0
        self.last = -float("inf")
        self._tell()

    def __call__(self, k: int = 1) -> None:
        self.inner(k)
        self.done += k
        now = time.monotonic()
        if now - self.last >= LISTEN_INTERVAL_S or self.done >= self.total:
            self._tell(now)

    def _tell(self, now: float | None = None) -> None:
        self.last = time.monotonic() if now is None else now
        for listener in list(_listeners):
            try:
                listener(self.description, min(self.done, self.total), self.total)
            except Exception:  # a listener must never break the work it watches
                _listeners.remove(listener)


@contextlib.contextmanager
def progress_bar(
    total: int, description: str, enabled: bool = True, *, stream: TextIO | None = None
) -> Iterator[Callable[[int], None]]:
    """Yields an ``advance(k)`` callable over a progress display (a no-op when disabled); the
    listeners hear it either way."""
    with _display(total, description, enabled, stream) as advance:
        yield _Heard(total, description, advance) if _listeners and total > 0 else advance


@contextlib.contextmanager
def _display(
    total: int, description: str, enabled: bool, stream: TextIO | None
) -> Iterator[Callable[[int], None]]:
    if not enabled or total <= 0:
        yield lambda k=1: None
        return
    out = stream if stream is not None else sys.stderr
    if out.isatty():
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

        with Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            transient=True,
            console=Console(file=out),
        ) as bar:
            task = bar.add_task(description, total=total)
            yield lambda k=1: bar.advance(task, k)
        return
    yield _PlainProgress(total, description, out).advance


class _PlainProgress:
    """Plain-text progress lines: at each 10% step, and every 30 s while between steps."""

    def __init__(self, total: int, description: str, out: TextIO) -> None:
        self.total, self.description, self.out = total, description, out
        self.done = 0
        self.started = self.last = time.monotonic()
        self.next_step = 1
        print(f"{description}: 0/{total}", file=out, flush=True)

    def advance(self, k: int = 1) -> None:
        self.done += k
        now = time.monotonic()
        step = self.done * 10 // self.total
        if step >= self.next_step or now - self.last >= 30 or self.done >= self.total:
            self.next_step = step + 1
            self.last = now
            elapsed = now - self.started
            eta = elapsed / self.done * (self.total - self.done) if self.done else 0.0
            print(
                f"{self.description}: {min(self.done, self.total)}/{self.total} "
                f"({100 * min(self.done, self.total) // self.total}%, {elapsed:.0f} s, "
                f"~{eta:.0f} s left)",
                file=self.out,
                flush=True,
            )


__all__ = ["LISTEN_INTERVAL_S", "Listener", "listen", "progress_bar"]
