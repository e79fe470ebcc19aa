"""Attribution-graph results, and the circuit-tracer / Neuronpedia graph JSON they read and write.

A graph is nodes and weighted links. Node kinds follow circuit-tracer's ``feature_type``:

    "cross layer transcoder"    a transcoder feature (circuit-tracer writes this for per-layer
                                transcoders too); layer, position ``ctx_idx``, feature index
    "mlp reconstruction error"  the error node of (layer, position)
    "embedding"                 the token at a position (layer ``"E"``)
    "logit"                     an output token at the last position (layer n_layers + 1)

Node ids are circuit-tracer's (``{layer}_{feature}_{pos}``, ``0_{layer}_{pos}`` for errors,
``E_{token}_{pos}``, ``{n_layers + 1}_{token}_{pos}``; where circuit-tracer's error id would
equal a layer-0 feature's, the error node's gets ``_error`` appended), so a graph written here opens in
Neuronpedia's viewer and in circuit-tracer's local server unmodified (`to_neuronpedia`), and a
graph they wrote reads back (`from_neuronpedia`). A link's ``weight`` is the direct effect of its
source on its target: the source's activation times its decoder row dotted with the gradient of
the target's pre-activation (a logit's: its demeaned unembedding column) through the replacement
model with attention patterns and norm scales frozen.

`AttributionGraphResult` adds what the JSON schema has no room for: the intervention check of the
top features in the real model (`FeatureCheck`, `EdgeCheck`), the replacement and completeness
scores, the options and provenance. A graph without the check says so (``checked`` is False).
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from interplab.configs import Config, ConfigError, budget
from interplab.errors import UserError
from interplab.provenance import Provenance, write_text
from interplab.results.base import Result
from interplab.stats import Summary, summarize

FEATURE = "cross layer transcoder"
ERROR = "mlp reconstruction error"
EMBEDDING = "embedding"
LOGIT = "logit"
NodeKind = Literal["cross layer transcoder", "mlp reconstruction error", "embedding", "logit"]
CheckStatus = Literal["passed", "failed", "unchecked"]


class GraphFileError(UserError):
    """A graph JSON file that is not in the circuit-tracer / Neuronpedia schema."""


@dataclass(frozen=True)
class GraphConfig(Config):
    """Options of an attribution graph (circuit-tracer's defaults where it has them).

    ``max_n_logits``/``desired_logit_prob``: the output logits attributed are the most probable
    ones until their probabilities add up to ``desired_logit_prob``, at most ``max_n_logits``.
    ``node_threshold``/``edge_threshold``: pruning keeps the nodes (edges) that carry this
    fraction of the cumulative influence on the logits. ``batch_size`` targets share a backward
    pass, fewer if ``memory_budget_mb`` (MiB, or ``"auto"``: a share of the device's free
    memory) would be exceeded. ``check_features`` top features are
    ablated in the real model (0: no check, and the graph says it is unchecked); a check passes
    when the measured change has the predicted sign and lies within ``check_factor`` times the
    prediction either way.
    """

    max_n_logits: int = 10
    desired_logit_prob: float = 0.95
    node_threshold: float = 0.8
    edge_threshold: float = 0.98
    batch_size: int = 128
    memory_budget_mb: float | Literal["auto"] = 2048.0
    skip_first: int = 1
    check_features: int = 10
    check_factor: float = 2.0
    check_mode: Literal["ablate", "steer"] = "ablate"

    def check(self) -> None:
        if not isinstance(self.max_n_logits, int) or self.max_n_logits < 1:
            raise ConfigError(f"max_n_logits must be a positive int, got {self.max_n_logits!r}")
        for name in ("desired_logit_prob", "node_threshold", "edge_threshold"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"{name} must be between 0 and 1, got {value!r}")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {self.batch_size}")
        budget("memory_budget_mb", self.memory_budget_mb)
        if self.skip_first < 0:
            raise ConfigError(f"skip_first must be 0 or more, got {self.skip_first}")
        if self.check_features < 0:
            raise ConfigError(f"check_features must be 0 or more, got {self.check_features}")
        if not self.check_factor > 1.0:
            raise ConfigError(f"check_factor must exceed 1, got {self.check_factor}")


@dataclass(frozen=True)
class GraphNode:
    """One node, with circuit-tracer's fields (``label`` is its ``clerp``)."""

    node_id: str
    kind: NodeKind
    layer: str  # "0".."L-1", "E" for embeddings, str(L + 1) for logits (circuit-tracer's)
    position: int
    feature: int  # feature index; token id for embeddings and logits; -1 for errors
    influence: float | None = None
    activation: float | None = None
    token_prob: float = 0.0
    is_target_logit: bool = False
    label: str = ""
    check: CheckStatus = "unchecked"

    @property
    def layer_index(self) -> int:
        """Returns the node's depth: -1 for embeddings, the layer, or n_layers + 1 for logits."""
        return -1 if self.layer == "E" else int(self.layer)

    def to_neuronpedia(self) -> dict[str, Any]:
        """Returns the node as circuit-tracer's ``Node`` fields."""
        layer = self.layer_index
        if self.kind == FEATURE:
            js, feature = f"{layer}_{self.feature}-0", _cantor(layer, self.feature)
        elif self.kind == ERROR:
            js, feature = f"{layer}_{self.position}-0", -1
        elif self.kind == EMBEDDING:
            js, feature = f"E_{self.feature}-{self.position}", self.position
        else:
            js, feature = f"L_{self.feature}-{self.position}", self.feature
        return {
            "node_id": self.node_id,
            "feature": feature,
            "layer": self.layer,
            "ctx_idx": self.position,
            "feature_type": self.kind,
            "token_prob": self.token_prob,
            "is_target_logit": self.is_target_logit,
            "run_idx": 0,
            "reverse_ctx_idx": 0,
            "jsNodeId": js,
            "clerp": self.label,
            "influence": self.influence,
            "activation": self.activation,
        }


@dataclass(frozen=True)
class GraphEdge:
    """A link: the direct effect of ``source`` on ``target`` (node ids)."""

    source: str
    target: str
    weight: float
    check: CheckStatus = "unchecked"


@dataclass(frozen=True)
class FeatureCheck:
    """One feature ablated (or steered) in the real model: predicted (through the pruned graph,
    linearly) and measured change of the target logit (demeaned, as the logit node is)."""

    node_id: str
    layer: int
    position: int
    feature: int
    activation: float
    predicted: float
    measured: float
    passed: bool


@dataclass(frozen=True)
class EdgeCheck:
    """One edge from a checked feature to a feature: predicted and measured change of the
    target feature's activation when the source is ablated (or steered)."""

    source: str
    target: str
    predicted: float
    measured: float
    passed: bool


@dataclass(frozen=True)
class AttributionGraphResult(Result):
    """A pruned attribution graph of one prompt, its scores, and its intervention check."""

    technique = "attribution_graph"

    prompt: str
    tokens: list[str]
    token_ids: list[int]
    slug: str
    scan: str
    n_layers: int
    nodes: list[GraphNode]
    edges: list[GraphEdge]
    replacement_score: float
    completeness_score: float
    n_active_features: int
    n_nodes_unpruned: int
    target_token: str
    checked: bool
    feature_checks: list[FeatureCheck] = field(default_factory=list)
    edge_checks: list[EdgeCheck] = field(default_factory=list)
    config: GraphConfig = field(default_factory=GraphConfig)
    transcoder_list: list[str] = field(default_factory=list)
    provenance: Provenance | None = None

    def summary(self) -> Summary:
        """Returns the measured minus predicted change of the target logit over the checked
        features (mean with a bootstrap CI); needs a checked graph with 2+ features."""
        if len(self.feature_checks) < 2:
            raise UserError(
                "this graph has fewer than 2 checked features, so there is no summary over "
                "features; run the intervention check (check_features >= 2)"
            )
        measured = np.array([c.measured for c in self.feature_checks])
        predicted = np.array([c.predicted for c in self.feature_checks])
        return summarize(measured, baseline=predicted, n_resamples=2000)

    def node(self, node_id: str) -> GraphNode:
        for n in self.nodes:
            if n.node_id == node_id:
                return n
        raise KeyError(f"no node {node_id!r} in this graph")

    def describe(self) -> str:
        """Returns a few lines: size, scores, and the check."""
        kinds = {
            k: sum(n.kind == k for n in self.nodes) for k in (FEATURE, ERROR, EMBEDDING, LOGIT)
        }
        lines = [
            f"attribution graph of {self.prompt!r} ({self.scan}): {len(self.nodes)} nodes "
            f"({kinds[FEATURE]} features, {kinds[ERROR]} error, {kinds[EMBEDDING]} tokens, "
            f"{kinds[LOGIT]} logits) and {len(self.edges)} edges kept of "
            f"{self.n_nodes_unpruned} nodes ({self.n_active_features} active features)",
            f"replacement score {self.replacement_score:.3f}, completeness score "
            f"{self.completeness_score:.3f}; target {self.target_token!r}",
        ]
        if not self.checked:
            lines.append("UNCHECKED: no intervention check was run; this graph is not a finding")
        else:
            passed = sum(c.passed for c in self.feature_checks)
            lines.append(
                f"intervention check ({self.config.check_mode}): {passed}/{len(self.feature_checks)} "
                f"features and {sum(c.passed for c in self.edge_checks)}/{len(self.edge_checks)} "
                f"edges agree with the graph within a factor {self.config.check_factor:g}"
            )
            if len(self.feature_checks) >= 2:
                m = np.array([c.measured for c in self.feature_checks])
                p = np.array([c.predicted for c in self.feature_checks])
                r = float(np.corrcoef(m, p)[0, 1]) if m.std() > 0 and p.std() > 0 else math.nan
                s = self.summary()
                lines.append(
                    f"measured - predicted target-logit change: mean {float(s.mean):+.3f} "
                    f"[{float(s.ci_low):+.3f}, {float(s.ci_high):+.3f}] (n={s.n}); r = {r:.3f}"
                )
        return "\n".join(lines)

    # -- the circuit-tracer / Neuronpedia JSON ------------------------------------------------

    def to_neuronpedia(self) -> dict[str, Any]:
        """Returns the graph in circuit-tracer's ``create_graph_files`` schema (metadata, qParams,
        nodes, links), as Neuronpedia and circuit-tracer's local server read it."""
        return {
            "metadata": {
                "slug": self.slug,
                "scan": self.scan,
                "transcoder_list": list(self.transcoder_list),
                "prompt_tokens": list(self.tokens),
                "prompt": self.prompt,
                "node_threshold": self.config.node_threshold,
                "schema_version": 1,
            },
            "qParams": {
                "pinnedIds": [],
                "supernodes": [],
                "linkType": "both",
                "clickedId": "",
                "sg_pos": "",
            },
            "nodes": [n.to_neuronpedia() for n in self.nodes],
            "links": [
                {"source": e.source, "target": e.target, "weight": e.weight} for e in self.edges
            ],
        }

    def write_neuronpedia(self, path: str | Path) -> Path:
        """Writes the Neuronpedia graph JSON atomically and returns the path."""
        return write_text(path, json.dumps(self.to_neuronpedia(), indent=2, allow_nan=False))


def _cantor(x: int, y: int) -> int:
    return (x + y) * (x + y + 1) // 2 + y


@dataclass(frozen=True)
class NeuronpediaGraph:
    """A graph read from a circuit-tracer / Neuronpedia JSON file."""

    slug: str
    scan: str
    prompt: str
    prompt_tokens: list[str]
    node_threshold: float | None
    transcoder_list: list[str]
    nodes: list[GraphNode]
    edges: list[GraphEdge]
    q_params: dict[str, Any]

    @property
    def n_layers(self) -> int:
        logits = [n.layer_index for n in self.nodes if n.kind == LOGIT]
        if logits:
            return logits[0] - 1
        return 1 + max((n.layer_index for n in self.nodes), default=-1)


def from_neuronpedia(data: dict[str, Any] | str | Path) -> NeuronpediaGraph:
    """Returns the graph in a circuit-tracer / Neuronpedia JSON file (or its parsed dict)."""
    where = "graph JSON"
    if isinstance(data, str | Path):
        where = str(data)
        try:
            data = json.loads(Path(data).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise GraphFileError(f"no graph file at {where}") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise GraphFileError(f"{where} is not JSON: {e}") from None
    if not isinstance(data, dict) or not {"metadata", "nodes", "links"} <= set(data):
        raise GraphFileError(
            f"{where} is not a circuit-tracer / Neuronpedia graph: it needs metadata, nodes and "
            "links (an interplab result file is read with interplab.results.load)"
        )
    meta = data["metadata"]
    try:
        nodes = _unique([_node(n) for n in data["nodes"]])
        edges = [
            GraphEdge(str(e["source"]), str(e["target"]), float(e["weight"])) for e in data["links"]
        ]
        return NeuronpediaGraph(
            slug=str(meta["slug"]),
            scan=str(meta["scan"]),
            prompt=str(meta.get("prompt", "")),
            prompt_tokens=[str(t) for t in meta.get("prompt_tokens", [])],
            node_threshold=meta.get("node_threshold"),
            transcoder_list=[str(t) for t in meta.get("transcoder_list", [])],
            nodes=nodes,
            edges=edges,
            q_params=dict(data.get("qParams", {})),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise GraphFileError(f"{where}: malformed node, link or metadata ({e!r})") from None


def _unique(nodes: list[GraphNode]) -> list[GraphNode]:
    """Returns the nodes with circuit-tracer's colliding ids told apart: its error node
    ``0_{layer}_{pos}`` has the id of the layer-0 feature ``{layer}`` at ``pos``; the error node
    becomes ``0_{layer}_{pos}_error`` (links naming the shared id are read as the feature's)."""
    features = {n.node_id for n in nodes if n.kind == FEATURE}
    return [
        dataclasses.replace(n, node_id=n.node_id + "_error")
        if n.kind == ERROR and n.node_id in features
        else n
        for n in nodes
    ]


def _node(n: dict[str, Any]) -> GraphNode:
    kind = str(n["feature_type"])
    if kind not in (FEATURE, ERROR, EMBEDDING, LOGIT):
        raise ValueError(f"unknown feature_type {kind!r}")
    layer = str(n["layer"])
    pos = int(n["ctx_idx"])
    if kind == FEATURE:  # node_id is "{layer}_{feature}_{pos}"; "feature" is a Cantor pairing
        feature = int(str(n["node_id"]).split("_")[1])
    elif kind == ERROR:
        feature = -1
    elif kind == EMBEDDING:
        feature = int(str(n["node_id"]).split("_")[1])
    else:
        feature = int(n["feature"])
    return GraphNode(
        node_id=str(n["node_id"]),
        kind=kind,  # type: ignore[arg-type]
        layer=layer,
        position=pos,
        feature=feature,
        influence=None if n.get("influence") is None else float(n["influence"]),
        activation=None if n.get("activation") is None else float(n["activation"]),
        token_prob=float(n.get("token_prob", 0.0)),
        is_target_logit=bool(n.get("is_target_logit", False)),
        label=str(n.get("clerp", "")),
    )


__all__ = [
    "EMBEDDING",
    "ERROR",
    "FEATURE",
    "LOGIT",
    "AttributionGraphResult",
    "EdgeCheck",
    "FeatureCheck",
    "GraphConfig",
    "GraphEdge",
    "GraphFileError",
    "GraphNode",
    "NeuronpediaGraph",
    "from_neuronpedia",
]
