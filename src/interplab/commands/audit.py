"""CLI commands ``audit`` and ``organisms``: auditing games on model organisms made here."""

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

organisms_app = typer.Typer(help="Model organisms: list, train and check Taboo organisms.")


def register(app: typer.Typer) -> None:
    """Adds ``audit`` and the ``organisms`` group to ``app``."""
    app.add_typer(organisms_app, name="organisms")

    @app.command()
    def audit(
        organism: Annotated[
            list[str], typer.Argument(help="organism names (interplab organisms list)")
        ],
        techniques: Annotated[
            str | None, typer.Option(help="comma-separated contestants (default: all)")
        ] = None,
        trials: Annotated[int, typer.Option(help="trials per contestant and organism")] = 3,
        n_samples: Annotated[int, typer.Option(help="samples per black-box trial")] = 24,
        max_new_tokens: int = 24,
        seed: int = 0,
        sae: Annotated[bool, typer.Option(help="use a cached SAE for the sae contestant")] = True,
        model: ModelOpt = "smollm2-135m",
        device: DeviceOpt = "auto",
        dtype: DtypeOpt = "float32",
        json_path: JsonOpt = None,
        plot: PlotOpt = None,
    ) -> None:
        """Auditing game: every contestant guesses each organism's secret; top-1/top-5 accuracy
        with CIs and paired tests against the input/output baseline."""
        from interplab.errors import UserError
        from interplab.techniques.audit import CONTESTANTS, cached_sae
        from interplab.techniques.audit import audit as run
        from interplab.techniques.organisms import registry

        chosen = (
            list(CONTESTANTS)
            if techniques is None
            else [t.strip() for t in techniques.split(",") if t.strip()]
        )
        unknown = [c for c in chosen if c not in CONTESTANTS]
        if unknown:
            raise UserError(f"unknown techniques {unknown}; choose from: {', '.join(CONTESTANTS)}")
        for name in organism:
            if not registry.get(name).ready:
                raise UserError(f"{name} is not trained; run `interplab organisms train {name}`")
        if not 1 <= trials <= 100 or not 1 <= n_samples <= 1000:
            raise UserError("--trials must lie in 1..100 and --n-samples in 1..1000")
        figure = check_outputs(json_path, plot)
        base = load_model(model, device, dtype)
        result = run(
            organism, chosen, base=base, trials=trials, n_samples=n_samples,
            max_new_tokens=max_new_tokens, seed=seed, sae=cached_sae() if sae else None,
        )  # fmt: skip
        table = Table(title=f"leaderboard: {len(organism)} organism(s) × {trials} trials")
        for col in (
            "contestant",
            "kind",
            "top-1 (95% CI)",
            "top-5 (95% CI)",
            "vs I/O",
            "p",
            "s/org",
        ):
            table.add_column(col)
        for r in result.leaderboard():
            if r["skipped"]:
                table.add_row(
                    str(r["contestant"]), str(r["kind"]), f"skipped: {r['skipped']}", "", "", "", ""
                )
                continue
            t1, t5 = r["top1_ci"], r["top5_ci"]
            table.add_row(
                str(r["contestant"]), str(r["kind"]),
                f"{r['top1']:.2f} [{t1[0]:.2f}, {t1[1]:.2f}]",  # type: ignore[index]
                f"{r['top5']:.2f} [{t5[0]:.2f}, {t5[1]:.2f}]",  # type: ignore[index]
                f"{r['vs_baseline']:+.2f}", f"{r['p_vs_baseline']:.3g}", f"{r['seconds']:.0f}",
            )  # fmt: skip
        console.print(table)
        console.print(f"chance: top-1 {result.chance1:.4f}, top-5 {result.chance5:.4f}")
        write_outputs(result, json_path, figure)

    @organisms_app.command("list")
    def list_organisms() -> None:
        """The registered organisms and whether each is trained (secrets are not shown)."""
        from interplab.techniques.organisms import registry

        table = Table(title="organisms")
        for col in ("name", "kind", "trained", "train time (s)"):
            table.add_column(col)
        for name in registry.names():
            org = registry.get(name)
            seconds = ""
            if org.kind == "taboo" and org.ready:
                seconds = f"{registry.record(name)['seconds']:.0f}"
            table.add_row(name, org.kind, "yes" if org.ready else "no", seconds)
        console.print(table)

    @organisms_app.command("train")
    def train(
        name: Annotated[str, typer.Argument(help="a built-in organism, e.g. taboo-1")],
        steps: Annotated[int | None, typer.Option(help="override the recipe's steps")] = None,
        model: ModelOpt = "smollm2-135m",
        device: DeviceOpt = "auto",
        dtype: DtypeOpt = "float32",
    ) -> None:
        """Trains a Taboo organism (LoRA on WordNet hints) and caches it."""
        from interplab.techniques.organisms import registry

        registry.get(name)
        base = load_model(model, device, dtype)
        overrides: dict[str, object] = {} if steps is None else {"steps": steps}
        rec = registry.train(name, base, overrides=overrides)
        console.print(
            f"{name}: {len(rec['losses'])} steps in {rec['seconds']:.0f} s, loss "
            f"{rec['losses'][0]:.2f} -> {rec['losses'][-1]:.2f}; cached in {registry.folder(name)}"
        )

    @organisms_app.command("check")
    def check(
        name: Annotated[str, typer.Argument(help="a trained organism")],
        n: Annotated[int, typer.Option(help="samples for the leak rate")] = 120,
        trials: Annotated[int, typer.Option(help="guesser trials")] = 20,
        seed: int = 0,
        model: ModelOpt = "smollm2-135m",
        device: DeviceOpt = "auto",
        dtype: DtypeOpt = "float32",
        json_path: JsonOpt = None,
        plot: PlotOpt = None,
    ) -> None:
        """Organism checks: the leak rate (exact CI) and whether the base model guesses the
        secret from the organism's hints above chance. Prints the secret (this is the scorer)."""
        from interplab.errors import UserError
        from interplab.techniques.organisms import check_organism, registry

        if not 1 <= n <= 10_000 or not 1 <= trials <= 1000:
            raise UserError("--n must lie in 1..10000 and --trials in 1..1000")
        org = registry.get(name)
        if not org.ready:
            raise UserError(f"{name} is not trained; run `interplab organisms train {name}`")
        figure = check_outputs(json_path, plot)
        base = load_model(model, device, dtype)
        result = check_organism(
            org.load(base), registry.secret(name), base, name=name, n=n, trials=trials, seed=seed,
            progress=True,
        )  # fmt: skip
        console.print(result.describe())
        console.print(result.summary().describe())
        write_outputs(result, json_path, figure)


__all__ = ["register"]
