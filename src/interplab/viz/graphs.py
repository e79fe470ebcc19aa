"""The static figure of a pruned attribution graph: layer (up) by token position (across).

Tokens sit at the bottom, logits at the top, features and error nodes (squares) at their layer and
position, spread sideways when several share a cell. Feature colour says what the intervention
check found: green passed, red failed, grey not checked. Edges: the strongest ``max_edges`` by
|weight|, width by |weight|; edges the check passed are solid green, failed dashed red, the rest
thin (blue for positive, orange for negative). An unchecked graph says so in its title.
"""

from __future__ import annotations

from collections import defaultdict

from matplotlib.figure import Figure

from interplab.results.graphs import EMBEDDING, ERROR, FEATURE, LOGIT, AttributionGraphResult
from interplab.viz.render import renders

_CHECK_COLOURS = {"passed": "#2ca02c", "failed": "#d62728", "unchecked": "#9e9e9e"}


def graph_title(result: AttributionGraphResult) -> str:
    state = "checked" if result.checked else "UNCHECKED"
    return f"attribution graph: {result.prompt!r} → {result.target_token!r} ({state})"


@renders(AttributionGraphResult, title=graph_title)
def graph_figure(result: AttributionGraphResult, max_edges: int = 400) -> Figure:
    """Returns the graph drawn as layer × position, checked nodes and edges marked."""
    n_pos = len(result.tokens)
    top = result.n_layers + 1
    cells: dict[tuple[int, int], list[str]] = defaultdict(list)
    for n in result.nodes:
        y = -1 if n.kind == EMBEDDING else (top if n.kind == LOGIT else n.layer_index)
        cells[(y, n.position)].append(n.node_id)
    xy: dict[str, tuple[float, float]] = {}
    for (y, pos), ids in cells.items():
        width = 0.8 if len(ids) > 1 else 0.0
        for i, node_id in enumerate(ids):
            offset = (i / (len(ids) - 1) - 0.5) * width if len(ids) > 1 else 0.0
            xy[node_id] = (pos + offset, y)

    fig = Figure(figsize=(max(7.0, 1.3 * n_pos + 2), 7.5))
    ax = fig.subplots()
    strongest = sorted(result.edges, key=lambda e: -abs(e.weight))[:max_edges]
    scale = max((abs(e.weight) for e in strongest), default=1.0) or 1.0
    for e in reversed(strongest):  # strongest drawn last, on top
        if e.source not in xy or e.target not in xy:
            continue
        (x0, y0), (x1, y1) = xy[e.source], xy[e.target]
        w = abs(e.weight) / scale
        ls = "-"
        if e.check == "passed":
            colour, lw, alpha = _CHECK_COLOURS["passed"], 0.8 + 2.5 * w, 0.9
        elif e.check == "failed":
            colour, lw, alpha, ls = _CHECK_COLOURS["failed"], 0.8 + 2.5 * w, 0.9, "--"
        else:
            colour = "#1f77b4" if e.weight > 0 else "#ff7f0e"
            lw, alpha = 0.2 + 2.0 * w, 0.15 + 0.5 * w
        ax.plot([x0, x1], [y0, y1], color=colour, lw=lw, alpha=alpha, ls=ls, zorder=1)
    for n in result.nodes:
        x, y = xy[n.node_id]
        if n.kind == FEATURE:
            ax.scatter(
                x, y, s=40, color=_CHECK_COLOURS[n.check], edgecolors="black", lw=0.4, zorder=3
            )
        elif n.kind == ERROR:
            ax.scatter(x, y, s=30, marker="s", color="white", edgecolors="#555", lw=0.8, zorder=3)
        elif n.kind == LOGIT:
            ax.scatter(x, y, s=50, marker="D", color="#8c564b", zorder=3)
            ax.annotate(
                n.label.replace("Output ", ""), (x, y), xytext=(0, 7), textcoords="offset points",
                ha="center", fontsize=7, rotation=30,
            )  # fmt: skip
        else:
            ax.scatter(x, y, s=50, marker="^", color="#444", zorder=3)
    ax.set_xticks(range(n_pos))
    ax.set_xticklabels([repr(t)[1:-1] for t in result.tokens], rotation=40, ha="right", fontsize=8)
    ticks = [-1, *range(0, result.n_layers, max(1, result.n_layers // 10)), top]
    ax.set_yticks(ticks)
    ax.set_yticklabels(["emb", *[f"L{t}" for t in ticks[1:-1]], "logit"])
    ax.set_ylim(-1.8, top + 1.2)
    ax.set_xlim(-0.7, n_pos - 0.3)
    ax.set_ylabel("layer")
    checks = result.feature_checks
    note = (
        f"check: {sum(c.passed for c in checks)}/{len(checks)} features, "
        f"{sum(c.passed for c in result.edge_checks)}/{len(result.edge_checks)} edges agree"
        if result.checked
        else "UNCHECKED: no intervention check"
    )
    ax.set_title(
        f"{graph_title(result)}\nreplacement {result.replacement_score:.2f}, completeness "
        f"{result.completeness_score:.2f}; {note}",
        fontsize=9,
    )
    for s in ("top", "right"):
        ax.spines[s].set_visible(False)
    return fig


__all__ = ["graph_figure", "graph_title"]
