"""Pruning by cumulative influence, and the replacement and completeness scores.

The published method (Ameisen et al. 2025, §"Graph pruning"; circuit-tracer's ``prune_graph``
and ``compute_graph_scores``), on an adjacency ``A`` whose rows are targets and columns sources:

1. Normalise: ``Â = |A|`` with each row divided by its sum (a node's inputs share its influence).
2. Influence of every node on the output: ``w @ (Â + Â² + Â³ + ...)``, ``w`` the logit nodes'
   probabilities (the graph is acyclic, so the series ends after at most depth terms).
3. Nodes: sort by influence, keep those up to ``node_threshold`` of the cumulative total (tokens
   and logits always stay); zero the rows and columns of the rest.
4. Edges: on the pruned matrix, edge score ``Â'[t, s] · (influence'(t) + w(t))``; keep the edges
   up to ``edge_threshold`` of the cumulative score.
5. Repeat until stable: drop feature and error nodes without a kept outgoing edge and features
   without a kept incoming edge, and the edges of dropped nodes.

Scores: the *replacement score* is the share of the tokens' and errors' influence that is the
tokens' (1 when every path from input to output runs through features); the *completeness
score* is the influence-weighted share of each node's normalised inputs that is not error.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from interplab.techniques.graphs.replacement import GraphError


def normalise(adjacency: Tensor) -> Tensor:
    """Returns ``|A|`` with every row scaled to sum to one (all-zero rows stay zero)."""
    return _normalise_(adjacency.abs())


def _normalise_(a: Tensor) -> Tensor:
    """Scales the rows of the non-negative ``a`` to sum to one, in place (one n × n copy fewer:
    the adjacency of a long prompt is hundreds of MB)."""
    a /= a.sum(1, keepdim=True).clamp(min=1e-10)
    return a


def influence(normalised: Tensor, weights: Tensor, max_iter: int = 1000) -> Tensor:
    """Returns ``weights @ (Â + Â² + ...)``: every node's total influence on the weighted rows."""
    step = weights @ normalised
    total = step.clone()
    for _ in range(max_iter):
        if not bool(step.any()):
            return total
        step = step @ normalised
        total += step
    raise GraphError(
        f"influence did not converge after {max_iter} steps: the adjacency has a cycle (an "
        "attribution graph is acyclic; was it built by another tool?)"
    )


def threshold_for(scores: Tensor, fraction: float) -> Tensor:
    """Returns the smallest score among the top scores (non-negative) that carry ``fraction`` of
    the total. Only the positive scores are sorted: zeros add nothing to the cumulative total and
    come last, so the answer is the same as sorting all (an n² edge-score matrix would need n²
    int64 sort indices)."""
    flat = scores.flatten()
    positive = flat[flat > 0]
    if len(positive) == 0:
        return flat.new_zeros(())
    ordered = torch.sort(positive, descending=True).values
    cumulative = torch.cumsum(ordered, 0) / ordered.sum()
    index = int(torch.searchsorted(cumulative, torch.tensor(fraction, dtype=cumulative.dtype)))
    if index < len(ordered):
        return ordered[index]
    return flat.new_zeros(()) if len(positive) < len(flat) else ordered[-1]


@dataclass(frozen=True)
class Pruned:
    """Masks over the adjacency's nodes and edges, and each node's cumulative influence score
    (the share of total influence of the nodes at least as influential; circuit-tracer's)."""

    nodes: Tensor  # [n] bool
    edges: Tensor  # [n, n] bool, rows targets
    cumulative: Tensor  # [n]
    influence: Tensor  # [n]


def prune(
    adjacency: Tensor,
    logit_weights: Tensor,
    *,
    n_features: int,
    n_tokens: int,
    n_logits: int,
    node_threshold: float = 0.8,
    edge_threshold: float = 0.98,
) -> Pruned:
    """Returns the pruned graph's masks (steps 1-5 of the module docstring). ``logit_weights``
    ``[n]`` holds the logits' probabilities in their rows and zeros elsewhere."""
    for name, value in (("node_threshold", node_threshold), ("edge_threshold", edge_threshold)):
        if not 0.0 <= value <= 1.0:
            raise GraphError(f"{name} must be between 0 and 1, got {value}")
    fixed = n_tokens + n_logits  # the last rows: tokens, then logits
    node_influence = influence(normalise(adjacency), logit_weights)
    nodes = node_influence >= threshold_for(node_influence, node_threshold)
    nodes[-fixed:] = True

    scores = adjacency.abs()  # becomes the normalised pruned matrix, then the edge scores
    scores[~nodes] = 0
    scores[:, ~nodes] = 0
    _normalise_(scores)
    scores *= (influence(scores, logit_weights) + logit_weights)[:, None]
    edges = scores >= threshold_for(scores, edge_threshold)
    del scores

    while True:
        before = nodes.clone()
        nodes[:-fixed] &= edges[:, :-fixed].any(0)  # feature and error nodes need an output
        nodes[:n_features] &= edges[:n_features].any(1)  # features need an input
        edges[~nodes] = False
        edges[:, ~nodes] = False
        if bool((nodes == before).all()):
            break

    ordered, index = torch.sort(node_influence, descending=True)
    cumulative = torch.zeros_like(node_influence)
    cumulative[index] = torch.cumsum(ordered, 0) / ordered.sum().clamp(min=1e-30)
    return Pruned(nodes, edges, cumulative, node_influence)


def graph_scores(
    adjacency: Tensor, logit_weights: Tensor, *, n_features: int, n_errors: int, n_tokens: int
) -> tuple[float, float]:
    """Returns (replacement score, completeness score) of the unpruned graph."""
    normal = normalise(adjacency)
    node_influence = influence(normal, logit_weights)
    errors = slice(n_features, n_features + n_errors)
    tokens = slice(n_features + n_errors, n_features + n_errors + n_tokens)
    token_influence = node_influence[tokens].sum()
    error_influence = node_influence[errors].sum()
    replacement = token_influence / (token_influence + error_influence).clamp(min=1e-30)
    non_error = 1 - normal[:, errors].sum(1)
    weight = node_influence + logit_weights
    completeness = (non_error * weight).sum() / weight.sum().clamp(min=1e-30)
    return float(replacement), float(completeness)


__all__ = ["Pruned", "graph_scores", "influence", "normalise", "prune", "threshold_for"]
