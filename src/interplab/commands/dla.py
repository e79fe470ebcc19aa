"""CLI command ``dla``: direct logit attribution of one or more prompts, as a table."""

from __future__ import annotations

from typing import Annotated

import numpy as np
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
    load_model,
    write_outputs,
)
from interplab.commands.lens import check_space


def register(app: typer.Typer) -> None:
    """Adds the ``dla`` command to ``app``."""

    @app.command()
    def dla(
        prompt: Annotated[list[str], typer.Argument(help="one or more prompts")],
        target: Annotated[
            str, typer.Option(help="the token whose logit is attributed, e.g. ' Mary'")
        ],
        baseline: Annotated[
            str | None, typer.Option(help="subtract this token's logit, e.g. ' John'")
        ] = None,
        top: Annotated[int, typer.Option(help="rows in the table")] = 12,
        model: ModelOpt = "smollm2-135m",
        device: DeviceOpt = "auto",
        dtype: DtypeOpt = "float32",
        json_path: JsonOpt = None,
        plot: PlotOpt = None,
    ) -> None:
        """Direct logit attribution: each layer's and head's direct write toward the target."""
        from interplab.results.dla import DLAConfig
        from interplab.techniques.dla import direct_logit_attribution

        if top < 1:
            raise typer.BadParameter(f"--top must be at least 1, got {top}")
        config = DLAConfig(target=target, baseline=baseline)
        figure = check_outputs(json_path, plot)
        m = load_model(model, device, dtype)
        check_space(m, target, baseline)
        result = direct_logit_attribution(m, prompt, config=config)
        what = f"logit({target!r})" + (f" - logit({baseline!r})" if baseline else "")
        table = Table(title=f"direct contributions to {what} (mean over {result.n} prompt(s))")
        table.add_column("component")
        table.add_column("contribution", justify="right")
        mean = result.contributions.mean(0)
        for i in np.argsort(-np.abs(mean), kind="stable")[:top]:
            table.add_row(str(result.sites[i]), f"{mean[i]:+.3f}")
        heads = result.heads.mean(0)
        for flat in np.argsort(-np.abs(heads).ravel(), kind="stable")[: min(top, 5)]:
            layer, head = (int(x) for x in np.unravel_index(flat, heads.shape))
            table.add_row(f"  head {result.head_site(layer, head)}", f"{heads[layer, head]:+.3f}")
        console.print(table)
        console.print(
            f"actual {what}: {result.actual.mean():+.3f}; sum of parts {result.total.mean():+.3f} "
            f"(max error {result.error.max():.1e})"
        )
        if result.n >= 2:
            console.print(result.describe())
        write_outputs(result, json_path, figure)


__all__ = ["register"]
