"""Progress for long work: a live bar on a terminal, plain lines when output goes to a file or CI.

`progress_bar(total, description, enabled)` yields ``advance(k)``. On a terminal it draws a rich
bar that disappears when done; otherwise (a log file, CI, a pipe) it prints a plain line to stderr
at every 10% and at most every 30 s in between, so a long run never looks hung.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from typing import TextIO


@contextlib.contextmanager
def progress_bar(
    total: int, description: str, enabled: bool = True, *, stream: TextIO | None = None
) -> Iterator[Callable[[int], None]]:
    """Yields an ``advance(k)`` callable over a progress display (a no-op when disabled)."""
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


__all__ = ["progress_bar"]
