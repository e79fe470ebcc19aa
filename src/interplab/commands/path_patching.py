"""CLI command ``path-patch``: a thin shell over `interplab.techniques.patching.path`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from interplab.commands._options import (
    AddressOpt,
    BackendOpt,
    BudgetOpt,
    DeviceOpt,
    DtypeOpt,
    JsonOpt,
    ModelOpt,
    PlotOpt,
    WorkersOpt,
    check_outputs,
    write_outputs,
)
from interplab.commands.patching import NOpt, SeedOpt, TaskOpt, _table, load_task


def register(app: typer.Typer) -> None:
    """Adds the ``path-patch`` command to ``app``."""

    @app.command("path-patch")
    def path_patch(
        task: TaskOpt = "ioi",
        n: NOpt = 16,
        seed: SeedOpt = 0,
        senders: Annotated[
            str, typer.Option(help="heads | mlps | all | sites, e.g. L3.attn.z.h5,L4.mlp_out")
        ] = "heads",
        receivers: Annotated[
            str, typer.Option(help="logits | head inputs, e.g. L20.attn.q.h3,L20.attn.k.h3")
        ] = "logits",
        freeze_mlps: Annotated[
            bool, typer.Option("--freeze-mlps", help="freeze MLPs too (direct paths only)")
        ] = False,
        budget_mb: BudgetOpt = 512.0,
        backend: BackendOpt = "local",
        address: AddressOpt = None,
        workers: WorkersOpt = 2,
        json: JsonOpt = None,
        plot: PlotOpt = None,
        model: ModelOpt = "smollm2-135m",
        device: DeviceOpt = "auto",
        dtype: DtypeOpt = "float32",
    ) -> None:
        """Path patching: each sender's effect on the logits or on chosen heads' q/k/v inputs."""
        from interplab.techniques.patching import SENDER_SETS, path_patching

        plot = check_outputs(json, plot)
        console, loaded, pairs = load_task(task, n, seed, model, device, dtype)
        sender_spec = senders if senders in SENDER_SETS else _split(senders)
        options: dict[str, Any] = {
            "senders": sender_spec,
            "receivers": "logits" if receivers == "logits" else _split(receivers),
            "freeze_mlps": freeze_mlps,
            "batch_budget_mb": budget_mb,
            "progress": True,
        }
        if backend == "ray":
            from interplab.distributed.path_patching import path_patching as distributed_path

            result = distributed_path(
                loaded, pairs, backend="ray", address=address, workers=workers, **options
            )
        else:
            result = path_patching(loaded, pairs, **options)
        console.print(
            f"clean {result.metric} {result.clean.mean():+.3f}, corrupt "
            f"{result.corrupt.mean():+.3f} (n={result.n}); {result.title}"
        )
        if result.note:
            console.print(f"[yellow]note:[/] {result.note}")
        for comp in result.components:
            _table(result, comp, f"path patching: strongest {comp} senders", console)
            console.print(result.describe(comp))
        write_outputs(result, json, None, out=console)
        if plot is not None:
            for comp in result.components:
                path = plot if len(result.components) == 1 else _suffixed(plot, comp)
                write_outputs(result, None, path, out=console, component=comp)


def _split(text: str) -> list[str]:
    return [s.strip() for s in text.split(",") if s.strip()]


def _suffixed(path: Path, comp: str) -> Path:
    return path.with_name(f"{path.stem}.{comp.replace('.', '_')}{path.suffix or '.png'}")
