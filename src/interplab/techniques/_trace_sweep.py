"""The sweep of causal tracing: every (component, layer, sample) restoration of one position packed
into the batch dimension, chunked under a memory budget (see `interplab.techniques.tracing`).

1. Per prompt, a clean run (`Model.run`) keeps every layer's restored sites and the answer's
   probability; a corrupted run adds the subject noise as an `Add` on ``embed``.
2. Per position i from the subject on, one row per (component, layer, sample), sorted by the
   first layer each row must run (``join``), is chunked under the budget.
3. The ``suffix`` path (models where `Model.supports_partial`): the corrupted run is a
   `Model.base_run`; a row joins at the first layer it restores, with the corrupted residual
   below it, runs `Model.partial` layers on positions i.. only over the corrupted run's keys and
   values before i, and `Model.unembed` reads its last position. The ``hooks`` path runs whole
   forwards (`Model.forward`) with the restorations as interventions, still batched.

4. The pieces run apart too: `prompt_run` (step 1, once per prompt) and `column` (step 2's rows
   of one position) are what `interplab.techniques.trace_cells` runs as tasks and
   `record_prompt`/`record_column` write into the `Sweep`.

This module owns the types it shares with `interplab.techniques.tracing` (`TraceInputs`,
`Sweep`, `PromptRun`); it never imports that module.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import Tensor

from interplab.core.cache import Cache
from interplab.core.interventions import Add, Apply, Intervention
from interplab.core.model import Model
from interplab.core.partial import BaseRun
from interplab.results.tracing import SITE_OF
from interplab.sites import Site
from interplab.techniques._progress import progress_bar

EMBED = Site(None, "embed")


@dataclass(frozen=True)
class TraceInputs:
    """What is traced: token ids per prompt, subject spans, answers (None: the clean top-1)."""

    ids: list[Tensor]  # one [pos] tensor per prompt (no padding)
    spans: list[tuple[int, int]]
    answer_ids: list[int | None]
    tokens: list[list[str]]
    prompts: list[str] | None
    subjects: list[str] | None
    data_sha256: str


@dataclass(frozen=True)
class Sweep:
    """What the sweep measured: restored p(answer) per component, the baselines, the answers."""

    restored: dict[str, np.ndarray]  # component -> [n, layer, pos]
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
class PromptRun:
    """What every cell of one prompt shares: the clean activations and p(answer), the answer, the
    corrupted run's p(answer) per sample, the noise and (suffix path) the corrupted base run."""

    row: Tensor  # [pos]
    start: int  # the first subject token: the first position with cells to run
    clean: dict[str, Tensor]  # component -> [layer, pos, d_model]
    answer: int
    clean_p: float
    corrupted_p: np.ndarray  # [samples], float64
    noise: Tensor  # [samples, pos, d_model]
    base: BaseRun | None

    def to(self, device: torch.device | str) -> PromptRun:
        """Returns this run with its tensors on ``device`` (values unchanged)."""
        base = self.base
        if base is not None:
            base = replace(
                base,
                tokens=replace(base.tokens, ids=base.tokens.ids.to(device),
                               mask=base.tokens.mask.to(device)),
                resid=[t.to(device) for t in base.resid],
                keys=[t.to(device) for t in base.keys],
                values=[t.to(device) for t in base.values],
                logits=base.logits.to(device),
                cache=Cache(),
            )  # fmt: skip
        return replace(
            self,
            row=self.row.to(device),
            clean={c: t.to(device) for c, t in self.clean.items()},
            noise=self.noise.to(device),
            base=base,
        )


def sweep(
    model: Model,
    inputs: TraceInputs,
    comps: tuple[str, ...],
    noises: list[Tensor],
    window: int,
    method: str,
    budget_mb: float,
    progress: bool,
) -> Sweep:
    """Returns p(answer) of every cell, restored in noised runs (see the module docstring)."""
    n_layers, n = model.dims.n_layers, len(inputs.ids)
    samples = noises[0].shape[0]
    width = max(len(r) for r in inputs.ids)
    out = empty_sweep(comps, n, n_layers, width, samples)
    total = sum(
        samples * len(comps) * n_layers * (len(r) - s)
        for r, (s, _) in zip(inputs.ids, inputs.spans, strict=True)
    )
    with torch.no_grad(), progress_bar(total, "causal tracing", progress) as advance:
        for e, row in enumerate(inputs.ids):
            run = prompt_run(
                model, row, inputs.spans[e][0], inputs.answer_ids[e], comps, noises[e], method
            )
            record_prompt(out, e, run)
            for i in range(run.start, len(row)):
                record_column(out, e, i, column(model, run, comps, window, i, budget_mb, advance))
    return out


def empty_sweep(comps: tuple[str, ...], n: int, n_layers: int, width: int, samples: int) -> Sweep:
    """Returns a `Sweep` to fill: restored p(answer) NaN, baselines 0."""
    restored = {c: np.full((n, n_layers, width), np.nan) for c in comps}
    return Sweep(restored, np.zeros(n), np.zeros((n, samples)), [0] * n)


@torch.no_grad()
def prompt_run(
    model: Model,
    row: Tensor,
    start: int,
    given: int | None,
    comps: tuple[str, ...],
    noise: Tensor,
    method: str,
) -> PromptRun:
    """Returns what every cell of one prompt shares: its clean run and its corrupted run (a
    `Model.base_run` on the suffix path), with ``noise`` ``[samples, pos, d_model]`` on ``embed``."""
    samples = noise.shape[0]
    clean, logits = _clean_run(model, row, comps)
    answer = int(logits.argmax()) if given is None else given
    clean_p = float(torch.softmax(logits.float(), -1)[answer])
    noise = noise.to(model.device, model.dtype)
    ids = row[None].expand(samples, -1)
    noised: list[Intervention] = [Add(EMBED, noise)]
    base = model.base_run(ids, interventions=noised) if method == "suffix" else None
    logits_c = base.logits if base is not None else model.run(ids, interventions=noised).logits
    corrupted_p = _prob(logits_c[:, -1], answer).double().cpu().numpy()
    return PromptRun(row, start, clean, answer, clean_p, corrupted_p, noise, base)


