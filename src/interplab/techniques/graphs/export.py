"""Graph files: the circuit-tracer / Neuronpedia JSON, and re-checking a graph read from one.

``write_graph_files(result, folder)`` writes ``<slug>.json`` and updates ``graph-metadata.json``
beside it, the layout circuit-tracer's ``create_graph_files`` writes and its local server
(``circuit-tracer start-server --graph_file_dir``) and Neuronpedia read. `check_file` reads such a
file (ours or circuit-tracer's) and runs the intervention check on it with the transcoders it was
made with, so a graph written anywhere can be checked here.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from interplab.core.model import Model
from interplab.dictionaries import Dictionary
from interplab.provenance import write_text
from interplab.results.graphs import (
    LOGIT,
    AttributionGraphResult,
    EdgeCheck,
    FeatureCheck,
    GraphEdge,
    GraphFileError,
    GraphNode,
    NeuronpediaGraph,
    from_neuronpedia,
)
from interplab.techniques.graphs.check import check_graph
from interplab.techniques.graphs.replacement import GraphError, TranscoderSet, transcoder_set


def write_graph_files(result: AttributionGraphResult, folder: str | Path) -> Path:
    """Writes ``<folder>/<slug>.json`` and adds the graph to ``<folder>/graph-metadata.json``
    (replacing an entry with the same slug); returns the graph file's path."""
    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    path = result.write_neuronpedia(root / f"{result.slug}.json")
    index = root / "graph-metadata.json"
    graphs = []
    if index.is_file():
        try:
            graphs = json.loads(index.read_text(encoding="utf-8")).get("graphs", [])
        except (json.JSONDecodeError, AttributeError):
            raise GraphFileError(f"{index} is not a graph-metadata.json file") from None
    meta = result.to_neuronpedia()["metadata"]
    graphs = [g for g in graphs if g.get("slug") != result.slug] + [meta]
    write_text(index, json.dumps({"graphs": graphs}, indent=2))
    return path


def read_graph(path: str | Path) -> NeuronpediaGraph:
    """Returns the graph in a circuit-tracer / Neuronpedia JSON file."""
    return from_neuronpedia(path)


def check_file(
    model: Model,
    transcoders: TranscoderSet | dict[int, Dictionary] | str | Path,
    path: str | Path,
    *,
    n_features: int = 10,
    factor: float = 2.0,
    mode: str = "ablate",
) -> tuple[NeuronpediaGraph, list[GraphNode], list[GraphEdge], list[FeatureCheck], list[EdgeCheck]]:
    """Returns the graph in ``path`` with its nodes and edges marked by the intervention check, and
    the checks. The prompt is re-tokenised and must give the file's tokens."""
    graph = read_graph(path)
    tcs = transcoder_set(transcoders, model)
    if graph.n_layers != model.dims.n_layers:
        raise GraphError(
            f"{path} is a graph of a {graph.n_layers}-layer model; {model.info.name} has "
            f"{model.dims.n_layers} layers"
        )
    if model.tokenizer is None:  # a model without a tokenizer: the file's tokens are ids
        try:
            ids = torch.tensor([[int(t) for t in graph.prompt_tokens]])
        except ValueError:
            raise GraphError(
                f"{path}: this model has no tokenizer and the file's tokens are not ids"
            ) from None
        tokens = model.tokenize(ids)
    else:
        tokens = model.tokenize(graph.prompt)
        pieces = [model.tokenizer.decode([int(t)]) for t in tokens.ids[0]]
        if graph.prompt_tokens and pieces != graph.prompt_tokens:
            raise GraphError(
                f"{path}: the prompt tokenises to {pieces}, the file says "
                f"{graph.prompt_tokens}; it was made with another tokenizer"
            )
    if not any(n.kind == LOGIT and n.is_target_logit for n in graph.nodes):
        raise GraphError(f"{path} has no target logit node (is_target_logit)")
    with torch.no_grad():
        nodes, edges, fchecks, echecks = check_graph(
            model, tcs, tokens.ids, graph.nodes, graph.edges,
            n_features=n_features, factor=factor, mode=mode,
        )  # fmt: skip
    return graph, nodes, edges, fchecks, echecks


__all__ = ["check_file", "read_graph", "write_graph_files"]
