"""`attribution_graph`: replacement, attribution, pruning, scores and the check, in one call.

1. `replacement.prepare` the prompt with the transcoders (features, error nodes, tokens).
2. `attribution.attribute`: the full adjacency in batched backward passes.
3. `prune.prune` with the node and edge thresholds; `prune.graph_scores` on the full graph.
4. Nodes and links with circuit-tracer's ids (an error node ``0_{layer}_{pos}`` that would share
   its id with the layer-0 feature ``{layer}`` at that position gets ``_error`` appended); each feature labelled by the output tokens its
   decoder row promotes through the final norm's weight and ``W_U`` (or by ``labels``, e.g.
   from feature pages).
5. `check.check_graph` on the pruned graph (``check_features`` > 0, the default); without it the
   result says it is unchecked.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from pathlib import Path

import torch

from interplab.core.model import Inputs, Model
from interplab.dictionaries import Dictionary
from interplab.provenance import Provenance, data_hash
from interplab.results.graphs import (
    EMBEDDING,
    ERROR,
    FEATURE,
    LOGIT,
    AttributionGraphResult,
    GraphConfig,
    GraphEdge,
    GraphNode,
)
from interplab.store import recorded
from interplab.techniques.graphs.attribution import Attribution, attribute
from interplab.techniques.graphs.check import check_graph
from interplab.techniques.graphs.prune import Pruned, graph_scores, prune
from interplab.techniques.graphs.replacement import (
    GraphError,
    TranscoderSet,
    prepare,
    transcoder_set,
)


@recorded("attribution_graph", inputs="prompt")
def attribution_graph(
    model: Model,
    transcoders: TranscoderSet | Mapping[int, Dictionary] | str | Path,
    prompt: str,
    *,
    config: GraphConfig | None = None,
    slug: str | None = None,
    labels: Mapping[tuple[int, int], str] | None = None,
    progress: bool = True,
    **options: object,
) -> AttributionGraphResult:
    """Returns the pruned, checked attribution graph of ``prompt`` (steps 1-5 of the module
    docstring). ``transcoders`` is a folder (a circuit-tracer set, or one subfolder per layer), a
    mapping layer -> transcoder, or a `TranscoderSet`; ``options`` are `GraphConfig` fields
    (``node_threshold=0.6``...), ``config`` replaces them; ``labels`` maps (layer, feature) to a
    label."""
    if config is not None and options:
        raise GraphError("give either config= or keyword options, not both")
    cfg = config if config is not None else GraphConfig(**options)  # type: ignore[arg-type]
    if not isinstance(prompt, str) or not prompt:
        raise GraphError("the prompt must be a non-empty string")
    tcs = transcoder_set(transcoders, model)
    rep = prepare(model, tcs, prompt, skip_first=cfg.skip_first)
    graph = attribute(
        model,
        tcs,
        rep,
        max_n_logits=cfg.max_n_logits,
        desired_logit_prob=cfg.desired_logit_prob,
        batch_size=cfg.batch_size,
        memory_budget_mb=cfg.memory_budget_mb,
        progress=progress,
    )
    return graph_result(model, tcs, prompt, graph, cfg, slug=slug, labels=labels)


def graph_result(
    model: Model,
    transcoders: TranscoderSet,
    prompt: str | Inputs,
    graph: Attribution,
    config: GraphConfig,
    *,
    slug: str | None = None,
    labels: Mapping[tuple[int, int], str] | None = None,
) -> AttributionGraphResult:
    """Returns the result of a computed `Attribution`: pruned, scored, labelled and checked."""
    rep = graph.replacement
    weights = graph.logit_weights
    pruned = prune(
        graph.adjacency,
        weights,
        n_features=graph.n_features,
        n_tokens=graph.n_tokens,
        n_logits=graph.n_logits,
        node_threshold=config.node_threshold,
        edge_threshold=config.edge_threshold,
    )
    replacement_score, completeness = graph_scores(
        graph.adjacency,
        weights,
        n_features=graph.n_features,
        n_errors=graph.n_errors,
        n_tokens=graph.n_tokens,
    )
    tokens = (
        [model.tokenizer.decode([int(t)]) for t in rep.tokens.ids[0]]
        if model.tokenizer
        else [str(int(t)) for t in rep.tokens.ids[0]]
    )
    nodes, edges = _nodes_and_edges(model, transcoders, graph, pruned, tokens, labels)
    feature_checks, edge_checks = [], []
    if config.check_features > 0:
        nodes, edges, feature_checks, edge_checks = check_graph(
            model,
            transcoders,
            rep.tokens.ids,
            nodes,
            edges,
            n_features=config.check_features,
            factor=config.check_factor,
            mode=config.check_mode,
        )
    text = prompt if isinstance(prompt, str) else "".join(tokens)
    target = next(n for n in nodes if n.kind == LOGIT and n.is_target_logit)
    return AttributionGraphResult(
        prompt=text,
        tokens=tokens,
        token_ids=[int(t) for t in rep.tokens.ids[0]],
        slug=slug or _slug(text),
        scan=transcoders.name,
        n_layers=rep.n_layers,
        nodes=nodes,
        edges=edges,
        replacement_score=replacement_score,
        completeness_score=completeness,
        n_active_features=graph.n_features,
        n_nodes_unpruned=int(graph.adjacency.shape[0]),
        target_token=tokens_of(model, [target.feature])[0],
        checked=config.check_features > 0 and bool(feature_checks),
        feature_checks=feature_checks,
        edge_checks=edge_checks,
        config=config,
        transcoder_list=[f"layer_{layer}" for layer in transcoders.layers],
        provenance=Provenance(
            technique="attribution_graph",
            model=model.info.to_dict(),
            config={**config.to_dict(), "transcoders": transcoders.source or transcoders.name},
            data_sha256=data_hash([text]),
        ),
    )


def tokens_of(model: Model, ids: list[int]) -> list[str]:
    if model.tokenizer is None:
        return [str(i) for i in ids]
    return [model.tokenizer.decode([int(i)]) for i in ids]


def _slug(text: str) -> str:
    words = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40].strip("-")
    return f"{words or 'graph'}-{hashlib.sha256(text.encode()).hexdigest()[:6]}"


def _nodes_and_edges(
    model: Model,
    transcoders: TranscoderSet,
    graph: Attribution,
    pruned: Pruned,
    tokens: list[str],
    labels: Mapping[tuple[int, int], str] | None,
) -> tuple[list[GraphNode], list[GraphEdge]]:
    """Returns the kept nodes and links, with circuit-tracer's ids (create_graph_files)."""
    rep = graph.replacement
    n_f, n_layers, n_pos = graph.n_features, rep.n_layers, rep.n_pos
    err_end = n_f + n_layers * n_pos
    tok_end = err_end + n_pos
    keep = pruned.nodes.nonzero().flatten().tolist()
    feature_rows = [i for i in keep if i < n_f]
    auto = _decoder_labels(model, transcoders, rep.active[feature_rows].tolist())
    feature_ids = {f"{a}_{c}_{b}" for a, b, c in rep.active[feature_rows].tolist()}
    nodes: dict[int, GraphNode] = {}
    for i in keep:
        score = float(pruned.cumulative[i])
        if i < n_f:
            layer, pos, feat = (int(v) for v in rep.active[i].tolist())
            label = (labels or {}).get((layer, feat)) or auto.get((layer, feat), "")
            nodes[i] = GraphNode(
                f"{layer}_{feat}_{pos}", FEATURE, str(layer), pos, feat, score,
                float(rep.activations[i]), label=label,
            )  # fmt: skip
        elif i < err_end:
            layer, pos = divmod(i - n_f, n_pos)
            node_id = f"0_{layer}_{pos}"
            if node_id in feature_ids:  # circuit-tracer's error ids collide with layer-0 features
                node_id += "_error"
            nodes[i] = GraphNode(node_id, ERROR, str(layer), pos, -1, score)
        elif i < tok_end:
            pos = i - err_end
            vocab = int(rep.tokens.ids[0, pos])
            nodes[i] = GraphNode(
                f"E_{vocab}_{pos}", EMBEDDING, "E", pos, vocab, score, label=tokens[pos]
            )
        else:
            j = i - tok_end
            vocab = int(graph.logits.ids[j])
            p = float(graph.logits.probabilities[j])
            tok = tokens_of(model, [vocab])[0]
            nodes[i] = GraphNode(
                f"{n_layers + 1}_{vocab}_{n_pos - 1}", LOGIT, str(n_layers + 1), n_pos - 1,
                vocab, score, token_prob=p, is_target_logit=j == 0,
                label=f'Output "{tok}" (p={p:.3f})',
            )  # fmt: skip
    targets, sources = pruned.edges.nonzero(as_tuple=True)
    values = graph.adjacency[targets, sources].tolist()
    edges = [
        GraphEdge(nodes[s].node_id, nodes[t].node_id, float(w))
        for t, s, w in zip(targets.tolist(), sources.tolist(), values, strict=True)
        if s in nodes and t in nodes
    ]
    linked = {e.source for e in edges} | {e.target for e in edges}
    kept = [n for n in nodes.values() if n.node_id in linked or n.kind in (EMBEDDING, LOGIT)]
    return kept, edges


@torch.no_grad()
def _decoder_labels(
    model: Model, transcoders: TranscoderSet, features: list[list[int]]
) -> dict[tuple[int, int], str]:
    """Returns (layer, feature) -> the 3 output tokens its decoder row promotes most (through the
    final norm's weight and W_U, as feature pages' ``boosted`` tokens)."""
    if model.tokenizer is None or not features:
        return {}
    w = model.weights
    scale = w.final_norm.scale_weight.detach().float()
    W_U = w.W_U.detach().float()
    out = {}
    for layer, _, feat in features:
        row = transcoders.by_layer[layer].W_dec[feat].detach().float()
        top = ((row * scale) @ W_U).topk(3).indices.tolist()
        out[(layer, feat)] = "→ " + " ".join(repr(t) for t in tokens_of(model, top))
    return out


__all__ = ["attribution_graph", "graph_result"]
