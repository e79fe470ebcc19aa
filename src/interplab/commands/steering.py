"""CLI commands ``steer`` and ``top-examples``: thin shells over `interplab.techniques`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from interplab.commands._options import (
    AddressOpt,
    BackendOpt,
    DeviceOpt,
    DtypeOpt,
    JsonOpt,
    ModelOpt,
    PlotOpt,
    WorkersOpt,
    check_outputs,
    check_writable,
    console,
    err,
    load_model,
    write_outputs,
)
from interplab.errors import UserError

if TYPE_CHECKING:
    from torch import Tensor

CORPORA = ("wiki", "lee", "all", "austen")
"""The built-in corpora of ``top-examples --corpus`` (or a text/JSONL file)."""


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


def _ints(spec: str, name: str) -> list[int]:
    try:
        return [int(x) for x in spec.split(",") if x.strip()]
    except ValueError as exc:
        raise typer.BadParameter(
            f"{name}: expected integers separated by commas, got {spec!r}"
        ) from exc


def _check_corpus(corpus: str) -> None:
    """Raises UserError unless ``corpus`` is a built-in corpus or an existing file."""
    if corpus not in CORPORA and not Path(corpus).is_file():
        raise UserError(
            f"--corpus {corpus!r} is neither a built-in corpus ({', '.join(CORPORA)}) nor an "
            "existing text or JSONL file"
        )


def _vector(path: Path) -> Tensor:
    """Returns the vector stored in a .npy or .pt file."""
    import numpy as np
    import torch

    if not path.is_file():
        raise UserError(f"--direction {path}: no such file")
    if path.suffix not in (".npy", ".pt"):
        raise UserError(f"--direction {path.name!r}: give a .npy or .pt file")
    raw = np.load(path) if path.suffix == ".npy" else torch.load(path, weights_only=True)
    return torch.as_tensor(raw)


def register(app: typer.Typer) -> None:
    """Adds the ``steer`` and ``top-examples`` commands to ``app``."""

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
        backend: BackendOpt = "local",
        address: AddressOpt = None,
        workers: WorkersOpt = 2,
        model: ModelOpt = "smollm2-135m",
        device: DeviceOpt = "auto",
        dtype: DtypeOpt = "float32",
        json_path: JsonOpt = None,
        plot: PlotOpt = None,
    ) -> None:
        """Contrastive activation addition: build a steering vector, sweep its coefficient, and
        score the steered text against random-vector, no-steering and prompt baselines."""
        from dataclasses import replace

        from interplab.data.sentiment_prompts import HAPPY_PROMPTS, NEUTRAL_PROMPTS, SAD_PROMPTS
        from interplab.results.steering import SteerConfig, SteeringVectorConfig
        from interplab.techniques.steering import HAPPINESS, steer, steering_vector

        vector_config = SteeringVectorConfig(layers=tuple(layer), component=component)  # type: ignore[arg-type]
        config = SteerConfig(
            coefficients=tuple(_floats(coefficients)),
            n_random=n_random,
            max_new_tokens=max_new_tokens,
            seed=seed,
        )
        figure = check_outputs(json_path, plot)
        builtin = {"happy": HAPPY_PROMPTS, "sad": SAD_PROMPTS}
        positives, negatives = _lines(positive, builtin), _lines(negative, builtin)
        m = load_model(model, device, dtype)
        vector = steering_vector(m, positives, negatives, config=vector_config)
        norms = ", ".join(
            f"{site}: {norm:.2f}" for site, norm in zip(vector.sites, vector.norms, strict=True)
        )
        console.print(f"steering vector norms: {norms}")
        behaviour = replace(HAPPINESS, instruction=instruction)
        prompts = prompt or list(NEUTRAL_PROMPTS[:8])
        if backend == "ray":  # one task per coefficient (`interplab.distributed.steering`)
            from interplab.distributed.steering import steer as steer_on

            result = steer_on(
                m, prompts, vector, behaviour=behaviour, config=config, backend="ray",
                address=address, workers=workers,
            )  # fmt: skip
        else:
            with err.status(f"steering {len(prompts)} prompts"):
                result = steer(m, prompts, vector, behaviour=behaviour, config=config)
        table = Table(title=f"{result.behaviour} score and perplexity, n={result.n} prompts")
        for col in ("coef", "condition", "score (95% CI)", "perplexity (95% CI)"):
            table.add_column(col)
        for row in result.table() if result.n >= 2 else []:
            table.add_row(
                f"{row.coefficient:g}",
                row.condition,
                f"{row.score:+.2f} ({row.score_low:+.2f}, {row.score_high:+.2f})",
                f"{row.perplexity:.1f} ({row.perplexity_low:.1f}, {row.perplexity_high:.1f})",
            )
        console.print(table)
        for j, c in enumerate(result.coefficients):
            console.print(f"[bold]coef {c:g}[/]: {result.steered_texts[0][j]!r}")
        if result.n >= 2:
            console.print(f"steered - {result.baseline} score: " + result.summary().describe())
            write_outputs(result, json_path, figure)
        else:
            write_outputs(result, json_path, None)
            if figure is not None:
                err.print("one prompt: give two or more --prompt for the figure's CIs")

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
        model: ModelOpt = "smollm2-135m",
        device: DeviceOpt = "auto",
        dtype: DtypeOpt = "float32",
        html_path: Annotated[
            Path | None, typer.Option("--html", help="write the page of examples here")
        ] = None,
        json_path: JsonOpt = None,
        plot: PlotOpt = None,
    ) -> None:
        """Max-activating dataset examples of neurons and directions, streamed over a corpus,
        with random and quantile-bin examples beside the top ones."""
        from interplab.data import tokenize_corpus
        from interplab.results.top_examples import TopExamplesConfig
        from interplab.sites import Site
        from interplab.techniques.top_examples import top_examples
        from interplab.viz.top_examples import save_page

        config = TopExamplesConfig(k=k, batch_size=batch_size, max_tokens=max_tokens)
        if window < 1:
            raise UserError(f"--window must be >= 1 token, got {window}")
        _check_corpus(corpus)
        read_site = Site.parse(site)
        vector_site = Site.parse(direction_site)
        units = _ints(neurons, "--neurons") if neurons else None
        dirs = {path.stem: (vector_site, _vector(path)) for path in direction or []}
        figure = check_outputs(json_path, plot)
        for path in (html_path, checkpoint):
            if path is not None:
                check_writable(path)
        m = load_model(model, device, dtype)
        if corpus == "austen":
            from interplab.data.austen import austen_corpus_path

            tokens = tokenize_corpus(austen_corpus_path(), m.tokenizer, window, split="file")
        else:
            tokens = tokenize_corpus(corpus, m.tokenizer, window)
        result = top_examples(
            m,
            tokens,
            site=read_site if (units is not None or not dirs) else None,
            neurons=units,
            directions=dirs,
            config=config,
            checkpoint=checkpoint,
            corpus_name=corpus,
        )
        console.print(
            f"{result.n_tokens:,} tokens scanned, {result.n_directions} directions, "
            f"state {result.state_bytes / 1e6:.1f} MB"
        )
        for i, label in enumerate(result.labels[:10]):
            tops = result.contexts(i, "top")[:3]
            shown = " | ".join(f"{ex.token!r} {ex.score:.2f}" for ex in tops)
            console.print(
                f"[bold]{label}[/] mean {result.mean[i]:.3f} std {result.std[i]:.3f}: {shown}"
            )
        if html_path is not None:
            console.print(f"wrote {save_page(result, html_path)}")
        write_outputs(result, json_path, figure)
