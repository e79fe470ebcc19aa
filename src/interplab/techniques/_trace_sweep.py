"""The sweep of causal tracing: every (component, layer, sample) restoration of one position packed
into the batch dimension, chunked under a memory budget (see `interplab.techniques.tracing`).

On the Llama family a row runs HF's decoder layers only from the first layer it restores, only
on the positions from the restored one onward (reusing the corrupted run's keys and values), and
unembeds only the last position; other families run whole forwards with hooks, still batched.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from interplab.core.interventions import Add, Apply
from interplab.core.model import Model
from interplab.models.adapter import get_module
from interplab.sites import Site
from interplab.techniques._suffix import run_layer, suffix

if TYPE_CHECKING:
    from interplab.techniques.tracing import _Inputs

SITE_OF: dict[str, str] = {"resid": "resid_post", "attn": "attn_out", "mlp": "mlp_out"}


@dataclass(frozen=True)
class _Sweep:
    restored: dict[str, np.ndarray]
    clean: np.ndarray  # [n]
    corrupted: np.ndarray  # [n, samples]
    answer_ids: list[int]


@dataclass(frozen=True)
class _Rows:
    """One row per (component, layer, sample) restored at one position, sorted by ``join``."""

    comp: Tensor  # index into the component tuple
    layer: Tensor
    sample: Tensor
    lo: Tensor  # window of restored layers [lo, hi) (resid: [layer, layer + 1))
    hi: Tensor
    join: Tensor  # the first layer the row runs (suffix path)

    def take(self, sel: Tensor | slice) -> _Rows:
        return _Rows(*(getattr(self, f)[sel] for f in _Rows.__dataclass_fields__))

    def __len__(self) -> int:
        return int(self.comp.shape[0])


@dataclass(frozen=True)
class _Corrupted:
    prob: Tensor  # [samples] p(answer)
    bounds: list[Tensor]  # residual entering layer j, j = 0..L (L: the final residual) [S, T, d]
    keys: list[Tensor]  # [S, kv_heads, T, d_head] per layer
    values: list[Tensor]


def _sweep(
    model: Model,
    inputs: _Inputs,
    comps: tuple[str, ...],
    noises: list[Tensor],
    window: int,
    method: str,
    budget_mb: float,
    progress: bool,
) -> _Sweep:
    from interplab.techniques._progress import progress_bar

    n_layers, n = model.dims.n_layers, len(inputs.ids)
    samples = noises[0].shape[0]
    width = max(len(r) for r in inputs.ids)
    restored = {c: np.full((n, n_layers, width), np.nan) for c in comps}
    clean_p, corrupted_p, answers = np.zeros(n), np.zeros((n, samples)), []
    total = sum(
        samples * len(comps) * n_layers * (len(r) - s)
        for r, (s, _) in zip(inputs.ids, inputs.spans, strict=True)
    )
    with torch.no_grad(), progress_bar(total, "causal tracing", progress) as advance:
        for e, row in enumerate(inputs.ids):
            length, start = len(row), inputs.spans[e][0]
            clean, logits = _clean_run(model, row, comps)
            given = inputs.answer_ids[e]
            answer = int(logits.argmax()) if given is None else given
            answers.append(answer)
            clean_p[e] = float(torch.softmax(logits.float(), -1)[answer])
            noise = noises[e].to(model.device, model.dtype)
            base = _corrupted_run(model, row, noise, answer, keep=method == "suffix")
            corrupted_p[e] = base.prob.double().cpu().numpy()
            for c in comps:
                restored[c][e, :, :length] = corrupted_p[e].mean()  # before the subject: exact
            for i in range(start, length):
                rows = _rows(comps, n_layers, samples, window)
                row_bytes = _row_bytes(model, length - i if method == "suffix" else length, length)
                limit = max(1, int(budget_mb * 2**20 // row_bytes))
                sums = torch.zeros(len(comps), n_layers, dtype=torch.float64)
                for lo in range(0, len(rows), limit):
                    chunk = rows.take(slice(lo, lo + limit))
                    if method == "suffix":
                        p = _suffix_chunk(model, base, clean, comps, chunk, i, answer)
                    else:
                        p = _hook_chunk(model, row, noise, clean, comps, chunk, i, answer)
                    sums.index_put_((chunk.comp, chunk.layer), p.double().cpu(), accumulate=True)
                    advance(len(chunk))  # type: ignore[operator]
                for ci, c in enumerate(comps):
                    restored[c][e, :, i] = (sums[ci] / samples).numpy()
    return _Sweep(restored, clean_p, corrupted_p, answers)


def _clean_run(
    model: Model, row: Tensor, comps: tuple[str, ...]
) -> tuple[dict[str, Tensor], Tensor]:
    """Returns each component's clean activations ``[layer, pos, d_model]`` and the last logits."""
    n_layers = model.dims.n_layers
    sites = [Site(layer, SITE_OF[c]) for c in comps for layer in range(n_layers)]  # type: ignore[arg-type]
    with model.capture(sites) as cache:
        logits = model.hf(input_ids=row[None], use_cache=False).logits[0, -1]
    acts = {
        c: torch.stack([cache[Site(layer, SITE_OF[c])][0] for layer in range(n_layers)])  # type: ignore[arg-type]
        for c in comps
    }
    return acts, logits


