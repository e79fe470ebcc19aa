"""CLI group ``abstraction``: ``das`` (distributed alignment search) and ``interchange``.

The high-level model is the user's own Python: ``--task package.module:function`` names an
`AbstractionTask` (or a function returning one); the built-in IOI task is the default.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from interplab.commands._options import (
    DeviceOpt,
    DtypeOpt,
    JsonOpt,
    ModelOpt,
    PlotOpt,
    check_outputs,
    check_writable,
    console,
    err,
    load_model,
    write_outputs,
)
from interplab.errors import UserError

if TYPE_CHECKING:
    from interplab.techniques.causal_abstraction import AbstractionTask

DEFAULT_TASK = "interplab.techniques.causal_abstraction.tasks:ioi_position"

abstraction_app = typer.Typer(
    help="Causal abstraction: interchange interventions and distributed alignment search.",
    no_args_is_help=True,
)

TaskOpt = Annotated[
    str,
    typer.Option(
        help="the high-level model: 'package.module:function' returning an AbstractionTask"
    ),
]
VariableOpt = Annotated[
    list[str] | None,
    typer.Option("--variable", help="variable(s) to interchange (repeatable; default: the first)"),
]
PositionOpt = Annotated[
    list[int] | None,
    typer.Option("--position", help="token position(s) per row: -1 last (default), 0 first"),
]
PairsOpt = Annotated[int, typer.Option("--n", help="counterfactual pairs to draw (2..100000)")]


def _task_and_variables(task: str, variable: list[str] | None) -> tuple[AbstractionTask, list[str]]:
    import os
    import sys

    from interplab.techniques.causal_abstraction import load_task

    if os.getcwd() not in sys.path:  # a task module in the folder the command runs from
        sys.path.insert(0, os.getcwd())
    t = load_task(task)
    names = list(variable or [next(iter(t.causal_model.variables))])
    t.causal_model.check_variables(names)
    return t, names


def _check_n(n: int) -> None:
    if not 2 <= n <= 100_000:
        raise UserError(f"--n must lie in 2..100000 pairs, got {n}")


def _table(rows: list, title: str) -> Table:
    table = Table(title=title)
    for col in ("condition", "IIA", "95% CI", "n"):
        table.add_column(col)
    for r in rows:
        table.add_row(r.label, f"{r.iia:.3f}", f"{r.low:.3f} to {r.high:.3f}", str(r.n))
    return table


@abstraction_app.command("das")
def das_command(
    site: Annotated[str, typer.Option(help="where to search, e.g. L14.resid_post or L9.attn.z.h3")],
    task: TaskOpt = DEFAULT_TASK,
    variable: VariableOpt = None,
    position: PositionOpt = None,
    method: Annotated[str, typer.Option(help="das (k given) or boundless (size learned)")] = "das",
    k: Annotated[int, typer.Option(help="subspace size for das")] = 1,
    steps: Annotated[int, typer.Option(help="training steps")] = 200,
    lr: Annotated[float, typer.Option(help="Adam learning rate")] = 0.01,
    batch_size: Annotated[int, typer.Option(help="pairs per training step")] = 32,
    n: PairsOpt = 256,
    test_fraction: Annotated[float, typer.Option(help="share of pairs held out")] = 0.3,
    control: Annotated[str, typer.Option(help="shuffled (default) or none")] = "shuffled",
    n_random: Annotated[int, typer.Option(help="random rotations for the baseline")] = 5,
    seed: Annotated[int, typer.Option(help="seed for pairs, split, init and baselines")] = 0,
    path: Annotated[str, typer.Option(help="auto, partial or hooks")] = "auto",
    save_subspace: Annotated[
        Path | None,
        typer.Option(help="write the learned subspace (JSON) for steering, ablation, patching"),
    ] = None,
    model: ModelOpt = "smollm2-135m",
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "float32",
    json_path: JsonOpt = None,
    plot: PlotOpt = None,
) -> None:
    """Learn the subspace at a site that carries a high-level variable (DAS or Boundless DAS),
    and report held-out IIA beside random rotations, a control task, the whole site and no
    intervention."""
    from interplab.results.causal_abstraction import DASConfig
    from interplab.sites import Site
    from interplab.techniques.causal_abstraction import counterfactual_dataset, das

    config = DASConfig(
        site=Site.parse(site),
        positions=tuple(position or [-1]),
        method=method,  # type: ignore[arg-type]
        k=k,
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        test_fraction=test_fraction,
        control=control,  # type: ignore[arg-type]
        n_random=n_random,
        seed=seed,
        path=path,  # type: ignore[arg-type]
    )
    _check_n(n)
    t, names = _task_and_variables(task, variable)
    figure = check_outputs(json_path, plot)
    if save_subspace is not None:
        check_writable(save_subspace)
    m = load_model(model, device, dtype)
    data = counterfactual_dataset(m, t, names, n=n, seed=seed)
    console.print(
        f"{data.n} pairs of task {t.name!r} ({data.dropped} of {data.drawn} drawn dropped: the "
        "model got the base or the source wrong)"
    )
    result = das(m, data, config.site, config=config)
    console.print(
        _table(result.rows(), f"held-out IIA, {result.method} k={result.k} at {result.site}")
    )
    console.print(result.describe())
    if save_subspace is not None:
        console.print(f"wrote {result.subspace.to_json(save_subspace)}")
    write_outputs(result, json_path, figure)


@abstraction_app.command("interchange")
def interchange_command(
    site: Annotated[list[str], typer.Option(help="site(s) to swap (repeatable)")],
    task: TaskOpt = DEFAULT_TASK,
    variable: VariableOpt = None,
    position: PositionOpt = None,
    subspace: Annotated[
        Path | None,
        typer.Option(help="swap only along this subspace (a saved subspace or DAS result JSON)"),
    ] = None,
    n: PairsOpt = 128,
    seed: Annotated[int, typer.Option(help="seed for the pairs")] = 0,
    path: Annotated[str, typer.Option(help="auto, partial or hooks")] = "auto",
    model: ModelOpt = "smollm2-135m",
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "float32",
    json_path: JsonOpt = None,
    plot: PlotOpt = None,
) -> None:
    """Swap sites (or a subspace of one) from source runs into base runs and report IIA against
    the high-level model's counterfactual answers."""
    from interplab.results.causal_abstraction import InterchangeConfig, Subspace
    from interplab.sites import Site
    from interplab.techniques.causal_abstraction import counterfactual_dataset, interchange

    config = InterchangeConfig(
        sites=tuple(Site.parse(s) for s in site),
        positions=tuple(position or [-1]),
        path=path,  # type: ignore[arg-type]
    )
    _check_n(n)
    basis = None if subspace is None else Subspace.from_json(subspace)
    t, names = _task_and_variables(task, variable)
    figure = check_outputs(json_path, plot)
    m = load_model(model, device, dtype)
    data = counterfactual_dataset(m, t, names, n=n, seed=seed)
    with err.status(f"interchanging {len(config.sites)} site(s) on {data.n} pairs"):
        result = interchange(m, data, list(config.sites), subspace=basis, config=config)
    console.print(result.describe())
    write_outputs(result, json_path, figure)


def register(app: typer.Typer) -> None:
    """Adds the ``abstraction`` group (``das``, ``interchange``) to ``app``."""
    app.add_typer(abstraction_app, name="abstraction")


__all__ = ["register"]
