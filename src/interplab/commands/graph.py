"""CLI command ``graph``: an attribution graph of one prompt, and ``graph check FILE``.

    interplab graph --transcoders DIR "The capital of France is" --json g.json --html g.html
    interplab graph check g.json --transcoders DIR

``--transcoders`` is a circuit-tracer transcoder set, a folder of per-layer transcoder folders,
or the name of a recipe set (``quick``: trained on first use, minutes; ``full``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from interplab.commands._options import (
    DeviceOpt,
    DtypeOpt,
    ModelOpt,
    PlotOpt,
    check_outputs,
    check_writable,
    console,
    err,
    load_model,
    parse_budget,
)


def _transcoders(model, spec: str):
    from interplab.techniques.graphs import recipe, transcoder_set

    if spec in recipe.RECIPES and not Path(spec).exists():
        found = recipe.cached(model, spec)
        if found is not None:
            return found
        if spec != "quick":
            from interplab.errors import UserError

            raise UserError(
                f"the {spec!r} transcoder set is not trained; run `python -m "
                f"interplab.techniques.graphs.recipe {spec}` (about an hour on 2 cores), or use --transcoders quick"
            )
        err.print("training the quick transcoder set (once, a few minutes)")
        return recipe.quick_set(model)
    return transcoder_set(spec, model)


def register(app: typer.Typer) -> None:
    """Adds the ``graph`` command to ``app``."""

    @app.command()
    def graph(
        args: Annotated[
            list[str],
            typer.Argument(help='the prompt, or "check" and a graph JSON file to check'),
        ],
        transcoders: Annotated[
            str,
            typer.Option(help="transcoder set: a folder, or a recipe name (quick, full)"),
        ] = "quick",
        json_path: Annotated[
            Path | None,
            typer.Option("--json", help="write the circuit-tracer / Neuronpedia graph JSON here"),
        ] = None,
        result_path: Annotated[
            Path | None,
            typer.Option("--result", help="write the interplab result (checks, scores) here"),
        ] = None,
        html: Annotated[
            Path | None, typer.Option("--html", help="write an HTML page of the graph here")
        ] = None,
        plot: PlotOpt = None,
        node_threshold: Annotated[float, typer.Option(help="node pruning threshold")] = 0.8,
        edge_threshold: Annotated[float, typer.Option(help="edge pruning threshold")] = 0.98,
        max_n_logits: Annotated[int, typer.Option(help="at most this many logit nodes")] = 10,
        desired_logit_prob: Annotated[
            float, typer.Option(help="logit nodes cover this probability")
        ] = 0.95,
        check_features: Annotated[
            int, typer.Option(help="features to ablate in the real model (0: unchecked)")
        ] = 10,
        batch_size: Annotated[int, typer.Option(help="targets per backward pass")] = 128,
        budget_mb: Annotated[
            Any,
            typer.Option(
                "--budget-mb",
                parser=parse_budget,
                metavar="MIB|auto",
                help="memory of the retained graph in MiB, or auto (a quarter of free memory)",
            ),
        ] = 2048.0,
        model: ModelOpt = "smollm2-135m",
        device: DeviceOpt = "auto",
        dtype: DtypeOpt = "float32",
    ) -> None:
        """An attribution graph (circuit tracing with transcoders), checked by interventions."""
        from interplab.results.graphs import GraphConfig

        if args and args[0] == "check":
            if len(args) != 2:
                raise typer.BadParameter(
                    "write: interplab graph check GRAPH.json --transcoders DIR"
                )
            _check(Path(args[1]), transcoders, check_features, model, device, dtype)
            return
        if len(args) != 1:
            raise typer.BadParameter(
                f"give one prompt (quote it), got {len(args)} arguments: {args}"
            )
        config = GraphConfig(
            node_threshold=node_threshold,
            edge_threshold=edge_threshold,
            max_n_logits=max_n_logits,
            desired_logit_prob=desired_logit_prob,
            check_features=check_features,
            batch_size=batch_size,
            memory_budget_mb=budget_mb,
        )
        figure = check_outputs(result_path, plot)
        for p in (json_path, html):
            if p is not None:
                check_writable(p)
        m = load_model(model, device, dtype)
        from interplab.techniques.graphs import attribution_graph

        tcs = _transcoders(m, transcoders)
        result = attribution_graph(m, tcs, args[0], config=config)
        console.print(result.describe())
        _print_checks(result.feature_checks)
        if json_path is not None:
            result.write_neuronpedia(json_path)
            console.print(f"wrote {json_path}")
        if result_path is not None:
            result.to_json(result_path)
            console.print(f"wrote {result_path}")
        if figure is not None:
            from interplab import viz

            for p in viz.save(result, figure):
                console.print(f"wrote {p}")
        if html is not None:
            _write_html(result, html)
            console.print(f"wrote {html}")


def _check(path: Path, transcoders: str, n: int, model: str, device: str, dtype: str) -> None:
    from interplab.results.graphs import from_neuronpedia
    from interplab.techniques.graphs import check_file

    from_neuronpedia(path)  # a malformed file fails before the model loads
    if n < 1:
        raise typer.BadParameter("--check-features must be at least 1 to check a graph")
    m = load_model(model, device, dtype)
    tcs = _transcoders(m, transcoders)
    graph, nodes, edges, fchecks, echecks = check_file(m, tcs, path, n_features=n)
    console.print(
        f"graph {graph.slug!r} of {graph.prompt!r}: {len(nodes)} nodes, {len(edges)} edges"
    )
    _print_checks(fchecks)
    console.print(
        f"{sum(c.passed for c in fchecks)}/{len(fchecks)} features and "
        f"{sum(c.passed for c in echecks)}/{len(echecks)} edges agree with the graph"
    )


def _print_checks(checks) -> None:
    if not checks:
        return
    table = Table(title="intervention check: change of the target logit when a feature is ablated")
    for col in ("node", "activation", "predicted", "measured", "agrees"):
        table.add_column(col, justify="right" if col != "node" else "left")
    for c in checks:
        table.add_row(
            c.node_id, f"{c.activation:.2f}", f"{c.predicted:+.3f}", f"{c.measured:+.3f}",
            "yes" if c.passed else "no",
        )  # fmt: skip
    console.print(table)


def _write_html(result, path: Path) -> None:
    import html as html_lib

    from interplab import viz
    from interplab.provenance import write_text

    body = viz.html(result)
    text = html_lib.escape(result.describe())
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>attribution graph</title></head>"
        f"<body style='font-family:sans-serif'>{body}<pre>{text}</pre></body></html>"
    )
    write_text(path, page)


__all__ = ["register"]
