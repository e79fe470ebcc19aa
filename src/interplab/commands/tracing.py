"""CLI command ``trace``: causal tracing (ROME) on factual prompts or one prompt of your own."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Console

from interplab.commands._options import BudgetOpt, JsonOpt, PlotOpt, write_outputs


def _factual(model: Any, n: int, seed: int, console: Console) -> Any:
    """Returns up to ``n`` factual pairs of the most common token length (positions line up)."""
    from interplab.data import factual_pairs

    dataset = factual_pairs(model.tokenizer, seed=seed)
    lengths = [len(model.tokenize(p.clean).ids[0]) for p in dataset]
    best = max(set(lengths), key=lengths.count)
    keep = [i for i, length in enumerate(lengths) if length == best][:n]
    console.print(f"[yellow]tracing {len(keep)} factual prompts of {best} tokens[/]")
    return dataset.subset(keep)


def _tables(result: Any, console: Console) -> None:
    from interplab.commands.patching import _table

    for c in result.components:
        _table(result, c, f"strongest {c} cells (restored p(answer) − corrupted)", console)


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
        json: JsonOpt = None,
        plot: PlotOpt = None,
    ) -> None:
        """Causal tracing (ROME): noise the subject, restore each layer's state at each token."""
        from interplab.core.model import load
        from interplab.techniques.tracing import causal_tracing

        console = Console()
        model = load()
        if prompt is not None:
            if subject is None:
                raise typer.BadParameter("--prompt needs --subject (the words to noise)")
            prompts: Any = [prompt]
            subjects: Any = [subject]
            answers = None if answer is None else [answer]
        else:
            prompts, subjects, answers = _factual(model, n, seed, console), None, None
        result = causal_tracing(
            model,
            prompts,
            subjects=subjects,
            answers=answers,
            noise=noise,
            samples=samples,
            window=window,
            seed=seed,
            batch_budget_mb=budget_mb,
            progress=True,
        )
        console.print(
            f"p(answer): clean {result.clean.mean():.3f}, corrupted {result.corrupted.mean():.3f} "
            f"(n={result.n}, noise {noise:g}σ with σ={result.sigma:.4f}, {samples} samples)"
        )
        if result.n >= 2:
            _tables(result, console)
        else:
            console.print(f"answer {result.answers[0]!r}")
            for c in result.components:
                e = result.effect(c)[0]
                layer, pos = divmod(int(e.argmax()), e.shape[1])
                console.print(
                    f"{c}: strongest cell L{layer} @ {pos} {result.tokens[0][pos]!r}: "
                    f"{e[layer, pos]:+.3f} (one prompt: no CI)"
                )
        write_outputs(result, json, plot, 0 if result.n == 1 else None, out=console)