def _corrupted_run(
    model: Model, row: Tensor, noise: Tensor, answer: int, *, keep: bool
) -> _Corrupted:
    """Runs the noised prompt once per sample; keeps residuals and keys/values for the suffix."""
    n_layers = model.dims.n_layers
    ids = row[None].expand(noise.shape[0], -1)
    noised = [Add(Site(None, "embed"), noise)]
    resid = [Site(i, "resid_pre") for i in range(n_layers)] + [Site(n_layers - 1, "resid_post")]
    with model.capture(resid if keep else [], interventions=noised) as cache:
        out = model.hf(input_ids=ids, use_cache=keep)
    prob = torch.softmax(out.logits[:, -1].float(), -1)[:, answer]
    if not keep:
        return _Corrupted(prob, [], [], [])
    kv = out.past_key_values
    return _Corrupted(
        prob,
        [cache[s] for s in resid],
        [kv.layers[i].keys for i in range(n_layers)],
        [kv.layers[i].values for i in range(n_layers)],
    )


def _rows(comps: tuple[str, ...], n_layers: int, samples: int, window: int) -> _Rows:
    comp, layer, sample = torch.meshgrid(
        torch.arange(len(comps)), torch.arange(n_layers), torch.arange(samples), indexing="ij"
    )
    comp, layer, sample = comp.flatten(), layer.flatten(), sample.flatten()
    resid = torch.tensor([c == "resid" for c in comps])[comp]
    lo = torch.where(resid, layer, (layer - window // 2).clamp(min=0))
    hi = torch.where(resid, layer + 1, (layer + math.ceil(window / 2)).clamp(max=n_layers))
    join = torch.where(resid, layer + 1, lo)
    order = torch.argsort(join, stable=True)
    return _Rows(comp, layer, sample, lo, hi, join).take(order)


def _row_bytes(model: Model, q: int, length: int) -> int:
    """Returns the bytes one row needs: a layer's activations, copied keys/values, the logits."""
    d = model.dims
    return 4 * (
        q * (8 * d.d_model + 4 * d.d_mlp + 3 * d.n_heads * length)
        + 4 * d.n_kv_heads * length * d.d_head
        + 2 * d.d_vocab
    )


def _restorations(
    comps: tuple[str, ...],
    rows: _Rows,
    layer: int,
    clean: dict[str, Tensor],
    i: int,
    position: int,
    joined: int,
) -> list[Apply]:
    """Returns one Apply per site of ``layer`` that writes the clean value at ``position`` into
    the first ``joined`` rows whose window holds the layer (a resid row's window is its layer;
    on the suffix path it joins above it, so it is never written here)."""
    out = []
    for ci, c in enumerate(comps):
        active = (rows.comp == ci) & (rows.lo <= layer) & (layer < rows.hi)
        idx = active[:joined].nonzero().flatten()
        if len(idx):
            fn = _writer(idx, clean[c][layer, i])
            out.append(Apply(Site(layer, SITE_OF[c]), fn, positions=[position]))  # type: ignore[arg-type]
    return out


def _writer(idx: Tensor, value: Tensor) -> Any:
    def write(t: Tensor) -> Tensor:
        t = t.clone()
        t[idx] = value
        return t

    return write


def _hook_chunk(
    model: Model,
    row: Tensor,
    noise: Tensor,
    clean: dict[str, Tensor],
    comps: tuple[str, ...],
    rows: _Rows,
    i: int,
    answer: int,
) -> Tensor:
    """Returns p(answer) of each row, every row a whole forward with hooks (any family)."""
    ivs: list[Any] = [Add(Site(None, "embed"), noise[rows.sample])]
    for layer in range(model.dims.n_layers):
        ivs += _restorations(comps, rows, layer, clean, i, i, len(rows))
    with model.intervene(ivs):
        out = model.hf(input_ids=row[None].expand(len(rows), -1), use_cache=False)
    return torch.softmax(out.logits[:, -1].float(), -1)[:, answer]


def _suffix_chunk(
    model: Model,
    base: _Corrupted,
    clean: dict[str, Tensor],
    comps: tuple[str, ...],
    rows: _Rows,
    i: int,
    answer: int,
) -> Tensor:
    """Returns p(answer) of each row: HF's decoder layers from the row's first restored layer
    on, over positions i.. only, with the corrupted run's keys and values before i."""
    n_layers = model.dims.n_layers
    length = base.bounds[0].shape[1]
    sx = suffix(model, base.bounds[0], base.keys[0], base.values[0], i)
    resid = comps.index("resid") if "resid" in comps else -1
    hidden = base.bounds[0].new_empty((0, length - i, base.bounds[0].shape[-1]))
    for layer in range(int(rows.join[0]), n_layers + 1):
        joining = (rows.join == layer).nonzero().flatten()
        if len(joining):
            h = base.bounds[layer][rows.sample[joining], i:].clone()
            if resid >= 0 and layer > 0:  # resid rows join above the layer they restore
                h[rows.comp[joining] == resid, 0] = clean["resid"][layer - 1, i]
            hidden = torch.cat([hidden, h])
        if layer == n_layers:
            break
        joined = len(hidden)
        with model.intervene(_restorations(comps, rows, layer, clean, i, 0, joined)):
            hidden = run_layer(
                model, sx, layer, hidden, base.keys, base.values, rows.sample[:joined]
            )
    hf: Any = model.hf
    final = get_module(hf, model.adapter.final_norm)(hidden[:, -1])
    logits = get_module(hf, model.adapter.unembed)(final)
    return torch.softmax(logits.float(), -1)[:, answer]
