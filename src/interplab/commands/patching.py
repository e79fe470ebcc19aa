"""CLI commands ``patch`` and ``attribute``: thin shells over activation and attribution patching."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

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


def _pairs(model: Any, task: str, n: int, seed: int) -> Any:
    from interplab.data import factual_pairs, induction_pairs, ioi_pairs, load_pairs

    tok = model.tokenizer
    # Generated tasks mix templates of different token lengths; draw a larger pool so that n
    # pairs of one length (one template shape) remain after `same_length`.
    pool = max(10 * n, 100)
    if task == "ioi":
        # A position sweep averages position p over prompts, so every prompt must put the same
        # role there: one template (the paper's first) in one name order (IO first, ABBA).
        return ioi_pairs(tok, n=pool, seed=seed, order="ABBA", templates=(0,))
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


def load_task(
    task: str, n: int, seed: int, model: str, device: str, dtype: str
) -> tuple[Console, Any, Any]:
    """Returns a console, the loaded model and up to ``n`` pairs of ``task`` of one token length
    (`interplab.data.selection.same_length`), saying what was kept."""
    from interplab.data.selection import same_length

    console = Console()
    loaded = load_model(model, device, dtype)
    if loaded.tokenizer is None:
        raise typer.BadParameter(f"{model} has no tokenizer; patching tasks need one")
    chosen = same_length(_pairs(loaded, task, n, seed), loaded.tokenizer, n)
    console.print(
        f"[yellow]using {len(chosen)} pairs of {chosen.length} tokens"
        + (f" from one template and order ({chosen.group})" if chosen.group else "")
        + f" (of {chosen.drawn} drawn): a position must mean the same token in every example[/]"
    )
    if len(chosen) < 2:
        raise typer.BadParameter(
            f"only {len(chosen)} pair has {chosen.length} tokens; statistics need at least 2: "
            "raise --n"
        )
    return console, loaded, chosen.pairs


def _table(result: Any, component: str, title: str, console: Console) -> None:
    """Prints the strongest cells of ``component`` (typed cells: label, mean, CI, p, survives)."""
    table = Table(title=title)
    for col in ("cell", "mean effect", "95% CI", "p (Holm)", "survives"):
        table.add_column(col, justify="right" if col != "cell" else "left")
    for cell in result.top_cells(component, 12):
        table.add_row(
            cell.label,
            f"{cell.mean:+.3f}",
            f"[{cell.ci_low:+.3f}, {cell.ci_high:+.3f}]",
            f"{cell.p_adjusted:.3g}",
            "yes" if cell.significant else "no",
        )
    console.print(table)


TaskOpt = Annotated[str, typer.Option(help="ioi | factual | induction | a pairs CSV/JSONL file")]
NOpt = Annotated[
    int,
    typer.Option(
        min=2, max=5000, help="number of pairs (2 to 5000; checked before the model loads)"
    ),
]
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
        table.add_row(row.kind, f"{row.effect:+.3f}", row.clean[:70])
    console.print(f"cell {rows[0].label}:")
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
        console.print(result.describe(component))
        if result.control is not None:
            console.print(result.control_comparison(component).describe())
        _examples(result, component, console)
        write_outputs(result, json_path, plot, out=console, component=component)

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
        method: Annotated[
            str,
            typer.Option(
                help="exact (every cell patched) | verified (every cell whose AtP* score exceeds "
                "0.5% of the clean-corrupt gap runs exactly (1.5% for heads, plus every head of a "
                "layer whose heads patched together AtP* misses), with a random sample; the rest "
                "are estimated, with a bound) | atp "
                "(AtP* estimates only, with the QK fix)"
            ),
        ] = "exact",
        graddrop: Annotated[
            bool,
            typer.Option(
                help="with --method atp: also GradDrop's cancellation scores (about L/2 extra "
                "backwards)"
            ),
        ] = False,
        backend: BackendOpt = "local",
        address: AddressOpt = None,
        workers: WorkersOpt = 2,
        json: JsonOpt = None,
        plot: PlotOpt = None,
        budget_mb: BudgetOpt = 512.0,
        model: ModelOpt = "smollm2-135m",
        device: DeviceOpt = "auto",
        dtype: DtypeOpt = "float32",
    ) -> None:
        """Activation patching: the exact effect of every cell, with CIs, Holm correction and a
        control sweep on unrelated prompts (``--method verified``: only the cells AtP* scores
        above 0.5% of the clean-corrupt gap and a random sample run exactly; ``--method atp``:
        AtP* estimates alone)."""
        from interplab.techniques.patching import (
            PatchingConfig,
            activation_patching,
            compare_ablations,
        )
        from interplab.techniques.patching.ablations import check_methods

        plot = check_outputs(json, plot)
        if backend == "ray" and (method != "exact" or ablations is not None):
            raise typer.BadParameter(
                "--backend ray runs the exact sweep: drop --method/--ablations"
            )
        if method not in ("exact", "verified", "atp"):
            raise typer.BadParameter(f"--method is exact, verified or atp, not {method!r}")
        if graddrop and method != "atp":
            raise typer.BadParameter("--graddrop scores AtP* estimates: add --method atp")
        methods = None if ablations is None else [m.strip() for m in ablations.split(",")]
        if methods is not None:
            check_methods([m for m in methods if m])
            if method != "exact":
                raise typer.BadParameter("--ablations compares exact sweeps; drop --method")
        if method == "atp":
            from interplab.techniques.patching import AtPConfig, atp_star

            atp_config = AtPConfig(
                components=(component,),  # type: ignore[arg-type]
                direction=direction,  # type: ignore[arg-type]
                control=control,
                graddrop=graddrop,
            )
            console, loaded, pairs = load_task(task, n, seed, model, device, dtype)
            result = atp_star(loaded, pairs, config=atp_config)
            report(result, "AtP*", component, direction, json, plot, console)
            return
        config = PatchingConfig(
            components=(component,),  # type: ignore[arg-type]
            direction=direction,  # type: ignore[arg-type]
            batch_budget_mb=budget_mb,
            control=control,
            method="verified" if method == "verified" else "auto",
        )
        console, loaded, pairs = load_task(task, n, seed, model, device, dtype)
        if methods is not None:
            comparison = compare_ablations(
                loaded,
                pairs,
                components=(component,),
                methods=[m for m in methods if m],
                batch_budget_mb=budget_mb,
            )
            for method, r in comparison.results.items():
                _table(r, component, f"{method} ablation: strongest {component} cells", console)
            console.print(comparison.describe())
            write_outputs(comparison, json, plot, out=console, component=component)
            return
        if backend == "ray":
            from interplab.distributed import activation_patching as distributed_patching

            result = distributed_patching(
                loaded, pairs, config=config, backend="ray", address=address, workers=workers
            )
        else:
            result = activation_patching(loaded, pairs, config=config, progress=True)
        report(result, "patch", component, direction, json, plot, console)
        from interplab.techniques.patching import VerifiedPatchingResult

        if isinstance(result, VerifiedPatchingResult):
            console.print(result.describe_bound())

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
        model: ModelOpt = "smollm2-135m",
        device: DeviceOpt = "auto",
        dtype: DtypeOpt = "float32",
    ) -> None:
        """Attribution patching: gradient x activation difference, one forward and one backward,
        with the same estimate on unrelated control prompts."""
        from interplab.techniques.patching import AttributionConfig, attribution_patching

        plot = check_outputs(json, plot)
        config = AttributionConfig(
            components=(component,),  # type: ignore[arg-type]
            direction=direction,  # type: ignore[arg-type]
            control=control,
        )
        console, loaded, pairs = load_task(task, n, seed, model, device, dtype)
        result = attribution_patching(loaded, pairs, config=config)
        report(result, "attribute", component, direction, json, plot, console)
