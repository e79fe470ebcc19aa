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
DeviceOpt = Annotated[str, typer.Option(help="cpu, cuda, cuda:1, mps")]
DtypeOpt = Annotated[str, typer.Option(help="float32, bfloat16, float16, float64")]
JsonOpt = Annotated[
    Path | None,
    typer.Option("--json", help="write the full result (per-example values, provenance) here"),
]
BudgetOpt = Annotated[float, typer.Option("--budget-mb", help="memory budget per batch")]
PlotOpt = Annotated[
    Path | None,
    typer.Option("--plot", help="write the figure here (PNG, and an interactive .html beside it)"),
]


def load_model(model: str, device: str = "cpu", dtype: str = "float32") -> Model:
    """Returns the loaded model, with a status line while it loads."""
    from interplab import load

    with err.status(f"loading {model}"):
        return load(model, device=device, dtype=dtype)


def write_outputs(
    result: Any, json_path: Path | None, plot: Path | None, *plot_args: Any, out: Console = console
) -> None:
    """Writes ``result`` as JSON and its figure (PNG + interactive HTML) where asked, saying so."""
    if json_path is not None:
        out.print(f"wrote {result.to_json(json_path)}")
    if plot is not None:
        for written in result.save_plot(plot, *plot_args):
            out.print(f"wrote {written}")
