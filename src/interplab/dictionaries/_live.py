"""A progress display with live metrics: a rich bar on a terminal, plain lines otherwise.

`interplab.progress.progress_bar` draws counts only; training also wants its loss on the bar. On a
terminal this draws a rich bar with a metrics column that each `update` replaces; elsewhere (a
log file, CI) it prints a plain line with the metrics at every 10% and at most every 30 s.
"""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import Any, TextIO


class LiveBar:
    """``with LiveBar(total, "training") as bar: bar.update(done, "FVE 0.81 L0 32")``."""

    def __init__(
        self, total: int, description: str, enabled: bool = True, stream: TextIO | None = None
    ) -> None:
        self.total, self.description, self.enabled = max(total, 1), description, enabled
        self.out = stream if stream is not None else sys.stderr
        self._bar: Any = None
        self._task: Any = None
        self._next_step = 1
        self._started = self._last = time.monotonic()

    def __enter__(self) -> LiveBar:
        if self.enabled and self.out.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

            self._bar = Progress(
                "[progress.description]{task.description}",
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                "{task.fields[metrics]}",
                console=Console(file=self.out),
                transient=False,
            )
            self._bar.__enter__()
            self._task = self._bar.add_task(self.description, total=self.total, metrics="")
        elif self.enabled:
            print(f"{self.description}: 0/{self.total}", file=self.out, flush=True)
        return self

    def update(self, done: int, metrics: str) -> None:
        """Shows ``done`` of ``total`` and the metrics text."""
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(self._task, completed=min(done, self.total), metrics=metrics)
            return
        now = time.monotonic()
        step = done * 10 // self.total
        if step >= self._next_step or now - self._last >= 30 or done >= self.total:
            self._next_step, self._last = step + 1, now
            elapsed = now - self._started
            print(
                f"{self.description}: {min(done, self.total)}/{self.total} "
                f"({100 * min(done, self.total) // self.total}%, {elapsed:.0f} s) {metrics}",
                file=self.out,
                flush=True,
            )

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._bar is not None:
            self._bar.__exit__(kind, value, traceback)


__all__ = ["LiveBar"]