def record_prompt(out: Sweep, e: int, run: PromptRun) -> None:
    """Writes prompt ``e``'s baselines and answer into ``out``; cells before the subject are
    exactly the corrupted p(answer) (nothing there differs)."""
    out.answer_ids[e] = run.answer
    out.clean[e] = run.clean_p
    out.corrupted[e] = run.corrupted_p
    for c in out.restored:
        out.restored[c][e, :, : len(run.row)] = out.corrupted[e].mean()


def record_column(out: Sweep, e: int, i: int, col: Tensor) -> None:
    """Writes position ``i`` of prompt ``e`` (``col`` ``[component, layer]``) into ``out``."""
    for ci, c in enumerate(out.restored):
        out.restored[c][e, :, i] = col[ci].numpy()


@torch.no_grad()
def column(
    model: Model,
    run: PromptRun,
    comps: tuple[str, ...],
    window: int,
    i: int,
    budget_mb: float,
    advance: Callable[[int], object] | None = None,
) -> Tensor:
    """Returns restored p(answer) at position ``i`` of one prompt ``[component, layer]``
    (float64, averaged over the samples): its rows chunked under ``budget_mb``."""
    n_layers, samples = model.dims.n_layers, run.noise.shape[0]
    length, base = len(run.row), run.base
    rows = _rows(comps, n_layers, samples, window)
    row_bytes = _row_bytes(model, length - i if base is not None else length, length)
    limit = max(1, int(budget_mb * 2**20 // row_bytes))
    sums = torch.zeros(len(comps), n_layers, dtype=torch.float64)
    for lo in range(0, len(rows), limit):
        chunk = rows.take(slice(lo, lo + limit))
        if base is not None:
            p = _suffix_chunk(model, base, run.clean, comps, chunk, i, run.answer)
        else:
            p = _hook_chunk(model, run.row, run.noise, run.clean, comps, chunk, i, run.answer)
        sums.index_put_((chunk.comp, chunk.layer), p.double().cpu(), accumulate=True)
        if advance is not None:
            advance(len(chunk))
    return sums / samples


def _prob(logits: Tensor, answer: int) -> Tensor:
    return torch.softmax(logits.float(), -1)[:, answer]


def _clean_run(
    model: Model, row: Tensor, comps: tuple[str, ...]
) -> tuple[dict[str, Tensor], Tensor]:
    """Returns each component's clean activations ``[layer, pos, d_model]`` and the last logits."""
    layers = range(model.dims.n_layers)
    run = model.run(row[None], capture=[Site(i, SITE_OF[c]) for c in comps for i in layers])
    acts = {c: torch.stack([run.cache[Site(i, SITE_OF[c])][0] for i in layers]) for c in comps}
    return acts, run.logits[0, -1]


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
) -> list[Intervention]:
    """Returns one Apply per site of ``layer`` that writes the clean value at ``position`` into
    the first ``joined`` rows whose window holds the layer (a resid row's window is its layer;
    on the suffix path it joins above it, so it is never written here)."""
    out: list[Intervention] = []
    for ci, c in enumerate(comps):
        active = (rows.comp == ci) & (rows.lo <= layer) & (layer < rows.hi)
        idx = active[:joined].nonzero().flatten()
        if len(idx):
            fn = _writer(idx, clean[c][layer, i])
            out.append(Apply(Site(layer, SITE_OF[c]), fn, positions=[position]))
    return out


def _writer(idx: Tensor, value: Tensor) -> Callable[[Tensor], Tensor]:
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
    ivs: list[Intervention] = [Add(EMBED, noise[rows.sample])]
    for layer in range(model.dims.n_layers):
        ivs += _restorations(comps, rows, layer, clean, i, i, len(rows))
    with model.intervene(ivs):
        logits = model.forward(row[None].expand(len(rows), -1))
    return _prob(logits[:, -1], answer)


def _suffix_chunk(
    model: Model,
    base: BaseRun,
    clean: dict[str, Tensor],
    comps: tuple[str, ...],
    rows: _Rows,
    i: int,
    answer: int,
) -> Tensor:
    """Returns p(answer) of each row: the model's decoder layers from the row's first restored
    layer on, over positions i.. only, with the corrupted run's keys and values before i."""
    n_layers, length = model.dims.n_layers, base.length
    part = model.partial(i, length, base)
    resid = comps.index("resid") if "resid" in comps else -1
    hidden = base.resid[0].new_empty((0, length - i, base.resid[0].shape[-1]))
    for layer in range(int(rows.join[0]), n_layers + 1):
        joining = (rows.join == layer).nonzero().flatten()
        if len(joining):
            h = base.resid[layer][rows.sample[joining], i:].clone()
            if resid >= 0 and layer > 0:  # resid rows join above the layer they restore
                h[rows.comp[joining] == resid, 0] = clean["resid"][layer - 1, i]
            hidden = torch.cat([hidden, h])
        if layer == n_layers:
            break
        joined = len(hidden)
        with model.intervene(_restorations(comps, rows, layer, clean, i, 0, joined)):
            hidden = part.layer(layer, hidden, rows.sample[:joined])
    return _prob(model.unembed(hidden[:, -1]), answer)


__all__ = [
    "PromptRun",
    "Sweep",
    "TraceInputs",
    "column",
    "empty_sweep",
    "prompt_run",
    "record_column",
    "record_prompt",
    "sweep",
]
