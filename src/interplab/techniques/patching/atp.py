"""AtP*: attribution patching with the QK fix and GradDrop, for every cell of a patching grid.

Algorithm (Kramár, Lieberum, Shah & Nanda 2024, "AtP*: An efficient and scalable method for
localizing LLM behaviour to components"; plain AtP: Nanda 2023, `attribution.py`):

1. Run the source prompts (clean when denoising) once without gradients, capturing every grid
   site, and the queries and keys of every layer when q/k cells are asked for.
2. Run the base prompts once with ``grad=True``, capturing the same sites plus every layer's
   residual stream, and take the metric per example at the answer position. One backward gives
   the gradient at every captured activation; plain AtP of a cell is ``grad · (source - base)``
   summed over its features and positions (the ``plain`` baseline in the result).
3. The QK fix (attention saturation). A query or key cell changes attention scores, and a
   saturated softmax has a near-zero gradient however large the change, so the linear estimate
   misses it. For those cells the pattern is recomputed exactly and only what comes after the
   softmax is linearised: the estimate is ``dL/dA · (A' - A)``, where ``dL/dA = g_z · v`` (the
   head's output is linear in its pattern). A query cell's row is the softmax with the patched
   query; a key cell changes, in every row that sees it, that one key's score, and each row is the
   softmax with that score changed. Scores are rebuilt from the captured queries and keys, with
   the rotary rotation of each position read off the base run's key cache and checked against
   HF's own attention pattern (a model where the check fails raises and names ``qk_fix=False``).
4. GradDrop (cancellation). A cell's direct and indirect effects can cancel in the gradient.
   For every layer l the backward is repeated with layer l's attention and MLP contributions to
   the residual stream removed (the residual path kept): seeded at layer l's output with its
   gradient and run down to layer 0. The cell's score is the mean of |estimate| over the dropped
   layers: the L - 1 other layers for a cell inside a layer (dropping its own layer zeroes it),
   all L for a residual cell. Scores are magnitudes, for ranking; ``effects`` keeps the signed
   estimate (with the QK fix).

Costs: one forward of each side and one backward; the QK fix adds a forward of up to four
prompts (the rotary check) and O(layers · heads · pos³) arithmetic; GradDrop adds one partial
backward per layer, about L/2 full backwards in all. Requires partial-forward support
(`Model.partial_support`) for the QK fix; without q/k cells any model runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from interplab.configs import Config, ConfigError
from interplab.core.cache import Cache
from interplab.core.model import Model
from interplab.progress import progress_bar
from interplab.results.patching import Direction, PatchingError, Per
from interplab.results.patching_verified import (
    ATP_COMPONENTS,
    QK_COMPONENTS,
    AtPComponent,
    AtPResult,
)
from interplab.sites import Site
from interplab.store import recorded
from interplab.techniques.metrics import Metric, MetricName, Targets
from interplab.techniques.patching.grid import PairsLike, TokenPairs, prepare

QK_CHECK_TOLERANCE = 1e-4
"""The rebuilt attention pattern must equal HF's within this (max abs) for the QK fix to run, or
within 4 epsilons of the model's dtype if that is more: in bfloat16 or float16 HF's scores come
from rounded queries and keys and its pattern is rounded (about 0.6 eps apart on the tiny Llama)."""

_RESID = ("resid_pre", "resid_mid", "resid_post")


@dataclass(frozen=True)
class AtPConfig(Config):
    """AtP*: which grids, which way, the metric, and which of the two fixes run."""

    components: tuple[AtPComponent, ...] = ("resid_pre",)
    direction: Direction = "denoise"
    per: Per = "position"
    metric: MetricName = "logit_diff"
    qk_fix: bool = True
    graddrop: bool = False  # opt-in: about L/2 extra backwards (see the module docstring)
    control: bool = True
    seed: int = 0

    def check(self) -> None:
        comps = self.components
        if isinstance(comps, str) or not isinstance(comps, tuple) or not comps:
            raise ConfigError(f"components must be a non-empty tuple, got {comps!r}")
        for c in comps:
            if c not in ATP_COMPONENTS:
                raise ConfigError(
                    f"AtP* cannot estimate {c!r}; components: {', '.join(ATP_COMPONENTS)}"
                )
        if len(set(comps)) != len(comps):
            raise ConfigError(f"components repeat: {comps}")


@dataclass(frozen=True)
class Estimates:
    """What `estimate` returns: per-example grids ``[n, layer, (head|kv_head|neuron), (pos)]``."""

    effects: dict[str, Tensor]  # signed AtP* (QK fix where it applies)
    plain: dict[str, Tensor]  # plain AtP
    scores: dict[str, Tensor]  # GradDrop magnitudes (|effects| without GradDrop)
    clean: Tensor  # [n] metrics
    corrupt: Tensor
    source_logits: Tensor  # [n, vocab] at the answer, from the source run (no gradients)
    source_values: dict[Site, Tensor]  # the grid sites of the source run


@recorded("atp_star", inputs="pairs")
def atp_star(
    model: Model,
    pairs: PairsLike,
    *,
    components: Sequence[str] | str = ("resid_pre",),
    direction: Direction = "denoise",
    per: Per = "position",
    metric: MetricName | Metric = "logit_diff",
    qk_fix: bool = True,
    graddrop: bool = False,
    control: bool = True,
    seed: int = 0,
    progress: bool = True,
    config: AtPConfig | None = None,
) -> AtPResult:
    """Returns AtP* estimates of every cell of each component grid: the signed estimate with the
    QK fix, the ranking score (GradDrop's with ``graddrop=True``, else |estimate|), and plain
    attribution patching beside them. Components
    are those of activation patching plus ``attn.q``/``attn.k``/``attn.v`` (per head) and
    ``mlp.post`` (per neuron). With ``control`` (the default) the same estimate runs on unrelated
    control prompts (``result.control``). ``config`` replaces the option keywords."""
    cfg = config or AtPConfig(
        components=(components,) if isinstance(components, str) else tuple(components),  # type: ignore[arg-type]
        direction=direction,
        per=per,
        metric=metric.name if isinstance(metric, Metric) else metric,
        qk_fix=qk_fix,
        graddrop=graddrop,
        control=control,
        seed=seed,
    )
    inputs = prepare(model, pairs, cfg.per)
    est = estimate(
        model, inputs.pairs, cfg.components, cfg.per, Metric(cfg.metric), cfg.direction,
        qk_fix=cfg.qk_fix, graddrop=cfg.graddrop, progress=progress,
    )  # fmt: skip
    control_result = None
    if cfg.control:
        from interplab.techniques.patching.controls import run_control

        control_result = run_control(atp_star, model, inputs.pairs, cfg, progress=progress)

    def numpy(d: dict[str, Tensor]) -> dict:
        return {c: t.double().cpu().numpy() for c, t in d.items()}

    return AtPResult(
        components=tuple(cfg.components),
        direction=cfg.direction,
        per=cfg.per,
        metric=cfg.metric,
        effects=numpy(est.effects),
        clean=est.clean.double().cpu().numpy(),
        corrupt=est.corrupt.double().cpu().numpy(),
        **inputs.recorded("atp_star", model, cfg.to_dict(), cfg.seed),
        control=control_result,
        scores=numpy(est.scores),
        plain=numpy(est.plain),
        qk_fix=cfg.qk_fix,
        graddrop=cfg.graddrop,
        group_size=model.dims.group_size,
    )


def estimate(
    model: Model,
    tp: TokenPairs,
    comps: Sequence[str],
    per: str,
    metric: Metric,
    direction: str,
    *,
    qk_fix: bool = True,
    graddrop: bool = True,
    progress: bool = False,
) -> Estimates:
    """Returns the AtP* estimates of every cell (steps 1-4 of the module docstring)."""
    d = model.dims
    L = d.n_layers
    n = tp.n
    rows = torch.arange(n)
    answer_pos = tp.lengths - 1
    denoise = direction == "denoise"
    base_side, source_side = ("corrupt", "clean") if denoise else ("clean", "corrupt")
    use_qk = qk_fix and any(c in QK_COMPONENTS for c in comps)
    if use_qk:
        reason = model.partial_support(tp.tokens(model))
        if reason is not None:
            raise PatchingError(
                f"the QK fix rebuilds attention scores through partial forwards, which cannot "
                f"run here: {reason}; pass qk_fix=False for plain estimates of q/k cells"
            )
    grid_sites = [Site(layer, c) for c in comps for layer in range(L)]  # type: ignore[arg-type]
    backbone = [Site(layer, "resid_pre") for layer in range(L)] + [Site(L - 1, "resid_post")]
    attn_sites = (
        [Site(layer, c) for layer in range(L) for c in ("attn.q", "attn.k", "attn.v", "attn.z")]
        if use_qk
        else []
    )
    base_sites = list(dict.fromkeys([*grid_sites, *backbone, *attn_sites]))
    source_sites = list(
        dict.fromkeys(
            [*grid_sites, *(s for s in attn_sites if s.component in ("attn.q", "attn.k"))]
        )
    )
    with torch.no_grad():
        source = model.run(tp.tokens(model, source_side), capture=source_sites)
    base = model.run(tp.tokens(model, base_side), capture=base_sites, grad=True)
    base_logits = base.logits[rows, answer_pos].detach()
    source_logits = source.logits[rows, answer_pos]
    clean_logits = source_logits if denoise else base_logits
    corrupt_logits = base_logits if denoise else source_logits
    targets = Targets(tp.answer, tp.wrong, torch.log_softmax(clean_logits.float(), -1))
    value = metric(base.logits[rows, answer_pos], targets).sum()
    acts = {s: base.cache[s] for s in base_sites}
    grads = _grad(value, acts, list(acts), retain=graddrop)
    with torch.no_grad():
        ctx = _Context(model, tp, comps, per, acts, source.cache, grads)
        if use_qk:
            ctx.qk = _qk_deltas(model, tp, base_side, acts, source.cache, comps, per)
        plain = {
            c: _stack([ctx.cells(c, layer, grads, qk=False) for layer in range(L)]) for c in comps
        }
        effects = (
            {c: _stack([ctx.cells(c, layer, grads) for layer in range(L)]) for c in comps}
            if use_qk
            else plain
        )
    scores = (
        _graddrop(ctx, effects, progress) if graddrop else {c: e.abs() for c, e in effects.items()}
    )
    return Estimates(
        effects=effects,
        plain=plain,
        scores=scores,
        clean=metric(clean_logits, targets).detach(),
        corrupt=metric(corrupt_logits, targets).detach(),
        source_logits=source_logits,
        source_values={s: source.cache[s] for s in grid_sites},  # type: ignore[index]
    )


# -- cells from gradients ------------------------------------------------------------------------


def _grad(
    out: Tensor,
    acts: dict[Site, Tensor],
    wanted: list[Site],
    *,
    retain: bool,
    seed: Tensor | None = None,
) -> dict[Site, Tensor]:
    """Returns d out / d act for each wanted site (zeros where the graph does not reach it)."""
    if not wanted:
        return {}
    got = torch.autograd.grad(
        out, [acts[s] for s in wanted], grad_outputs=seed, retain_graph=retain, allow_unused=True
    )
    return {
        s: (torch.zeros_like(acts[s]) if g is None else g.detach())
        for s, g in zip(wanted, got, strict=True)
    }


def _post(layer: int, n_layers: int) -> Site:
    """Returns the captured site that holds layer ``layer``'s output (the next layer's input)."""
    return Site(layer + 1, "resid_pre") if layer + 1 < n_layers else Site(layer, "resid_post")


class _Context:
    """The captured activations, their differences and the QK-fix pattern changes."""

    def __init__(
        self,
        model: Model,
        tp: TokenPairs,
        comps: Sequence[str],
        per: str,
        acts: dict[Site, Tensor],
        source: Cache,
        grads: dict[Site, Tensor],
    ) -> None:
        self.dims = model.dims
        self.comps = tuple(comps)
        self.per = per
        self.acts = acts
        self.mask = tp.mask
        self.group = model.dims.group_size
        self.delta = {
            s: source[s] - acts[s].detach()  # type: ignore[index]
            for s in acts
            if s.component in comps
        }
        self.grads = grads  # the plain (undropped) gradients
        self.qk: dict[int, dict[str, Tensor]] = {}

    def cells(self, comp: str, layer: int, grads: dict[Site, Tensor], *, qk: bool = True) -> Tensor:
        """Returns one layer's cells ``[n, (head|kv_head|neuron), (pos)]`` from ``grads``."""
        site = Site(layer, comp)  # type: ignore[arg-type]
        if qk and comp in QK_COMPONENTS and layer in self.qk:
            return self._qk_cells(comp, layer, grads)
        prod = grads[site] * self.delta[site]
        if self.mask is not None:
            prod = prod * self.mask.view(self.mask.shape + (1,) * (prod.ndim - 2)).to(prod)
        if comp == "mlp.post":
            cell = prod.transpose(1, 2)  # [n, neuron, pos]
        elif prod.ndim == 4:
            cell = prod.sum(-1).transpose(1, 2)  # [n, head, pos]
        else:
            cell = prod.sum(-1)  # [n, pos]
        return cell if self.per == "position" else cell.sum(-1)

    def _qk_cells(self, comp: str, layer: int, grads: dict[Site, Tensor]) -> Tensor:
        g_z = grads[Site(layer, "attn.z")]  # [n, T, H, dh]
        v = self.acts[Site(layer, "attn.v")].detach().repeat_interleave(self.group, dim=2)
        # dL/dA in float32, as the pattern changes are (einsum needs one dtype).
        g_a = torch.einsum("nthd,nshd->nhts", g_z.float(), v.float())
        d_a = self.qk[layer][comp]
        if comp == "attn.q" or self.per != "position":
            # q: rows are independent, [n, H, T, S] -> per query position; k (all positions): one
            # pattern for the whole change.
            est = (g_a * d_a).sum(-1)  # [n, H, T]
        else:
            est = torch.einsum("nhts,nhuts->nhu", g_a, d_a)  # [n, H, key position]
        if comp == "attn.k":
            n, heads, t = est.shape
            est = est.view(n, heads // self.group, self.group, t).sum(2)  # per kv head
        return est if self.per == "position" else est.sum(-1)


def _stack(layers: list[Tensor]) -> Tensor:
    return torch.stack(layers, 1)


# -- the QK fix ----------------------------------------------------------------------------------


def _qk_deltas(
    model: Model,
    tp: TokenPairs,
    base_side: str,
    acts: dict[Site, Tensor],
    source: Cache,
    comps: Sequence[str],
    per: str,
) -> dict[int, dict[str, Tensor]]:
    """Returns per layer the exact pattern changes ``A' - A`` of the query cells ``[n, H, T, S]``
    and of the key cells (``[n, H, key, T, S]`` per key position; ``[n, H, T, S]`` for all)."""
    d = model.dims
    ids = tp.clean if base_side == "clean" else tp.corrupt
    cos, sin = _rotary(model, ids)
    scale = d.d_head**-0.5
    out: dict[int, dict[str, Tensor]] = {}
    for layer in range(d.n_layers):
        q = _rotate(acts[Site(layer, "attn.q")].detach().double(), cos, sin)
        k = _rotate(acts[Site(layer, "attn.k")].detach().double(), cos, sin)
        q_src = _rotate(source[Site(layer, "attn.q")].double(), cos, sin)  # type: ignore[index]
        k_src = _rotate(source[Site(layer, "attn.k")].double(), cos, sin)  # type: ignore[index]
        k, k_src = (x.repeat_interleave(d.group_size, dim=2) for x in (k, k_src))
        scores = _scores(q, k, scale)
        a = scores.softmax(-1)
        deltas: dict[str, Tensor] = {}
        if "attn.q" in comps:
            deltas["attn.q"] = (_scores(q_src, k, scale).softmax(-1) - a).float()
        if "attn.k" in comps:
            if per == "position":
                deltas["attn.k"] = _one_key_changes(scores, a, _scores(q, k_src, scale)).float()
            else:
                deltas["attn.k"] = (_scores(q, k_src, scale).softmax(-1) - a).float()
        out[layer] = deltas
    return out


def _scores(q: Tensor, k: Tensor, scale: float) -> Tensor:
    """Returns causal attention scores ``[n, H, T, S]`` of rotated queries and keys."""
    s = torch.einsum("nthd,nshd->nhts", q, k) * scale
    t = s.shape[-1]
    causal = torch.ones(t, t, dtype=torch.bool, device=s.device).triu(1)
    return s.masked_fill(causal, float("-inf"))


def _one_key_changes(scores: Tensor, a: Tensor, new: Tensor) -> Tensor:
    """Returns ``A' - A`` ``[n, H, key, T, S]``: for each key position u, every row's softmax with
    only column u's score replaced by its score in ``new`` (computed in logs, so a saturated row
    keeps its precision)."""
    t = scores.shape[-1]
    eye = torch.eye(t, dtype=torch.bool, device=scores.device)
    # logsumexp of each row without column u: [n, H, u, T]
    others = scores[:, :, None].masked_fill(eye[None, None, :, None, :], float("-inf"))
    lse_others = torch.logsumexp(others, -1)
    col = new.transpose(-1, -2)[..., None]  # [n, H, u, T, 1]: row t's new score for key u
    lse_new = torch.logaddexp(lse_others[..., None], col)  # [n, H, u, T, 1]
    base = scores[:, :, None]  # [n, H, 1, T, S]
    changed = torch.where(eye[None, None, :, None, :], col, base)
    a_new = torch.exp(changed - lse_new)
    diff = a_new - a[:, :, None]
    # Rows before u never see key u.
    before = torch.arange(t)[None, :] < torch.arange(t)[:, None]  # [u, T]: T < u
    return torch.nan_to_num(diff.masked_fill(before[None, None, :, :, None], 0.0))


def _rotary(model: Model, ids: Tensor) -> tuple[Tensor, Tensor]:
    """Returns each position's rotary ``cos`` and ``sin`` ``[T, d_head / 2]``, read off a base
    run of up to four prompts (pre-rotary keys against the key cache), after checking that
    scores rebuilt with them give HF's own attention pattern at every layer."""
    d = model.dims
    rows = ids[: min(4, ids.shape[0])]
    sites = [
        Site(layer, c) for layer in range(d.n_layers) for c in ("attn.q", "attn.k", "attn.pattern")
    ]
    run = model.base_run(model.tokens(rows), capture=sites)
    k = run.cache[Site(0, "attn.k")].double()  # [r, T, KV, dh]
    k_rot = run.keys[0].transpose(1, 2).double()
    half = d.d_head // 2
    a, b = k[..., :half], k[..., half:]
    a2, b2 = k_rot[..., :half], k_rot[..., half:]
    norm = (a * a + b * b).sum((0, 2)).clamp_min(1e-30)
    cos = (a * a2 + b * b2).sum((0, 2)) / norm
    sin = (a * b2 - b * a2).sum((0, 2)) / norm
    worst = 0.0
    for layer in range(d.n_layers):
        q = _rotate(run.cache[Site(layer, "attn.q")].double(), cos, sin)
        kk = _rotate(run.cache[Site(layer, "attn.k")].double(), cos, sin)
        kk = kk.repeat_interleave(d.group_size, dim=2)
        rebuilt = _scores(q, kk, d.d_head**-0.5).softmax(-1)
        hf = run.cache[Site(layer, "attn.pattern")].double()
        worst = max(worst, float((rebuilt - hf).abs().max()))
    tolerance = max(QK_CHECK_TOLERANCE, 4 * torch.finfo(model.dtype).eps)
    if not worst <= tolerance:
        raise PatchingError(
            f"the QK fix rebuilds attention patterns from queries and keys, and on this model the "
            f"rebuilt pattern differs from HF's by {worst:.2g} (more than {tolerance:g}): "
            "its attention is not rotary softmax(q·k/sqrt(d_head)); pass qk_fix=False"
        )
    return cos, sin


def _rotate(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Applies the rotation (``[T, d_head/2]`` angles, halves convention) to ``[n, T, H, dh]``."""
    half = x.shape[-1] // 2
    a, b = x[..., :half], x[..., half:]
    c, s = cos[None, :, None], sin[None, :, None]
    return torch.cat([a * c - b * s, b * c + a * s], -1)


# -- GradDrop ------------------------------------------------------------------------------------


def _graddrop(ctx: _Context, effects: dict[str, Tensor], progress: bool) -> dict[str, Tensor]:
    """Returns per cell the mean over dropped layers of |estimate| (step 4)."""
    L = ctx.dims.n_layers
    acts = ctx.acts
    total = {c: torch.zeros_like(e) for c, e in effects.items()}
    with progress_bar(L, "AtP* GradDrop", progress) as advance:
        for drop in range(L):
            seed = ctx.grads[_post(drop, L)]
            below = [s for s in acts if s.layer is not None and s.layer < drop]
            grads = (
                _grad(acts[Site(drop, "resid_pre")], acts, below, retain=True, seed=seed)
                if drop
                else {}
            )
            # Layer `drop`: the residual stream passes straight through; its components are dropped.
            grads[Site(drop, "resid_pre")] = seed
            with torch.no_grad():
                for c in ctx.comps:
                    for layer in range(L):
                        if layer > drop or (layer == drop and c == "resid_post"):
                            cell = effects[c][:, layer]
                        elif layer == drop:
                            if c not in ("resid_pre", "resid_mid"):
                                continue  # dropped with its layer: not counted
                            cell = _seed_cell(ctx, c, layer, seed, grads)
                        else:
                            cell = ctx.cells(c, layer, grads)
                        total[c][:, layer] += cell.abs()
            advance(1)
    out = {}
    for c, t in total.items():
        out[c] = t / (L if c in _RESID or L == 1 else L - 1)
        if L == 1 and c not in _RESID:
            out[c] = effects[c].abs()
    return out


def _seed_cell(
    ctx: _Context, comp: str, layer: int, seed: Tensor, grads: dict[Site, Tensor]
) -> Tensor:
    """Returns a residual cell of the dropped layer itself: its gradient is the layer output's."""
    return ctx.cells(comp, layer, {Site(layer, comp): seed})  # type: ignore[arg-type]


__all__ = ["QK_CHECK_TOLERANCE", "AtPConfig", "Estimates", "atp_star", "estimate"]
