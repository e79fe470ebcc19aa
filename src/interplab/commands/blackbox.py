"""CLI commands ``elicit``, ``anchors`` and ``sweep``: black-box sampling with per-sample results."""

from __future__ import annotations

from typing import Annotated

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

METHODS = ("direct", "prefill", "persona", "high_temperature", "many_shot")


def _bounded(name: str, value: int, low: int, high: int) -> None:
    from interplab.errors import UserError

    if not low <= value <= high:
        raise UserError(f"--{name} must lie in {low}..{high}, got {value}")


def register(app: typer.Typer) -> None:
    """Adds ``elicit``, ``anchors`` and ``sweep`` to ``app``."""

    @app.command()
    def elicit(
        question: Annotated[str, typer.Argument(help="the user's message")],
        method: Annotated[str, typer.Option(help=f"one of {', '.join(METHODS)}")] = "direct",
        prefill: Annotated[
            list[str] | None, typer.Option(help="assistant prefill (repeatable), for prefill")
        ] = None,
        persona: Annotated[
            list[str] | None, typer.Option(help="user-turn prefill (repeatable), for persona")
        ] = None,
        shot: Annotated[
            list[str] | None, typer.Option(help="'question|answer' turn (repeatable), many_shot")
        ] = None,
        pattern: Annotated[
            str | None, typer.Option(help="regex marking a successful sample")
        ] = None,
        n: Annotated[int, typer.Option(help="samples per prompt")] = 32,
        max_new_tokens: Annotated[int, typer.Option(help="tokens per sample")] = 32,
        temperature: Annotated[
            float | None, typer.Option(help="default 1.0 (1.6 for high_temperature)")
        ] = None,
        seed: int = 0,
        show: Annotated[int, typer.Option(help="random samples to print")] = 8,
        model: ModelOpt = "smollm2-135m",
        device: DeviceOpt = "auto",
        dtype: DtypeOpt = "float32",
        json_path: JsonOpt = None,
        plot: PlotOpt = None,
    ) -> None:
        """Elicitation: sample the chat model under a direct ask, prefill, user persona, high
        temperature or many-shot prompt; report each sample and the rate matching --pattern."""
        import random

        from interplab.errors import UserError
        from interplab.techniques.blackbox.elicitation import ElicitationConfig
        from interplab.techniques.blackbox.elicitation import elicit as run

        if method not in METHODS:
            raise UserError(f"--method {method!r} is not one of {', '.join(METHODS)}")
        _bounded("n", n, 1, 10_000)
        _bounded("max-new-tokens", max_new_tokens, 1, 1024)
        shots = []
        for s in shot or []:
            if "|" not in s:
                raise UserError(f"--shot {s!r} needs the form 'question|answer'")
            q, a = s.split("|", 1)
            shots.append((q, a))
        cfg = ElicitationConfig(method, n, max_new_tokens, temperature, seed=seed)  # type: ignore[arg-type]
        figure = check_outputs(json_path, plot)
        m = load_model(model, device, dtype)
        result = run(
            m, question, prefills=prefill or (), personas=persona or (), shots=shots,
            pattern=pattern, config=cfg, progress=True,
        )  # fmt: skip
        table = Table(title=f"{method}: {min(show, result.n)} random samples of {result.n}")
        table.add_column("prefill")
        table.add_column("continuation")
        if pattern:
            table.add_column("match")
        for i in sorted(random.Random(seed).sample(range(result.n), min(show, result.n))):
            row = [result.prefills[int(result.prompt_index[i])], result.texts[i]]
            table.add_row(*row, *(["yes" if result.matches[i] else ""] if pattern else []))
        console.print(table)
        console.print(result.summary().describe())
        write_outputs(result, json_path, figure)

    @app.command()
    def anchors(
        question: Annotated[str, typer.Argument(help="the user's question")],
        trace: Annotated[
            str | None, typer.Option(help="the reasoning trace (default: the greedy reply)")
        ] = None,
        answer_pattern: Annotated[
            str, typer.Option(help="regex whose first group is the final answer")
        ] = r"answer is\W*([\w.\-]+)",
        n: Annotated[int, typer.Option(help="resamples per sentence")] = 100,
        max_new_tokens: int = 96,
        temperature: float = 1.0,
        seed: int = 0,
        model: ModelOpt = "smollm2-135m",
        device: DeviceOpt = "auto",
        dtype: DtypeOpt = "float32",
        json_path: JsonOpt = None,
        plot: PlotOpt = None,
    ) -> None:
        """Thought anchors: each sentence's counterfactual importance for the final answer, from
        --n resamples just before it (Bogdan et al. 2025)."""
        from interplab.techniques.blackbox.resampling import thought_anchors

        _bounded("n", n, 2, 10_000)
        _bounded("max-new-tokens", max_new_tokens, 1, 1024)
        figure = check_outputs(json_path, plot)
        m = load_model(model, device, dtype)
        result = thought_anchors(
            m, question, trace=trace, answer_pattern=answer_pattern, n=n,
            max_new_tokens=max_new_tokens, temperature=temperature, seed=seed, progress=True,
        )  # fmt: skip
        table = Table(title=f"thought anchors (answer {result.answer!r}, {n} resamples each)")
        for col in ("#", "sentence", "importance", "95% CI", "p", "replaced"):
            table.add_column(col)
        for i, s in enumerate(result.sentences):
            table.add_row(
                str(i), s.strip()[:60], f"{result.importance[i]:+.3f}",
                f"[{result.ci_low[i]:+.3f}, {result.ci_high[i]:+.3f}]",
                f"{result.p_value[i]:.3g}", str(int(result.n_replaced[i])),
            )  # fmt: skip
        console.print(table)
        write_outputs(result, json_path, figure)

    @app.command()
    def sweep(
        variant: Annotated[list[str], typer.Argument(help="two or more prompt variants")],
        pattern: Annotated[str, typer.Option(help="regex marking a successful sample")],
        n: Annotated[int, typer.Option(help="samples per variant")] = 32,
        max_new_tokens: int = 32,
        temperature: float = 1.0,
        seed: int = 0,
        model: ModelOpt = "smollm2-135m",
        device: DeviceOpt = "auto",
        dtype: DtypeOpt = "float32",
        json_path: JsonOpt = None,
        plot: PlotOpt = None,
    ) -> None:
        """Prompt-variation sweep: the rate of samples matching --pattern per variant, and each
        variant's difference from the first with a CI and permutation p-value."""
        from interplab.techniques.blackbox.resampling import prompt_sweep

        _bounded("n", n, 2, 10_000)
        figure = check_outputs(json_path, plot)
        m = load_model(model, device, dtype)
        result = prompt_sweep(
            m, variant, pattern, n=n, max_new_tokens=max_new_tokens, temperature=temperature,
            seed=seed, progress=True,
        )  # fmt: skip
        s = result.summary()
        table = Table(title=f"rate matching {pattern!r} ({n} samples per variant)")
        for col in ("variant", "rate", "95% CI", "vs first", "diff CI", "p"):
            table.add_column(col)
        for i, v in enumerate(result.variants):
            table.add_row(
                v[:50], f"{s.mean[i]:.3f}", f"[{s.ci_low[i]:.3f}, {s.ci_high[i]:.3f}]",
                f"{result.difference[i]:+.3f}", f"[{result.ci_low[i]:+.3f}, {result.ci_high[i]:+.3f}]",
                f"{result.p_value[i]:.3g}",
            )  # fmt: skip
        console.print(table)
        write_outputs(result, json_path, figure)


__all__ = ["register"]
