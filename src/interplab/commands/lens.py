"""CLI command ``lens``: the logit lens of one or more prompts, as a table per prompt."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from interplab.commands._options import (
    DeviceOpt,
    DtypeOpt,
    JsonOpt,
    ModelOpt,
    PlotOpt,
    check_outputs,
    console,
    err,
    load_model,
    write_outputs,
)

if TYPE_CHECKING:
    from interplab.core.model import Model


def check_space(model: Model, *tokens: str | None) -> None:
    """Warns when a target lacks the leading space that a mid-sentence word has."""
    for t in tokens:
        if t and not t[0].isspace():
            try:
                model.token_id(" " + t)
            except ValueError:
                continue
            err.print(
                f"[yellow]note:[/] {t!r} has no leading space; mid-sentence words are usually ' {t}'"
            )


def register(app: typer.Typer) -> None:
    """Adds the ``lens`` command to ``app``."""

    @app.command()
    def lens(
        prompt: Annotated[list[str], typer.Argument(help="one or more prompts")],
        target: Annotated[
            str | None, typer.Option(help="one token to follow, e.g. ' Paris'")
        ] = None,
        k: Annotated[int, typer.Option(help="top-k tokens per cell")] = 5,
        model: ModelOpt = "smollm2-135m",
        device: DeviceOpt = "auto",
        dtype: DtypeOpt = "float32",
        json_path: JsonOpt = None,
        plot: PlotOpt = None,
    ) -> None:
        """Logit lens: the top tokens and the target's probability and rank after every layer."""
        from interplab.results.lens import LensConfig
        from interplab.techniques.lens import logit_lens

        config = LensConfig(target=target, k=k)
        figure = check_outputs(json_path, plot)
        m = load_model(model, device, dtype)
        check_space(m, target)
        result = logit_lens(m, prompt, config=config)
        shown = min(k, 3)
        for i, p in enumerate(result.prompts):
            table = Table(title=f"logit lens at the last token of: {p!r}")
            table.add_column("residual")
            table.add_column(f"top-{shown} (prob)")
            if target is not None:
                table.add_column(f"p({target!r})", justify="right")
                table.add_column("rank", justify="right")
            last = int(result.lengths[i]) - 1
            for r, site in enumerate(result.sites):
                tops = ", ".join(
                    f"{result.top_tokens[i][r][last][j]!r} {result.top_probs[i, r, last, j]:.2f}"
                    for j in range(shown)
                )
                row = [str(site), tops]
                if target is not None:
                    row += [
                        f"{result.target_prob[i, r, last]:.4f}",
                        str(result.target_rank[i, r, last]),
                    ]
                table.add_row(*row)
            console.print(table)
        if target is not None:
            first = result.first_layer_top1()
            names = ", ".join("never" if s is None else str(s) for s in first)
            console.print(
                f"first residual where {target!r} is the top-1 token, per prompt: {names}"
            )
            if result.n >= 2:
                console.print(result.describe())
        write_outputs(result, json_path, figure)


__all__ = ["check_space", "register"]
