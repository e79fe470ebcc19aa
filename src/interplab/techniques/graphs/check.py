"""The intervention check: does the graph predict what its top features do in the real model?

A graph is a linear account of the replacement model at one operating point; whether that account
holds in the real model is an empirical question, so every graph is checked by default:

1. Take the ``n`` most influential feature nodes of the pruned graph.
2. Predict, from the pruned graph alone, what ablating one (its activation ``a`` set to 0; or
   ``steer``: doubled, ``+a``) changes: propagate the change in layer order through the graph's
   edges, each feature passing on ``weight / activation`` per unit of its own change (a feature
   that stays active is linear in its pre-activation), errors and tokens held fixed. This gives
   the change of the target logit (demeaned, as the logit node is) and of every feature the
   ablated feature has an edge to.
3. Measure the same in the real model: splice every transcoder with its error term
   (`dictionaries.spliced`, so the unedited model is exact), ablate (or steer) the feature at its
   position, and read the target logit and the downstream features' activations.
4. A feature (edge) passes when the measured change has the predicted sign and lies within
   ``factor`` times the prediction either way. Edges from a checked feature to a logit take its
   feature's verdict; edges not touched by the check stay ``unchecked``.

The real model's attention, norms and MLPs all respond, and features can switch off or on, so a
failed check is information about the graph (or about the transcoders), not a bug.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import torch

from interplab.core.model import Model
from interplab.dictionaries import spliced
from interplab.results.graphs import (
    FEATURE,
    LOGIT,
    EdgeCheck,
    FeatureCheck,
    GraphEdge,
    GraphNode,
)
from interplab.techniques.graphs.replacement import GraphError, TranscoderSet


def predict(
    nodes: Sequence[GraphNode], edges: Sequence[GraphEdge], source: str, delta: float
) -> dict[str, float]:
    """Returns node id -> predicted change when ``source``'s activation changes by ``delta``,
    propagated linearly through the graph (step 2)."""
    by_id = {n.node_id: n for n in nodes}
    incoming: dict[str, list[GraphEdge]] = {}
    for e in edges:
        incoming.setdefault(e.target, []).append(e)
    change = {source: delta}
    start = by_id[source].layer_index
    for node in sorted(nodes, key=lambda n: (n.layer_index, n.position)):
        if node.node_id == source or node.layer_index <= start:
            continue
        if node.kind not in (FEATURE, LOGIT):
            continue
        total = 0.0
        for e in incoming.get(node.node_id, ()):
            d = change.get(e.source)
            src = by_id.get(e.source)
            if d and src is not None and src.activation:
                total += e.weight / src.activation * d
        if total:
            change[node.node_id] = total
    return change


def passes(predicted: float, measured: float, factor: float) -> bool:
    """Whether ``measured`` has ``predicted``'s sign and lies within ``factor`` of it."""
    if predicted == 0.0 or measured == 0.0 or (predicted > 0) != (measured > 0):
        return False
    ratio = measured / predicted
    return 1.0 / factor <= ratio <= factor


@torch.no_grad()
def check_graph(
    model: Model,
    transcoders: TranscoderSet,
    tokens: torch.Tensor,
    nodes: list[GraphNode],
    edges: list[GraphEdge],
    *,
    n_features: int = 10,
    factor: float = 2.0,
    mode: str = "ablate",
) -> tuple[list[GraphNode], list[GraphEdge], list[FeatureCheck], list[EdgeCheck]]:
    """Returns the nodes and edges marked passed/failed/unchecked and the checks (steps 1-4);
    ``tokens`` ``[1, pos]`` is the graph's prompt."""
    if mode not in ("ablate", "steer"):
        raise GraphError(f"check mode must be 'ablate' or 'steer', got {mode!r}")
    target = next((n for n in nodes if n.kind == LOGIT and n.is_target_logit), None)
    if target is None:
        raise GraphError("the graph has no target logit node to check against")
    features = [n for n in nodes if n.kind == FEATURE and n.activation]
    features.sort(key=lambda n: n.influence if n.influence is not None else 1.0)
    chosen = features[:n_features]
    for n in chosen:
        if n.layer_index not in transcoders.by_layer:
            raise GraphError(f"node {n.node_id} is in layer {n.layer}, which has no transcoder")
    names = {layer: f"layer_{layer}" for layer in transcoders.layers}
    dictionaries = {names[layer]: transcoders.by_layer[layer] for layer in transcoders.layers}
    wanted_layers = sorted({n.layer_index for n in features})
    vocab = target.feature
    feature_checks: list[FeatureCheck] = []
    edge_checks: list[EdgeCheck] = []
    with spliced(model, dictionaries, error=True) as sp:
        sites = [sp.feature_site(names[layer]) for layer in wanted_layers]

        def measure(edits):
            run = sp.run(tokens, capture=sites, edits=edits)
            logits = run.logits[0, -1].float()
            feats = {
                layer: run.features[site][0].float()
                for layer, site in zip(wanted_layers, sites, strict=True)
            }
            return float(logits[vocab] - logits.mean()), feats

        clean_logit, clean_feats = measure([])
        for node in chosen:
            a = float(node.activation or 0.0)
            delta = -a if mode == "ablate" else a
            site = sp.feature_site(names[node.layer_index], node.feature)
            edit = (
                sp.ablate(site, positions=[node.position])
                if mode == "ablate"
                else sp.steer(site, a, positions=[node.position])
            )
            logit, feats = measure([edit])
            predicted = predict(nodes, edges, node.node_id, delta)
            p_logit = predicted.get(target.node_id, 0.0)
            m_logit = logit - clean_logit
            feature_checks.append(
                FeatureCheck(
                    node_id=node.node_id,
                    layer=node.layer_index,
                    position=node.position,
                    feature=node.feature,
                    activation=a,
                    predicted=p_logit,
                    measured=m_logit,
                    passed=passes(p_logit, m_logit, factor),
                )
            )
            for e in edges:
                if e.source != node.node_id:
                    continue
                t = next((n for n in nodes if n.node_id == e.target), None)
                if t is None or t.kind != FEATURE or t.layer_index not in feats:
                    continue
                before = clean_feats[t.layer_index][t.position, t.feature]
                after = feats[t.layer_index][t.position, t.feature]
                measured = float(after - before)
                pred = predicted.get(t.node_id, 0.0)
                edge_checks.append(
                    EdgeCheck(e.source, e.target, pred, measured, passes(pred, measured, factor))
                )
    verdict = {c.node_id: "passed" if c.passed else "failed" for c in feature_checks}
    edge_verdict = {(c.source, c.target): "passed" if c.passed else "failed" for c in edge_checks}
    new_nodes = [replace(n, check=verdict.get(n.node_id, "unchecked")) for n in nodes]  # type: ignore[arg-type]
    new_edges = []
    for e in edges:
        status = edge_verdict.get((e.source, e.target))
        if status is None and e.target == target.node_id:
            status = verdict.get(e.source)
        new_edges.append(replace(e, check=status or "unchecked"))  # type: ignore[arg-type]
    return new_nodes, new_edges, feature_checks, edge_checks


__all__ = ["check_graph", "passes", "predict"]
