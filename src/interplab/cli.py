"""The command line: a thin shell over library functions (no computation lives here)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import numpy as np
import typer
from rich.table import Table

from interplab.commands._options import (
    DeviceOpt,
    DtypeOpt,
    JsonOpt,
    ModelOpt,
    PlotOpt,
    console,
    err,
    load_model,
)

if TYPE_CHECKING:
    from interplab.core.model import Model

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="interplab: look inside open language models, test causal hypotheses, defend the results.",
)


def _check_space(m: Model, *tokens: str | None) -> None:
    """Warns when a target lacks the leading space that a mid-sentence word has."""
    for t in tokens:
        if t and not t[0].isspace():
            try:
                m.token_id(" " + t)
            except ValueError:
                continue
            err.print(
                f"[yellow]note:[/] {t!r} has no leading space; mid-sentence words are usually ' {t}'"
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
def lens(
    prompt: Annotated[list[str], typer.Argument(help="one or more prompts")],
    target: Annotated[str | None, typer.Option(help="one token to follow, e.g. ' Paris'")] = None,
    k: Annotated[int, typer.Option(help="top-k tokens per cell")] = 5,
    model: ModelOpt = "smollm2-135m",
    device: DeviceOpt = "cpu",
    dtype: DtypeOpt = "float32",
    json_path: JsonOpt = None,
    plot: PlotOpt = None,
) -> None:
    """Logit lens: the top tokens and the target's probability and rank after every layer."""
    from interplab.techniques import logit_lens
    from interplab.viz.figures import save

    m = load_model(model, device, dtype)
    _check_space(m, target)
    result = logit_lens(m, prompt, target=target, k=k)
    for i, p in enumerate(result.prompts):
        table = Table(title=f"logit lens at the last token of: {p!r}")
        table.add_column("layer")
        table.add_column(f"top-{min(k, 3)} (prob)")
        if target is not None:
            table.add_column(f"p({target!r})", justify="right")
            table.add_column("rank", justify="right")
        last = int(result.lengths[i]) - 1
        for li, layer in enumerate(result.layers):
            tops = ", ".join(
                f"{result.top_tokens[i][li][last][j]!r} {result.top_probs[i, li, last, j]:.2f}"
                for j in range(min(k, 3))
            )
            row = [layer, tops]
            if target is not None:
                row += [
                    f"{result.target_prob[i, li, last]:.4f}",
                    str(result.target_rank[i, li, last]),
                ]
            table.add_row(*row)
        console.print(table)
    if target is not None and result.n >= 2:
        console.print(result.summary().describe())
    _outputs(result, json_path, plot, save)


@app.command()
def dla(
    prompt: Annotated[list[str], typer.Argument(help="one or more prompts")],
    target: Annotated[str, typer.Option(help="the token whose logit is attributed, e.g. ' Mary'")],
    baseline: Annotated[
        str | None, typer.Option(help="subtract this token's logit, e.g. ' John'")
    ] = None,
    top: Annotated[int, typer.Option(help="rows in the table")] = 12,
    model: ModelOpt = "smollm2-135m",
    device: DeviceOpt = "cpu",
    dtype: DtypeOpt = "float32",
    json_path: JsonOpt = None,
    plot: PlotOpt = None,
) -> None:
    """Direct logit attribution: each layer's and head's direct write toward the target."""
    from interplab.techniques import direct_logit_attribution
    from interplab.viz.figures import save

    m = load_model(model, device, dtype)
    _check_space(m, target, baseline)
    result = direct_logit_attribution(m, prompt, target=target, baseline=baseline)
    what = f"logit({target!r})" + (f" - logit({baseline!r})" if baseline else "")
    mean = result.contributions.mean(0)
    table = Table(title=f"direct contributions to {what} (mean over {result.n} prompt(s))")
    table.add_column("component")
    table.add_column("contribution", justify="right")
    for i in np.argsort(-np.abs(mean))[:top]:
        table.add_row(result.labels[i], f"{mean[i]:+.3f}")
    heads = result.heads.mean(0)
    for flat in np.argsort(-np.abs(heads).ravel())[: min(top, 5)]:
        layer, head = np.unravel_index(flat, heads.shape)
        table.add_row(f"  head L{layer}.h{head}", f"{heads[layer, head]:+.3f}")
    console.print(table)
    console.print(
        f"actual {what}: {result.actual.mean():+.3f}; sum of parts {result.total.mean():+.3f} "
        f"(max error {result.error.max():.1e})"
    )
    if result.n >= 2:
        console.print(result.summary().describe())
    _outputs(result, json_path, plot, save)


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="folder for index.html, figures and JSON")] = Path(
        "reports/demo"
    ),
) -> None:
    """The main job: logit lens and direct logit attribution on the embedded model, as a report."""
    from interplab.demo import run_demo

    run_demo(out, console=console)


def _outputs(result, json_path: Path | None, plot: Path | None, save) -> None:
    if json_path is not None:
        console.print(f"wrote {result.to_json(json_path)}")
    if plot is not None:
        console.print(f"wrote {save(result.figure(), plot)}")


def _register_command_groups() -> None:
    from interplab.commands import patching, probes, steering

    for group in (patching, probes, steering):
        group.register(app)
    from interplab.commands import tracing as tracing_commands

    tracing_commands.register(app)
    from interplab.commands import path_patching as path_patching_commands

    path_patching_commands.register(app)


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
