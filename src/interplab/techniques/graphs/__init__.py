"""Attribution graphs (circuit tracing with transcoders), checked by interventions.

Modules: `replacement` (the local replacement model of one prompt), `attribution` (direct
effects in batched backward passes), `prune` (cumulative-influence pruning and the scores),
`check` (ablations in the real model), `export` (the circuit-tracer / Neuronpedia JSON),
`build` (`attribution_graph`, all of it in one call), `recipe` (transcoders for the embedded
model).
"""

from interplab.results.graphs import (
    AttributionGraphResult,
    EdgeCheck,
    FeatureCheck,
    GraphConfig,
    GraphEdge,
    GraphNode,
    from_neuronpedia,
)
from interplab.techniques.graphs.attribution import Attribution, LogitTargets, attribute
from interplab.techniques.graphs.build import attribution_graph, graph_result
from interplab.techniques.graphs.check import check_graph, predict
from interplab.techniques.graphs.export import check_file, read_graph, write_graph_files
from interplab.techniques.graphs.prune import Pruned, graph_scores, prune
from interplab.techniques.graphs.replacement import (
    GraphError,
    Replacement,
    TranscoderSet,
    prepare,
    replacement_logits,
    transcoder_set,
)

__all__ = [
    "Attribution",
    "AttributionGraphResult",
    "EdgeCheck",
    "FeatureCheck",
    "GraphConfig",
    "GraphEdge",
    "GraphError",
    "GraphNode",
    "LogitTargets",
    "Pruned",
    "Replacement",
    "TranscoderSet",
    "attribute",
    "attribution_graph",
    "check_file",
    "check_graph",
    "from_neuronpedia",
    "graph_result",
    "graph_scores",
    "predict",
    "prepare",
    "prune",
    "read_graph",
    "replacement_logits",
    "transcoder_set",
    "write_graph_files",
]
