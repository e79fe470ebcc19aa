"""Wall-clock timings with medians and spreads, and the table every benchmark prints.

1. `median_time` times one function: `warmup` untimed calls, then `repeats` timed ones.
2. `interleaved_times` times several functions round-robin (one call of each per round, the
   order rotating), so that load from other processes on a shared machine lands on every row
   alike and the ratios between rows stay meaningful even when the absolute times drift.
3. `print_table` prints name | median | IQR | ratio to the HF forward | to TL | to nnsight.
"""

from __future__ import annotations

import contextlib
import gc
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from rich.console import Console
from rich.table import Table


@dataclass(frozen=True)
class Timing:
    """Seconds per call: the median, the interquartile range, and every timed run."""

    median: float
    iqr: float
    runs: tuple[float, ...]

    @classmethod
    def of(cls, runs: list[float]) -> Timing:
        if len(runs) >= 2:
            q1, _, q3 = statistics.quantiles(runs, n=4, method="inclusive")
        else:
            q1 = q3 = runs[0]
        return cls(median=statistics.median(runs), iqr=q3 - q1, runs=tuple(runs))


def median_time(
    fn: Callable[[], object], *, warmup: int = 2, repeats: int = 7, inference_mode: bool = True
) -> Timing:
    """Returns the timing of `fn()` over `repeats` calls after `warmup` untimed ones."""
    return interleaved_times(
        {"fn": fn}, warmup=warmup, repeats=repeats, inference_mode=inference_mode
    )["fn"]


def interleaved_times(
    fns: Mapping[str, Callable[[], object]],
    *,
    warmup: int = 2,
    repeats: int = 7,
    inference_mode: bool = True,
) -> dict[str, Timing]:
    """Returns each function's timing, measured round-robin with the order rotating per round.

    `inference_mode=False` is for functions that need autograd (attribution patching); every
    capture and patch we compare is valid under `torch.inference_mode()`.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    names = list(fns)
    runs: dict[str, list[float]] = {name: [] for name in names}
    mode = torch.inference_mode() if inference_mode else contextlib.nullcontext()
    with mode:
        for _ in range(warmup):
            for name in names:
                fns[name]()
        for round_ in range(repeats):
            shift = round_ % len(names)
            for name in names[shift:] + names[:shift]:
                gc.collect()
                start = time.perf_counter()
                fns[name]()
                runs[name].append(time.perf_counter() - start)
    return {name: Timing.of(runs[name]) for name in names}


def print_table(
    timings: Mapping[str, Timing],
    *,
    floor: str,
    tl: str | None = None,
    nnsight: str | None = None,
    title: str = "",
    console: Console | None = None,
) -> None:
    """Prints one row per timing with its ratios to the floor (HF forward), TL and nnsight rows."""
    table = Table(title=title or None)
    table.add_column("name")
    table.add_column("median s", justify="right")
    table.add_column("IQR s", justify="right")
    table.add_column("× HF forward", justify="right")
    table.add_column("× TL", justify="right")
    table.add_column("× nnsight", justify="right")
    for name, timing in timings.items():
        table.add_row(
            name,
            f"{timing.median:.3f}",
            f"{timing.iqr:.3f}",
            _ratio(timing, timings.get(floor)),
            _ratio(timing, timings.get(tl) if tl else None),
            _ratio(timing, timings.get(nnsight) if nnsight else None),
        )
    (console or Console()).print(table)


def _ratio(timing: Timing, reference: Timing | None) -> str:
    if reference is None or reference.median <= 0:
        return "–"
    return f"{timing.median / reference.median:.2f}"
