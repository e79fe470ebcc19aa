"""CLI command ``trace``: causal tracing (ROME) on factual prompts or one prompt of your own."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

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
    load_model,
    write_outputs,
)

if TYPE_CHECKING:
    from interplab.results.tracing import TracingResult


def _factual(model: Any, n: int, seed: int, console: Console) -> Any:
    """Returns up to ``n`` factual pairs of the most common token length (positions line up)."""
    from interplab.data import factual_pairs

    dataset = factual_pairs(model.tokenizer, seed=seed)
    lengths = [len(model.tokenize(p.clean).ids[0]) for p in dataset]
    best = max(set(lengths), key=lengths.count)
    keep = [i for i, length in enumerate(lengths) if length == best][:n]
    console.print(f"[yellow]tracing {len(keep)} factual prompts of {best} tokens[/]")
    return dataset.subset(keep)


def _tables(result: TracingResult, console: Console) -> None:
    """Prints each component's strongest cells, named by site, position and token."""
    for c in result.components:
        table = Table(title=f"strongest {c} cells (restored p(answer) − corrupted)")
        for col in ("cell", "mean effect", "95% CI", "p (Holm)", "survives"):
            table.add_column(col, justify="right" if col != "cell" else "left")
        summary = result.summary(c)
        for cell in result.top_cells(c, 12, summary=summary):
            table.add_row(
                cell.label,
                f"{cell.mean:+.3f}",
                f"[{cell.ci_low:+.3f}, {cell.ci_high:+.3f}]",
                f"{cell.p_adjusted:.3g}",
                "yes" if cell.significant else "no",
            )
        console.print(table)
        console.print(result.describe(c, summary=summary))


def _strongest(result: TracingResult, console: Console) -> None:
    """Prints, for one prompt, each component's strongest cell (no CI: one prompt)."""
    console.print(f"answer {result.answers[0]!r}")
    for c in result.components:
        e = result.effect(c)[0]
        layer, pos = divmod(int(e.argmax()), e.shape[1])
        console.print(
            f"{c}: strongest cell {result.site(c, layer)} @ {pos} {result.tokens[0][pos]!r}: "
            f"{e[layer, pos]:+.3f} (one prompt: no CI)"
        )


def register(app: typer.Typer) -> None:
    """Adds the ``trace`` command to ``app``."""

    @app.command("trace")
    def trace(
        prompt: Annotated[
            str | None, typer.Option(help="trace this prompt instead of factual pairs")
        ] = None,
        subject: Annotated[
            str | None, typer.Option(help="the subject substring of --prompt to noise")
        ] = None,
        answer: Annotated[
            str | None, typer.Option(help="answer token for --prompt (default: top-1)")
        ] = None,
        n: Annotated[
            int, typer.Option(help="number of factual prompts (12+ for Holm to pass)")
        ] = 12,
        seed: Annotated[int, typer.Option(help="seed of the prompts and the noise")] = 0,
        noise: Annotated[float, typer.Option(help="noise std in units of σ (embedding std)")] = 3.0,
        samples: Annotated[int, typer.Option(help="noise samples per prompt")] = 10,
        window: Annotated[int, typer.Option(help="layers restored per attn/mlp cell")] = 10,
        budget_mb: BudgetOpt = 512.0,
        backend: BackendOpt = "local",
        address: AddressOpt = None,
        workers: WorkersOpt = 2,
        model: ModelOpt = "smollm2-135m",
        device: DeviceOpt = "auto",
        dtype: DtypeOpt = "float32",
        json: JsonOpt = None,
        plot: PlotOpt = None,
    ) -> None:
        """Causal tracing (ROME): noise the subject, restore each layer's state at each token."""
        from interplab.results.tracing import TracingConfig
        from interplab.techniques.tracing import causal_tracing

        console = Console()
        if prompt is not None and subject is None:
            raise typer.BadParameter("--prompt needs --subject (the words to noise)")
        if prompt is None and n < 1:
            raise typer.BadParameter(f"--n must be at least 1, got {n}")
        config = TracingConfig(
            noise=noise, samples=samples, window=window, seed=seed, batch_budget_mb=budget_mb
        )
        figure = check_outputs(json, plot)
        m = load_model(model, device, dtype)
        if prompt is not None:
            prompts: Any = [prompt]
            subjects: Any = [subject]
            answers = None if answer is None else [answer]
        else:
            prompts, subjects, answers = _factual(m, n, seed, console), None, None
        if backend == "ray":
            from interplab.distributed.tracing import causal_tracing as distributed_tracing

            result = distributed_tracing(
                m, prompts, subjects=subjects, answers=answers, config=config,
                backend="ray", address=address, workers=workers,
            )  # fmt: skip
        else:
            result = causal_tracing(
                m, prompts, subjects=subjects, answers=answers, config=config, progress=True
            )
        console.print(
            f"p(answer): clean {result.clean.mean():.3f}, corrupted {result.corrupted.mean():.3f} "
            f"(n={result.n}, noise {noise:g}σ with σ={result.sigma:.4f}, {samples} samples)"
        )
        if result.n >= 2:
            _tables(result, console)
        else:
            _strongest(result, console)
        options = {"example": 0} if result.n == 1 else {}
        write_outputs(result, json, figure, out=console, **options)
