"""Attribution graphs in the circuit-tracer / Neuronpedia JSON format, checked for the viewer.

The format (circuit-tracer's ``create_graph_files``, read by Neuronpedia's graph viewer):

    {"metadata": {"slug", "prompt", "prompt_tokens": [...], ...},
     "nodes": [{"node_id", "feature", "layer", "ctx_idx", "feature_type", "clerp",
                "influence", "activation", "token_prob", "is_target_logit", ...}],
     "links": [{"source": node_id, "target": node_id, "weight"}]}

``layer`` is a string: ``"E"`` for the embeddings, ``"0"``.. for transcoder layers, and one past
the last layer for the logits. The viewer lays nodes out by layer (rows, embeddings at the
bottom, logits on top) and token position (columns):

1. `parse_graph` checks every node and link (types, known endpoints, finite weights) and says
   which one is wrong; unknown extra fields are kept.
2. `layout_rows` orders the layers; `payload` returns the compact JSON the page draws: nodes
   with their row and column, links as index triples, and the prompt's tokens.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from interplab.dashboard.sources import DashboardError

MAX_NODES = 20_000
MAX_LINKS = 1_000_000


@dataclass(frozen=True)
class GraphNode:
    """One node: a feature, error, embedding or logit at a layer and token position."""

    node_id: str
    layer: str
    ctx_idx: int
    feature_type: str
    feature: int | None
    clerp: str
    influence: float | None
    activation: float | None
    token_prob: float | None
    is_target_logit: bool


@dataclass(frozen=True)
class Graph:
    """A checked attribution graph."""

    nodes: tuple[GraphNode, ...]
    links: tuple[tuple[int, int, float], ...]  # (source index, target index, weight)
    tokens: tuple[str, ...]
    prompt: str
    slug: str


def _bad(what: str) -> DashboardError:
    return DashboardError(f"not an attribution graph in the circuit-tracer format: {what}", 422)


def _number(value: Any, where: str, *, optional: bool = True) -> float | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad(f"{where} must be a number, got {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise _bad(f"{where} must be finite, got {value!r}")
    return v


def _node(i: int, d: Any) -> GraphNode:
    if not isinstance(d, dict):
        raise _bad(f"node {i} is not an object")
    node_id = d.get("node_id")
    if not isinstance(node_id, str) or not node_id:
        raise _bad(f"node {i} has no node_id (a string)")
    layer = d.get("layer")
    if isinstance(layer, int) and not isinstance(layer, bool):
        layer = str(layer)
    if not isinstance(layer, str) or not layer:
        raise _bad(f"node {node_id!r} has no layer ('E' or a layer number as a string)")
    ctx = d.get("ctx_idx")
    if isinstance(ctx, bool) or not isinstance(ctx, int) or ctx < 0:
        raise _bad(f"node {node_id!r} has no ctx_idx (a token position, 0 or more)")
    feature = d.get("feature")
    if feature is not None and (isinstance(feature, bool) or not isinstance(feature, int)):
        raise _bad(f"node {node_id!r}: feature must be an integer, got {feature!r}")
    clerp = d.get("clerp") or ""
    return GraphNode(
        node_id=node_id,
        layer=layer,
        ctx_idx=ctx,
        feature_type=str(d.get("feature_type") or "feature"),
        feature=feature,
        clerp=str(clerp),
        influence=_number(d.get("influence"), f"node {node_id!r}: influence"),
        activation=_number(d.get("activation"), f"node {node_id!r}: activation"),
        token_prob=_number(d.get("token_prob"), f"node {node_id!r}: token_prob"),
        is_target_logit=bool(d.get("is_target_logit", False)),
    )


def parse_graph(data: Any) -> Graph:
    """Returns the checked graph of a circuit-tracer JSON document (or one under ``"graph"``)."""
    if isinstance(data, dict) and "nodes" not in data and isinstance(data.get("graph"), dict):
        data = data["graph"]
    if not isinstance(data, dict):
        raise _bad("the document is not a JSON object")
    nodes_in, links_in = data.get("nodes"), data.get("links")
    if not isinstance(nodes_in, list) or not isinstance(links_in, list):
        raise _bad("it needs a 'nodes' list and a 'links' list")
    if len(nodes_in) > MAX_NODES or len(links_in) > MAX_LINKS:
        raise DashboardError(
            f"the graph has {len(nodes_in)} nodes and {len(links_in)} links; the viewer draws at "
            f"most {MAX_NODES} nodes and {MAX_LINKS} links (prune it first)",
            413,
        )
    nodes = tuple(_node(i, d) for i, d in enumerate(nodes_in))
    index: dict[str, int] = {}
    for i, n in enumerate(nodes):
        if n.node_id in index:
            raise _bad(f"node_id {n.node_id!r} appears twice")
        index[n.node_id] = i
    links = []
    for j, link in enumerate(links_in):
        if not isinstance(link, dict):
            raise _bad(f"link {j} is not an object")
        s, t = link.get("source"), link.get("target")
        if s not in index or t not in index:
            missing = s if s not in index else t
            raise _bad(f"link {j} names node {missing!r}, which is not among the nodes")
        w = _number(link.get("weight"), f"link {j}: weight", optional=False)
        assert w is not None
        links.append((index[s], index[t], w))
    found = data.get("metadata")
    meta: dict[str, Any] = found if isinstance(found, dict) else {}
    listed = meta.get("prompt_tokens")
    tokens: list[Any] = listed if isinstance(listed, list) else []
    return Graph(
        nodes=nodes,
        links=tuple(links),
        tokens=tuple(str(t) for t in tokens),
        prompt=str(meta.get("prompt") or ""),
        slug=str(meta.get("slug") or ""),
    )


def _layer_key(layer: str) -> tuple[int, float, str]:
    if layer.upper() == "E":
        return (0, 0.0, layer)
    try:
        return (1, float(layer), layer)
    except ValueError:
        return (2, 0.0, layer)


def layout_rows(graph: Graph) -> list[str]:
    """Returns the layers bottom to top: embeddings, then layers by number, then the rest."""
    return sorted({n.layer for n in graph.nodes}, key=_layer_key)


def payload(graph: Graph) -> dict[str, Any]:
    """Returns the JSON the viewer draws: rows (layers), columns (positions), nodes, links."""
    rows = layout_rows(graph)
    row_of = {layer: i for i, layer in enumerate(rows)}
    n_cols = max([n.ctx_idx for n in graph.nodes] + [len(graph.tokens) - 1, 0]) + 1
    tokens = [graph.tokens[i] if i < len(graph.tokens) else f"pos {i}" for i in range(n_cols)]
    return {
        "slug": graph.slug,
        "prompt": graph.prompt,
        "rows": rows,
        "tokens": tokens,
        "nodes": [
            {
                "id": n.node_id,
                "row": row_of[n.layer],
                "col": n.ctx_idx,
                "layer": n.layer,
                "type": n.feature_type,
                "feature": n.feature,
                "label": n.clerp,
                "influence": n.influence,
                "activation": n.activation,
                "token_prob": n.token_prob,
                "target": n.is_target_logit,
            }
            for n in graph.nodes
        ],
        "links": [[s, t, w] for s, t, w in graph.links],
    }


__all__ = ["MAX_LINKS", "MAX_NODES", "Graph", "GraphNode", "layout_rows", "parse_graph", "payload"]
