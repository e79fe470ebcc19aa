"""Options and helpers every command shares: the model, device, dtype and output flags."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

if TYPE_CHECKING:
    from interplab.core.model import Model

console = Console()
err = Console(stderr=True)

ModelOpt = Annotated[
    str, typer.Option("--model", "-m", help="embedded name, HF folder, or .gguf file")
]
DeviceOpt = Annotated[
    str, typer.Option(help="auto (the freest CUDA GPU, else MPS, else cpu), cpu, cuda, cuda:1, mps")
]
DtypeOpt = Annotated[str, typer.Option(help="float32, bfloat16, float16, float64")]
JsonOpt = Annotated[
    Path | None,
    typer.Option("--json", help="write the full result (per-example values, provenance) here"),
]


def parse_budget(text: str) -> float | str:
    """Returns a ``--budget-mb`` value: a positive number of MiB, or ``"auto"``."""
    if text == "auto":
        return text
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise typer.BadParameter(f"a positive number of MiB or 'auto', got {text!r}")
    return value


BudgetOpt = Annotated[
    Any,
    typer.Option(
        "--budget-mb",
        parser=parse_budget,
        metavar="MIB|auto",
        help="memory per batch in MiB, or auto (a quarter of the device's free memory)",
    ),
]


def _backend(value: str) -> str:
    if value not in ("local", "ray"):
        raise typer.BadParameter(f"--backend is local or ray, not {value!r}")
    return value


BackendOpt = Annotated[
    str,
    typer.Option(
        callback=_backend,
        help="local | ray: the sweep's tasks on a Ray cluster (pip install 'interplab[ray]')",
    ),
]
AddressOpt = Annotated[
    str | None,
    typer.Option(help="Ray cluster address ('ray start --head' prints it); none: a private one"),
]
WorkersOpt = Annotated[int, typer.Option(min=1, help="Ray actors (each loads the model once)")]
PlotOpt = Annotated[
    Path | None,
    typer.Option("--plot", help="write the figure here (PNG, and an interactive .html beside it)"),
]


def load_model(model: str, device: str = "cpu", dtype: str = "float32") -> Model:
    """Returns the loaded model, with a status line while it loads."""
    from interplab import load

    with err.status(f"loading {model}"):
        return load(model, device=device, dtype=dtype)


def check_outputs(json_path: Path | None = None, plot: Path | None = None) -> Path | None:
    """Checks, before any compute, that the output files can be written: a figure format we write,
    and folders that exist (or can be made) and accept files. Returns the figure path as it will
    be written (``.png`` added when it has no suffix)."""
    from interplab.viz.render import check_plot_path

    target = None if plot is None else check_plot_path(plot)
    for p in (json_path, target):
        if p is not None:
            check_writable(p)
    return target


def check_writable(path: Path) -> None:
    """Raises UserError unless a file can be created at ``path`` (its folder is made if missing)."""
    from interplab.errors import UserError

    if path.is_dir():
        raise UserError(f"{path} is a folder; give a file name such as {path / 'result.json'}")
    parent = path.parent
    for up in [parent, *parent.parents]:
        if up.exists():
            if not up.is_dir():
                raise UserError(f"cannot write {path}: {up} is a file, not a folder")
            break
    try:
        parent.mkdir(parents=True, exist_ok=True)
        probe = parent / f".{path.name}.check"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise UserError(f"cannot write {path}: {e.strerror or e}") from None


def write_outputs(
    result: Any, json_path: Path | None, plot: Path | None, out: Console = console, **options: Any
) -> None:
    """Writes ``result`` as JSON and its figure (and, for grids, the interactive page) where
    asked, saying what was written."""
    from interplab import viz

    if json_path is not None:
        out.print(f"wrote {result.to_json(json_path)}")
    if plot is not None:
        for written in viz.save(result, plot, **options):
            out.print(f"wrote {written}")
