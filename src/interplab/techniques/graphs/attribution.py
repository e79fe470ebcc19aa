"""Direct effects between every pair of nodes of the replacement model, in batched backward passes.

Ameisen et al. 2025 ("Circuit Tracing", §"Attribution graphs"); circuit-tracer's ``attribute``:

1. Prepare the replacement (`replacement.prepare`): active features, error nodes, token vectors.
2. Targets: every active feature (its pre-activation reads the MLP input with its encoder
   column) and the output logits that cover ``desired_logit_prob`` of the next-token
   probability (at most ``max_n_logits``), each read at the final norm's output along its
   *demeaned* unembedding column ``W_U[:, t] - mean_v W_U[:, v]`` (circuit-tracer's logit node).
3. One forward of ``B`` copies of the prompt under `core.linearise.linearised` (attention
   patterns and norm scales frozen, MLPs cut, a skip transcoder's ``W_skip`` path kept), the graph
   retained. Each backward pass takes ``B`` targets, one per copy: the sum of their values has, in
   row ``b``, exactly the gradient of target ``b``.
4. Edge ``source -> target`` = the source's vector dotted with the target's gradient where the
   source writes: a feature's ``activation × decoder row`` and an error node's error vector at
   ``resid_post`` of its layer (where the MLP output is added), a token's embedding at ``embed``.
   Because the frozen model is linear in the residual stream, this is the direct effect.

The adjacency has circuit-tracer's layout: rows and columns ``[features, errors (layer-major),
tokens, logits]``, rows targets and columns sources; error and token rows are zero. ``B`` is
``batch_size``, lowered to fit ``memory_budget_mb`` (an estimate of the retained graph per copy).
A Ctrl-C between batches stops cleanly: hooks are removed and parameter flags restored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from interplab.core.interventions import Apply
from interplab.core.linearise import linearised
from interplab.core.memory import resolve_budget
from interplab.core.model import Model
from interplab.progress import progress_bar
from interplab.sites import Site
from interplab.techniques.graphs.replacement import GraphError, Replacement, TranscoderSet


@dataclass(frozen=True)
class LogitTargets:
    """The attributed output tokens at the last position: ids, probabilities, demeaned vectors."""

    ids: Tensor  # [k]
    probabilities: Tensor  # [k]
    vectors: Tensor  # [k, d_model]


@dataclass(frozen=True)
class Attribution:
    """The full (unpruned) graph of one prompt: the replacement, the targets and the adjacency."""

    replacement: Replacement
    logits: LogitTargets
    adjacency: Tensor  # [n, n] float32 on the CPU, rows targets, columns sources
    batch_size: int

    @property
    def n_features(self) -> int:
        return int(self.replacement.active.shape[0])

    @property
    def n_errors(self) -> int:
        return self.replacement.n_layers * self.replacement.n_pos

    @property
    def n_tokens(self) -> int:
        return self.replacement.n_pos

    @property
    def n_logits(self) -> int:
        return int(self.logits.ids.shape[0])

    @property
    def logit_weights(self) -> Tensor:
        """Returns ``[n]``: the logits' probabilities in their rows, zero elsewhere."""
        w = torch.zeros(self.adjacency.shape[0])
        w[-self.n_logits :] = self.logits.probabilities.cpu()
        return w


def logit_targets(
    model: Model, logits: Tensor, max_n_logits: int = 10, desired_logit_prob: float = 0.95
) -> LogitTargets:
    """Returns the most probable next tokens until ``desired_logit_prob`` of the probability is
    covered (at most ``max_n_logits``), with demeaned unembedding columns (step 2)."""
    probs = torch.softmax(logits.float(), -1)
    top_p, top_ids = torch.topk(probs, min(max_n_logits, probs.shape[0]))
    cutoff = int(torch.searchsorted(torch.cumsum(top_p, 0), torch.tensor(desired_logit_prob))) + 1
    ids = top_ids[:cutoff]
    W_U = model.weights.W_U.detach().float()  # [d_model, vocab]
    vectors = (W_U[:, ids] - W_U.mean(1, keepdim=True)).T
    return LogitTargets(ids, probs[ids], vectors)


