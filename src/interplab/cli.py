"""The command line: a thin shell over library functions (no computation lives here)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from interplab.commands._options import console, err

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="interplab: look inside open language models, test causal hypotheses, defend the results.",
)


@app.command()
def models(
    verify: Annotated[
        bool, typer.Option("--verify", help="check every cached model's weights byte by byte")
    ] = False,
) -> None:
    """List the embedded models: installed or not, converted or not, sizes and licences."""
    from interplab.models import cache_root, embedded_models

    if verify:
        from interplab.models.load import verify_cache

        checked = verify_cache(full=True)
        bad = 0
        for folder, problem in checked:
            if problem is None:
                console.print(f"verified {folder}")
            else:
                bad += 1
                err.print(
                    f"[bold red]damaged:[/] {folder}: {problem} (the next load converts it again)"
                )
        if not checked:
            console.print(f"no converted models in {cache_root() / 'models'}")
        if bad:
            sys.exit(1)

    table = Table(title=f"embedded models (cache: {cache_root()})")
    for col in ("name", "model", "licence", "installed", "GGUF", "converted"):
        table.add_column(col)
    for row in embedded_models():
        table.add_row(
            row["name"],
            row["hf_id"],
            row["licence"],
            "yes" if row["installed"] else f"no: {row['install']}",
            f"{row['gguf_bytes'] / 1e6:.0f} MB" if row["installed"] else "-",
            f"{row['converted_bytes'] / 1e6:.0f} MB"
            if row["converted"]
            else "not yet (first load converts)",
        )
    console.print(table)
    console.print(
        "Also: any local HF folder (config.json + safetensors + tokenizer) or .gguf file, "
        "e.g. `interplab lens --model ./my-model ...`."
    )


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="folder for index.html, figures and JSON")] = Path(
        "reports/demo"
    ),
) -> None:
    """The main job: logit lens and direct logit attribution on the embedded model, as a report."""
    from interplab.demo import run_demo

    run_demo(out, console=console)


def _register_command_groups() -> None:
    from interplab.commands import patching, probes, steering

    for group in (patching, probes, steering):
        group.register(app)
    from interplab.commands import tracing as tracing_commands

    tracing_commands.register(app)
    from interplab.commands import path_patching as path_patching_commands

    path_patching_commands.register(app)
    from interplab.commands import dla as dla_commands
    from interplab.commands import lens as lens_commands

    lens_commands.register(app)
    dla_commands.register(app)
    from interplab.commands import store as store_commands

    store_commands.register(app)
    from interplab.commands import sae as sae_commands

    sae_commands.register(app)
    from interplab.commands import das as das_commands

    das_commands.register(app)
    from interplab.commands import dashboard as dashboard_commands

    dashboard_commands.register(app)
    from interplab.commands import graph as graph_commands

    graph_commands.register(app)
    from interplab.commands import audit as audit_commands
    from interplab.commands import blackbox as blackbox_commands

    blackbox_commands.register(app)
    audit_commands.register(app)


_register_command_groups()


def main() -> None:
    """Entry point: the library's own input errors print one clear line and exit 2; anything else
    is a bug and keeps its traceback."""
    from interplab.errors import UserError

    try:
        code = app(standalone_mode=False)
    except UserError as e:
        err.print(f"[bold red]error:[/] {e}")
        sys.exit(2)
    except KeyboardInterrupt:
        err.print("interrupted; nothing was left half-written")
        sys.exit(130)
    except Exception as e:
        # The parser's own exceptions (usage errors, --help's exit, Ctrl-C turned into Abort)
        # come from typer's vendored click; they are recognised by what they can do.
        if type(e).__name__ == "Abort":
            err.print("interrupted; nothing was left half-written")
            sys.exit(130)
        if hasattr(e, "exit_code"):
            show = getattr(e, "show", None)
            if callable(show):
                show()
            sys.exit(int(e.exit_code))  # type: ignore[attr-defined]
        raise
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
