"""CLI commands ``patch`` and ``attribute``: thin shells over activation and attribution patching."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from interplab.commands._options import BudgetOpt, JsonOpt, PlotOpt, write_outputs


def _pairs(model: Any, task: str, n: int, seed: int) -> Any:
    from interplab.data import factual_pairs, induction_pairs, ioi_pairs, load_pairs

    tok = model.tokenizer
    # Generated tasks mix templates of different token lengths; draw a larger pool so that n
    # pairs of one length (one template shape) remain after `_same_length`.
    pool = max(10 * n, 100)
    if task == "ioi":
        return ioi_pairs(tok, n=pool, seed=seed)
    if task == "factual":
        dataset = factual_pairs(tok, seed=seed)
        return dataset.subset(range(min(n, len(dataset))))
    if task == "induction":
        return induction_pairs(tok, n=pool, seed=seed)
    path = Path(task)
    if not path.is_file():
        raise typer.BadParameter(
            f"--task is ioi, factual, induction or a pairs file; {task!r} is none"
        )
    return load_pairs(path)


def _same_length(model: Any, dataset: Any, console: Console, n: int) -> Any:
    """Keeps up to ``n`` pairs of the most common token length, so positions line up."""
    lengths = [len(model.tokenize(p.clean).ids[0]) for p in dataset]
    best = max(set(lengths), key=lengths.count)
    keep = [i for i, length in enumerate(lengths) if length == best][:n]
    console.print(
        f"[yellow]using {len(keep)} pairs of {best} tokens (of {len(lengths)} drawn): positions "
        "must mean the same token in every example[/]"
    )
    if len(keep) < 2:
        raise typer.BadParameter(
            f"only {len(keep)} pair has {best} tokens; statistics need at least 2: raise --n"
        )
    return dataset.subset(keep) if hasattr(dataset, "subset") else [dataset[i] for i in keep]


def load_task(task: str, n: int, seed: int) -> tuple[Console, Any, Any]:
    """Returns a console, the loaded model and up to ``n`` same-length pairs of ``task``."""
    from interplab.core.model import load

    console = Console()
    model = load()
    return console, model, _same_length(model, _pairs(model, task, n, seed), console, n)


def _table(result: Any, component: str, title: str, console: Console) -> None:
    table = Table(title=title)
    for col in ("cell", "mean effect", "95% CI", "p (Holm)", "survives"):
        table.add_column(col, justify="right" if col != "cell" else "left")
    for row in result.top_cells(component, 12):
        table.add_row(
            row["cell"],
            f"{row['mean']:+.3f}",
            f"[{row['ci_low']:+.3f}, {row['ci_high']:+.3f}]",
            f"{row['p_adjusted']:.3g}",
            "yes" if row["significant"] else "no",
        )
    console.print(table)


TaskOpt = Annotated[str, typer.Option(help="ioi | factual | induction | a pairs CSV/JSONL file")]
NOpt = Annotated[int, typer.Option(help="number of pairs")]
SeedOpt = Annotated[int, typer.Option(help="seed of the generated pairs")]
ComponentOpt = Annotated[
    str, typer.Option(help="resid_pre|resid_mid|resid_post|attn_out|mlp_out|attn.z")
]
DirectionOpt = Annotated[str, typer.Option(help="denoise | noise")]
ControlOpt = Annotated[bool, typer.Option(help="also run the sweep on unrelated control prompts")]


def _examples(result: Any, component: str, console: Console) -> None:
    table = Table(title="most affected prompts beside random and quantile-bin ones (one cell)")
    for col in ("kind", "effect", "clean prompt"):
        table.add_column(col, justify="right" if col == "effect" else "left")
    rows = result.examples(component)
    for row in rows:
        table.add_row(row["kind"], f"{row['effect']:+.3f}", row["clean"][:70])
    console.print(f"cell {rows[0]['cell']}:")
    console.print(table)


def register(app: typer.Typer) -> None:
    """Adds the ``patch`` and ``attribute`` commands to ``app``."""

    def report(
        result: Any,
        kind: str,
        component: str,
        direction: str,
        json_path: Path | None,
        plot: Path | None,
        console: Console,
    ) -> None:
        console.print(
            f"clean {result.metric} {result.clean.mean():+.3f}, corrupt {result.corrupt.mean():+.3f} "
            f"(n={result.n})"
        )
        _table(result, component, f"{kind}: strongest {component} cells ({direction})", console)
        console.print(result.summary(component).describe())
        if getattr(result, "control", None) is not None:
            console.print(result.control_comparison(component).describe())
        _examples(result, component, console)
        write_outputs(result, json_path, plot, component, out=console)

    @app.command("patch")
    def patch(
        task: TaskOpt = "ioi",
        n: NOpt = 16,
        seed: SeedOpt = 0,
        component: ComponentOpt = "resid_pre",
        direction: DirectionOpt = "denoise",
        control: ControlOpt = True,
        ablations: Annotated[
            str | None,
            typer.Option(
                help="compare ablation methods side by side instead, e.g. zero,mean,resample "
                "(noising the clean run)"
            ),
        ] = None,
        json: JsonOpt = None,
        plot: PlotOpt = None,
        budget_mb: BudgetOpt = 512.0,
    ) -> None:
        """Activation patching: the exact effect of every cell, with CIs, Holm correction and a
        control sweep on unrelated prompts."""
        from interplab.techniques.controls import compare_ablations
        from interplab.techniques.patching import activation_patching

        console, model, pairs = load_task(task, n, seed)
        if ablations is not None:
            comparison = compare_ablations(
                model,
                pairs,
                components=(component,),
                methods=[m.strip() for m in ablations.split(",") if m.strip()],
                batch_budget_mb=budget_mb,
            )
            for method, r in comparison.results.items():
                _table(r, component, f"{method} ablation: strongest {component} cells", console)
            console.print(comparison.describe())
            write_outputs(comparison, json, plot, component, out=console)
            return
        result = activation_patching(
            model,
            pairs,
            components=(component,),
            direction=direction,  # type: ignore[arg-type]
            batch_budget_mb=budget_mb,
            progress=True,
            control=control,
        )
        report(result, "patch", component, direction, json, plot, console)

    @app.command("attribute")
    def attribute(
        task: TaskOpt = "ioi",
        n: NOpt = 16,
        seed: SeedOpt = 0,
        component: ComponentOpt = "resid_pre",
        direction: DirectionOpt = "denoise",
        control: ControlOpt = True,
        json: JsonOpt = None,
        plot: PlotOpt = None,
    ) -> None:
        """Attribution patching: gradient x activation difference, one forward and one backward,
        with the same estimate on unrelated control prompts."""
        from interplab.techniques.attribution import attribution_patching

        console, model, pairs = load_task(task, n, seed)
        result = attribution_patching(
            model,
            pairs,
            components=(component,),
            direction=direction,  # type: ignore[arg-type]
            control=control,
        )
        report(result, "attribute", component, direction, json, plot, console)