def batch_for(
    model: Model, n_pos: int, batch_size: int, memory_budget_mb: float | Literal["auto"]
) -> int:
    """Returns the copies per backward pass: ``batch_size``, or fewer to fit the budget (MiB, or
    ``"auto"``, `interplab.core.memory`; the retained graph keeps ~a dozen residual-sized tensors
    per layer and position, plus the attention weights)."""
    budget_mb = resolve_budget(memory_budget_mb, model.device)
    d = model.dims
    per_copy = 4 * n_pos * d.n_layers * (12 * d.d_model + 2 * d.n_heads * n_pos + 2 * d.d_mlp)
    fits = int(budget_mb * 2**20 // max(per_copy, 1))
    if fits < 1:
        raise GraphError(
            f"one copy of this {n_pos}-token prompt needs ~{per_copy / 2**20:.0f} MB of retained "
            f"graph, more than the budget of {budget_mb:.0f} MB; raise memory_budget_mb"
        )
    return max(1, min(batch_size, fits))


def attribute(
    model: Model,
    transcoders: TranscoderSet,
    replacement: Replacement,
    *,
    max_n_logits: int = 10,
    desired_logit_prob: float = 0.95,
    batch_size: int = 128,
    memory_budget_mb: float | Literal["auto"] = 2048.0,
    progress: bool = True,
) -> Attribution:
    """Returns the full adjacency of the replacement's graph (steps 2-4 of the module docstring)."""
    rep = replacement
    targets = logit_targets(model, rep.logits[-1], max_n_logits, desired_logit_prob)
    n_f, n_layers, n_pos, k = rep.active.shape[0], rep.n_layers, rep.n_pos, targets.ids.shape[0]
    n_sources = n_f + n_layers * n_pos + n_pos
    adjacency = torch.zeros(n_sources + k, n_sources + k)
    # Target rows: features (sorted by layer, so a batch's backward stops early), then logits.
    layers = torch.cat([rep.active[:, 0].cpu(), torch.full((k,), n_layers)])
    positions = torch.cat([rep.active[:, 1].cpu(), torch.full((k,), n_pos - 1)])
    vectors = torch.cat([rep.encoders, targets.vectors.to(rep.encoders.device)])
    rows = torch.cat([torch.arange(n_f), torch.arange(n_sources, n_sources + k)])
    B = min(batch_for(model, n_pos, batch_size, memory_budget_mb), len(rows))
    with (
        _Forward(model, transcoders, rep, B) as fw,
        progress_bar(len(rows), "attribution graph", progress) as advance,
    ):
        for start in range(0, len(rows), B):
            stop = min(start + B, len(rows))
            block = fw.rows(layers[start:stop], positions[start:stop], vectors[start:stop])
            adjacency[rows[start:stop], :n_sources] = block.cpu()
            advance(stop - start)
    return Attribution(rep, targets, adjacency, B)


class _Forward:
    """The retained linearised forward of ``B`` copies (step 3) and its backward passes (step 4)."""

    def __init__(self, model: Model, transcoders: TranscoderSet, rep: Replacement, B: int) -> None:
        self.model, self.transcoders, self.rep, self.B = model, transcoders, rep, B
        self._contexts: list = []

    def __enter__(self) -> _Forward:
        model, rep = self.model, self.rep
        n_layers = rep.n_layers
        self.groups = _groups(rep.active)
        self.in_sites = {layer: Site(layer, "mlp.in") for layer in self.transcoders.layers}
        self.out_sites = [Site(layer, "resid_post") for layer in range(n_layers)]
        sites = [
            Site(None, "embed"),
            *self.in_sites.values(),
            *self.out_sites,
            Site(None, "final_norm"),
        ]
        holder: dict[str, object] = {}
        ivs = [Apply(Site(None, "embed"), _leaf)]
        for layer, d in self.transcoders.by_layer.items():
            if d.W_skip is not None:  # the skip transcoder's linear path carries gradients
                ivs.append(Apply(Site(layer, "mlp_out"), _skip_path(holder, layer, d)))
        ids = rep.tokens.ids.expand(self.B, -1)
        lin = linearised(model)
        lin.__enter__()
        self._contexts.append(lin)
        try:
            cap = model.capture(sites, interventions=ivs, grad=True)
            self.cache = cap.__enter__()
            self._contexts.append(cap)
            holder["cache"] = self.cache
            model.forward_to_final_norm(model.tokens(ids), grad=True)  # no logits needed
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        while self._contexts:
            self._contexts.pop().__exit__(None, None, None)

    def rows(self, layers: Tensor, positions: Tensor, vectors: Tensor) -> Tensor:
        """Returns ``[len(layers), n_sources]``: the edges into each target (one per copy)."""
        rep, cache = self.rep, self.cache
        n = len(layers)
        total: Tensor | None = None
        for layer in layers.unique().tolist():
            idx = (layers == layer).nonzero().flatten()
            site = Site(None, "final_norm") if layer == rep.n_layers else self.in_sites[layer]
            x = cache[site]  # [B, pos, d]
            picked = x[idx.to(x.device), positions[idx].to(x.device)]
            value = (picked.float() * vectors[idx].to(x.device)).sum()
            total = value if total is None else total + value
        assert total is not None
        inputs = [cache[s] for s in self.out_sites] + [cache[Site(None, "embed")]]
        grads = torch.autograd.grad(total, inputs, retain_graph=True, allow_unused=True)
        n_f, n_pos = rep.active.shape[0], rep.n_pos
        out = torch.zeros(n, n_f + rep.n_layers * n_pos + n_pos, device=rep.errors.device)
        for layer, g in enumerate(grads[:-1]):
            if g is None:
                continue
            g = g[:n].float()
            # Features of one (layer, position) are contiguous (`replacement.prepare` sorts them):
            # one matmul each, no [n, features, d_model] gather.
            for pos, a, b in self.groups.get(layer, ()):
                out[:, a:b] = g[:, pos] @ rep.decoders[a:b].T
            start = n_f + layer * n_pos
            out[:, start : start + n_pos] = torch.einsum("npd,pd->np", g, rep.errors[layer])
        if grads[-1] is not None:
            start = n_f + rep.n_layers * n_pos
            out[:, start:] = torch.einsum("npd,pd->np", grads[-1][:n].float(), rep.embeddings)
        return out


def _groups(active: Tensor) -> dict[int, list[tuple[int, int, int]]]:
    """Returns per layer the ``(position, start, stop)`` row ranges of ``active`` (sorted by
    layer, then position)."""
    keys = (
        active[:, 0].cpu() * (int(active[:, 1].max()) + 1 if len(active) else 1)
        + active[:, 1].cpu()
    )
    if len(keys) > 1 and not bool((keys[1:] >= keys[:-1]).all()):
        raise GraphError("active features must be sorted by layer, then position")
    out: dict[int, list[tuple[int, int, int]]] = {}
    _, counts = torch.unique_consecutive(keys, return_counts=True)
    start = 0
    for c in counts.tolist():
        layer, pos = int(active[start, 0]), int(active[start, 1])
        out.setdefault(layer, []).append((pos, start, start + c))
        start += c
    return out


def _leaf(t: Tensor) -> Tensor:
    return t.detach().requires_grad_(True)


def _skip_path(holder: dict[str, object], layer: int, d):
    def fn(out: Tensor) -> Tensor:
        x = holder["cache"][Site(layer, "mlp.in")]  # type: ignore[index]
        s = d.skip_term(x.to(d.W_skip.dtype)).to(out.dtype)
        return out + (s - s.detach())  # value unchanged, gradient through W_skip

    return fn


__all__ = ["Attribution", "LogitTargets", "attribute", "batch_for", "logit_targets"]
