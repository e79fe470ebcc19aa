"""CLI command ``dashboard``: serve the project's local web dashboard (no torch)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from interplab.commands._options import console, err


def register(app: typer.Typer) -> None:
    """Adds ``interplab dashboard`` to ``app``."""

    @app.command()
    def dashboard(
        project: Annotated[
            Path | None,
            typer.Argument(
                help="project folder (default: $INTERPLAB_PROJECT, the enclosing project, or the "
                "per-user default)"
            ),
        ] = None,
        host: Annotated[
            str, typer.Option(help="address to listen on; other than loopback needs --allow-remote")
        ] = "127.0.0.1",
        port: Annotated[int, typer.Option(help="port; 0 picks a free one")] = 0,
        allow_remote: Annotated[
            bool,
            typer.Option(
                "--allow-remote", help="allow a --host other than loopback (serves the network)"
            ),
        ] = False,
        no_browser: Annotated[
            bool, typer.Option("--no-browser", help="print the URL without opening a browser")
        ] = False,
    ) -> None:
        """Serve a local web dashboard over a project: runs, figures, the log, features, graphs.

        Prints the URL with a random per-start token; Ctrl-C stops it."""
        from interplab.errors import UserError

        try:
            from interplab.dashboard.serve import serve
        except ImportError as e:
            raise UserError(
                f"the dashboard needs its extra ({e.name} is missing): "
                "pip install 'interplab[dashboard]'"
            ) from None

        def echo(line: str) -> None:
            if line.startswith("WARNING"):
                err.print(f"[bold yellow]{line}[/]")
            else:
                console.print(line, soft_wrap=True, highlight=False)

        serve(
            project,
            host=host,
            port=port,
            allow_remote=allow_remote,
            open_browser=not no_browser,
            echo=echo,
        )


__all__ = ["register"]
