"""The demo's attribution-graph section: one capital-city prompt traced through per-layer
transcoders, pruned, exported in circuit-tracer's format, and checked by ablations in the real
model.

The transcoders come from the cache: the full recipe's set when it has finished, else the quick
set (trained on first use, minutes; `interplab.techniques.graphs.recipe`).
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from interplab import viz
from interplab.core.model import Model
from interplab.report import Section
from interplab.techniques.graphs import attribution_graph, recipe, write_graph_files

PROMPT = "The capital of France is"


def section(model: Model, out_dir: Path, console: Console) -> Section:
    """Returns the graph section; writes the graph JSON, the result and the figure."""
    tcs = recipe.cached(model, "full") or recipe.cached(model, "quick")
    if tcs is None:
        console.print("training the quick transcoder set (once, a few minutes; cached)")
        tcs = recipe.quick_set(model)
    folder = out_dir / "graph"
    with console.status(f"attribution graph of {PROMPT!r} ({tcs.name})"):
        result = attribution_graph(model, tcs, PROMPT, check_features=8, progress=False)
    result.to_json(folder / "result.json")
    write_graph_files(result, folder)
    viz.save(result, folder / "graph.png")
    checks = result.feature_checks
    rows = [
        [c.node_id, f"{c.activation:.2f}", f"{c.predicted:+.3f}", f"{c.measured:+.3f}",
         "yes" if c.passed else "no"]
        for c in checks
    ]  # fmt: skip
    summary = result.summary()
    return Section(
        title=f"Attribution graph of {PROMPT!r}, checked by ablations",
        text=(
            f"Circuit tracing (Ameisen et al. 2025) with the {tcs.name} per-layer transcoders: "
            "the MLPs are replaced by transcoders plus error nodes, attention patterns and norm "
            "scales are frozen at their values on the prompt, and the direct effect of every "
            f"active feature ({result.n_active_features}), error node and token on every feature "
            f"and on the top logits is computed in batched backward passes. Pruned to "
            f"{len(result.nodes)} nodes and {len(result.edges)} edges by cumulative influence. "
            f"Then the {len(checks)} most influential features are ablated in the real model "
            "(spliced with their error terms, so everything else is the real model), and the "
            "change of the target logit is compared with what the pruned graph predicts."
        ),
        claims=[" ".join(result.describe().splitlines())],
        caveats=[
            "The graph is a linear account at one operating point: ablations move attention, "
            "norms and MLPs too, and features can switch on or off, so predictions and "
            "measurements differ; features that fail the check are not explained by the graph.",
            f"Replacement score {result.replacement_score:.2f}: much of the path from tokens to "
            "the output runs through error nodes with these small, briefly trained transcoders.",
            f"mean(measured - predicted) over n={summary.n} features: "
            f"{float(summary.mean):+.3f} [{float(summary.ci_low):+.3f}, "
            f"{float(summary.ci_high):+.3f}].",
        ],
        figures=[
            (
                "pruned graph, layer × position; green features passed the ablation check, red "
                "failed, grey unchecked",
                (folder / "graph.png").read_bytes(),
            )
        ],
        tables=[(["feature", "activation", "predicted Δlogit", "measured Δlogit", "agrees"], rows)],
        provenance=result.provenance.to_dict() if result.provenance else None,
        links=[("graph JSON (circuit-tracer / Neuronpedia)", f"graph/{result.slug}.json")],
    )


__all__ = ["PROMPT", "section"]
