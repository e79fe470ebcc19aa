"""CLI commands `steer` and `top-examples`: thin shells over `interplab.techniques`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

console = Console()
err = Console(stderr=True)


def _lines(spec: str, builtin: dict[str, tuple[str, ...]]) -> list[str]:
    """Returns the built-in prompt list named ``spec`` or the non-empty lines of a file."""
    if spec in builtin:
        return list(builtin[spec])
    path = Path(spec)
    if not path.is_file():
        raise typer.BadParameter(f"{spec!r} is neither {' nor '.join(builtin)} nor a file")
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    return [line for line in lines if line]


def _floats(spec: str) -> list[float]:
    try:
        return [float(x) for x in spec.split(",") if x.strip()]
    except ValueError as exc:
        raise typer.BadParameter(f"expected numbers separated by commas, got {spec!r}") from exc


def register(app: typer.Typer) -> None:
    """Adds the `steer` and `top-examples` commands to ``app``."""

    @app.command()
    def steer(
        positive: Annotated[
            str, typer.Option(help="'happy' (built-in) or a file, one prompt a line")
        ] = "happy",
        negative: Annotated[
            str, typer.Option(help="'sad' (built-in) or a file, one prompt a line")
        ] = "sad",
        layer: Annotated[list[int], typer.Option(help="layer(s) of the vector (repeatable)")] = [  # noqa: B006
            6
        ],
        component: Annotated[str, typer.Option(help="resid_pre or resid_post")] = "resid_pre",
        coefficients: Annotated[str, typer.Option(help="comma-separated sweep")] = "0,2,4,8",
        prompt: Annotated[
            list[str] | None, typer.Option(help="prompt to continue (repeatable)")
        ] = None,
        instruction: Annotated[
            str, typer.Option(help="prompt-baseline prefix (the same intent as words)")
        ] = "Write happily: ",
        n_random: Annotated[int, typer.Option(help="norm-matched random vectors")] = 3,
        max_new_tokens: Annotated[int, typer.Option()] = 24,
        seed: Annotated[int, typer.Option()] = 0,
        model: Annotated[str, typer.Option("--model", "-m")] = "smollm2-135m",
        json_path: Annotated[Path | None, typer.Option("--json")] = None,
        plot: Annotated[Path | None, typer.Option("--plot")] = None,
    ) -> None:
        """Contrastive activation addition: build a steering vector, sweep its coefficient, and
        score the steered text against random-vector, no-steering and prompt baselines."""
        from dataclasses import replace

        from interplab import load
        from interplab.data.sentiment_prompts import HAPPY_PROMPTS, NEUTRAL_PROMPTS, SAD_PROMPTS
        from interplab.techniques.steering import HAPPINESS, steer, steering_vector
        from interplab.viz.figures import save

        builtin = {"happy": HAPPY_PROMPTS, "sad": SAD_PROMPTS}
        with err.status(f"loading {model}"):
            m = load(model)
        vector = steering_vector(
            m,
            _lines(positive, builtin),
            _lines(negative, builtin),
            layers=layer,
            component=component,  # type: ignore[arg-type]
        )
        norms = ", ".join(
            f"L{a}: {b:.2f}" for a, b in zip(vector.layers, vector.norms, strict=True)
        )
        console.print(f"steering vector norms: {norms}")
        behaviour = replace(HAPPINESS, instruction=instruction)
        result = steer(
            m,
            prompt or list(NEUTRAL_PROMPTS[:8]),
            vector,
            coefficients=_floats(coefficients),
            behaviour=behaviour,
            n_random=n_random,
            max_new_tokens=max_new_tokens,
            seed=seed,
        )
        table = Table(title=f"{result.behaviour} score and perplexity, n={result.n} prompts")
        for col in ("coef", "condition", "score (95% CI)", "perplexity (95% CI)"):
            table.add_column(col)
        for row in result.table() if result.n >= 2 else []:
            lo, hi = row["score_ci"]
            plo, phi = row["perplexity_ci"]
            table.add_row(
                f"{row['coefficient']:g}",
                row["condition"],
                f"{row['score']:+.2f} ({lo:+.2f}, {hi:+.2f})",
                f"{row['perplexity']:.1f} ({plo:.1f}, {phi:.1f})",
            )
        console.print(table)
        for j, c in enumerate(result.coefficients):
            console.print(f"[bold]coef {c:g}[/]: {result.steered_texts[0][j]!r}")
        if result.n >= 2:
            console.print(result.summary()["steered - random score"].describe())
        if json_path is not None:
            console.print(f"wrote {result.to_json(json_path)}")
        if plot is not None:
            console.print(f"wrote {save(result.figure(), plot)}")

    @app.command("top-examples")
    def top_examples_cmd(
        site: Annotated[str, typer.Option(help="site whose units are read")] = "L15.mlp.post",
        neurons: Annotated[
            str | None, typer.Option(help="comma-separated unit indices (default: all)")
        ] = None,
        direction: Annotated[
            list[Path] | None,
            typer.Option(help="a .pt/.npy vector read at --direction-site (repeatable)"),
        ] = None,
        direction_site: Annotated[str, typer.Option(help="site of --direction")] = "L15.resid_post",
        corpus: Annotated[str, typer.Option(help="wiki | lee | austen | all | FILE")] = "all",
        max_tokens: Annotated[int | None, typer.Option(help="stop after this many")] = 100_000,
        k: Annotated[int, typer.Option(help="top examples per direction")] = 20,
        window: Annotated[int, typer.Option(help="tokens per context window")] = 128,
        batch_size: Annotated[int, typer.Option()] = 8,
        checkpoint: Annotated[
            Path | None, typer.Option(help="save/resume the pass here (Ctrl-C safe)")
        ] = None,
        model: Annotated[str, typer.Option("--model", "-m")] = "smollm2-135m",
        html_path: Annotated[Path | None, typer.Option("--html")] = None,
        json_path: Annotated[Path | None, typer.Option("--json")] = None,
    ) -> None:
        """Max-activating dataset examples of neurons and directions, streamed over a corpus,
        with random and quantile-bin examples beside the top ones."""
        import numpy as np
        import torch

        from interplab import load
        from interplab.data import tokenize_corpus
        from interplab.techniques.top_examples import top_examples

        with err.status(f"loading {model}"):
            m = load(model)
        if corpus == "austen":
            from interplab.data.austen import austen_corpus_path

            tokens = tokenize_corpus(austen_corpus_path(), m.tokenizer, window, split="file")
        else:
            tokens = tokenize_corpus(corpus, m.tokenizer, window)
        dirs = {}
        for path in direction or []:
            raw = np.load(path) if path.suffix == ".npy" else torch.load(path, weights_only=True)
            dirs[path.stem] = (direction_site, torch.as_tensor(raw))
        units = [int(x) for x in neurons.split(",")] if neurons else None
        result = top_examples(
            m,
            tokens,
            site=site if (units is not None or not dirs) else None,
            neurons=units,
            directions=dirs,
            k=k,
            batch_size=batch_size,
            max_tokens=max_tokens,
            checkpoint=checkpoint,
            corpus_name=corpus,
        )
        summary = result.summary()
        console.print(
            f"{summary['n_tokens']:,} tokens scanned, {result.n_directions} directions, "
            f"state {summary['state_bytes'] / 1e6:.1f} MB"
        )
        for label in result.labels[:10]:
            facts = summary["directions"][label]
            tops = result.contexts(label, "top")[:3]
            shown = " | ".join(f"{ex['tokens'][ex['focus']]!r} {ex['score']:.2f}" for ex in tops)
            console.print(
                f"[bold]{label}[/] mean {facts['mean']:.3f} std {facts['std']:.3f}: {shown}"
            )
        if html_path is not None:
            console.print(f"wrote {result.to_html(html_path)}")
        if json_path is not None:
            console.print(f"wrote {result.to_json(json_path)}")
