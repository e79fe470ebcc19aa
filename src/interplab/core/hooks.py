"""The hook session: capture and intervene on an unmodified HF model, and always clean up.

1. Resolve every requested site to its hook point (`interplab.core.points`); only those modules
   get hooks, so capturing nothing costs nothing.
2. Group sites by the tensor they read, so each (module, input/output, tuple element) has one
   hook that applies the interventions in the order given, then records the captures: a capture
   sees edited values. Each site keeps its own point, so q, k and v of one fused projection are
   read and written through their own views.
3. An edit clones the tensor at the point once and writes through the site's view, so untouched
   entries keep their exact bits; with no interventions nothing is cloned and the logits are
   bit-identical to plain HF.
4. With ``grad=True`` each captured tensor is substituted into the forward pass (an exact copy),
   so ``torch.autograd.grad(metric, cache[site])`` works for every site, heads and views included.
5. Patching ``resid_mid`` edits the input of the pre-MLP norm and re-adds the block's MLP output
   to the patched value at the block's output, which is the residual addition HF performs.
6. ``__exit__`` removes every hook and restores the attention implementation in a ``finally``,
   whatever the user's code raised.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from interplab.core.cache import Cache
from interplab.core.interventions import Ablate, Add, Intervention, InterventionError, Patch
from interplab.core.points import Point, head_index, resolve
from interplab.models.adapter import Adapter, get_module
from interplab.sites import Dimensions, Site, check_site


@dataclass
class _State:
    offset: int = 0  # tokens already in the KV cache when this forward started
    generating: bool = False
    batch: int = 0
    mid: dict[int, Tensor] = field(default_factory=dict)
    mlp_out: dict[int, Tensor] = field(default_factory=dict)


@dataclass
class _PointOps:
    point: Point  # where the hook goes; each site below keeps its own point for its view
    edits: list[tuple[Site, Point, Intervention]] = field(default_factory=list)
    captures: list[tuple[Site, Point]] = field(default_factory=list)


class HookSession:
    """Registers capture and intervention hooks on enter; removes them all on exit."""

    def __init__(
        self,
        hf: nn.Module,
        adapter: Adapter,
        dims: Dimensions,
        *,
        capture: Sequence[Site] = (),
        interventions: Sequence[Intervention] = (),
        grad: bool = False,
        cache: Cache | None = None,
        generating: bool = False,
    ) -> None:
        self.hf: Any = hf
        self.adapter, self.dims, self.grad = adapter, dims, grad
        self.cache = cache if cache is not None else Cache()
        self.state = _State(generating=generating)
        self._handles: list[RemovableHandle] = []
        self._attn_impl: str | None = None
        self._ops: dict[tuple[int, str, int | None], _PointOps] = {}
        self._mid_layers: list[int] = []
        for iv in interventions:
            site = check_site(iv.site, dims)
            if site.component == "attn.pattern":
                raise InterventionError(
                    f"{site} is read-only: HF computes the attention output before it returns the "
                    "pattern; intervene on attn.q / attn.k (what the pattern is computed from) or "
                    "on attn.z (what it produces)"
                )
            if (
                isinstance(iv, Ablate)
                and iv.method != "zero"
                and not isinstance(iv.reference, Tensor)
            ):
                raise InterventionError(
                    f"{iv.method} ablation of {site} needs reference activations here; pass "
                    "prompts through Model.run, which captures them"
                )
            point = self._point(site)
            self._ops_for(point).edits.append((site, point, iv))
            if site.component == "resid_mid":
                self._mid_layers.append(site.layer)  # type: ignore[arg-type]
        for s in capture:
            site = check_site(s, dims)
            point = self._point(site)
            self._ops_for(point).captures.append((site, point))
        self._needs_eager = any(
            s.component == "attn.pattern" for ops in self._ops.values() for s, _ in ops.captures
        )

    def _point(self, site: Site) -> Point:
        return resolve(site, self.adapter, self.hf, self.dims)

    def _ops_for(self, point: Point) -> _PointOps:
        return self._ops.setdefault(point.key, _PointOps(point))

    # -- lifecycle -------------------------------------------------------------------------

    def __enter__(self) -> Cache:
        try:
            if self._needs_eager:
                self._attn_impl = self.hf.config._attn_implementation
                if self._attn_impl != "eager":
                    self.hf.set_attn_implementation("eager")  # type: ignore[operator]
            self._handles.append(self.hf.register_forward_pre_hook(self._on_root, with_kwargs=True))
            for ops in self._ops.values():
                self._register(ops)
            for layer in sorted(set(self._mid_layers)):
                self._register_mid(layer)
        except BaseException:
            self._cleanup()
            raise
        return self.cache

    def __exit__(self, *exc: object) -> None:
        self._cleanup()

    def _cleanup(self) -> None:
        try:
            for h in self._handles:
                h.remove()
            self._handles.clear()
        finally:
            if self._attn_impl is not None and self._attn_impl != "eager":
                self.hf.set_attn_implementation(self._attn_impl)  # type: ignore[operator]
            self._attn_impl = None

    def _on_root(self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        pkv = kwargs.get("past_key_values")
        self.state.offset = (
            int(pkv.get_seq_length()) if pkv is not None and hasattr(pkv, "get_seq_length") else 0
        )
        ids = kwargs.get("input_ids", args[0] if args else None)
        if ids is None:
            ids = kwargs.get("inputs_embeds")
        self.state.batch = int(ids.shape[0]) if isinstance(ids, Tensor) else 0
        self.state.mid.clear()
        self.state.mlp_out.clear()

    # -- hooks -----------------------------------------------------------------------------

    def _register(self, ops: _PointOps) -> None:
        p = ops.point
        if p.kind == "out":

            def out_hook(module: nn.Module, args: Any, output: Any) -> Any:
                raw = output[p.index] if p.index is not None else output
                new = self._process(ops, raw)
                if new is raw:
                    return None
                if p.index is None:
                    return new
                return (*output[: p.index], new, *output[p.index + 1 :])

            self._handles.append(p.module.register_forward_hook(out_hook))
        else:

            def in_hook(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
                if args:
                    new = self._process(ops, args[0])
                    return None if new is args[0] else ((new, *args[1:]), kwargs)
                key = next(iter(kwargs))  # HF passes hidden_states first when passed by name
                new = self._process(ops, kwargs[key])
                return None if new is kwargs[key] else (args, {**kwargs, key: new})

            self._handles.append(p.module.register_forward_pre_hook(in_hook, with_kwargs=True))

    def _register_mid(self, layer: int) -> None:
        """Makes a resid_mid edit reach the block's output (step 5 of the module docstring)."""
        block = self.adapter.block(self.hf, layer)
        mlp_in = get_module(block, self.adapter.mlp_in)  # type: ignore[arg-type]
        mlp_out = get_module(block, self.adapter.mlp_out)

        def keep_mid(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            self.state.mid[layer] = args[0] if args else next(iter(kwargs.values()))

        def keep_mlp_out(module: nn.Module, args: Any, output: Any) -> None:
            self.state.mlp_out[layer] = output

        def rebuild(module: nn.Module, args: Any, output: Any) -> Any:
            return self.state.mid.pop(layer) + self.state.mlp_out.pop(layer)

        # The keepers run after the point hooks (they see edited, final values); the rebuild runs
        # before any resid_post hook on the block, which must see the rebuilt output.
        self._handles.append(mlp_in.register_forward_pre_hook(keep_mid, with_kwargs=True))
        self._handles.append(mlp_out.register_forward_hook(keep_mlp_out))
        self._handles.append(block.register_forward_hook(rebuild, prepend=True))

    def _process(self, ops: _PointOps, t: Tensor) -> Tensor:
        if ops.edits:
            t = t.clone()
            for site, p, iv in ops.edits:
                self._apply(p, site, iv, t)
        for site, p in ops.captures:
            v = p.view(t)
            if site.head is not None:
                v = v.select(p.head_axis, head_index(site, self.dims, site.head))  # type: ignore[arg-type]
            if self.grad and torch.is_grad_enabled():
                t, v = _substitute(p, site, self.dims, t, v)
            self.cache.record(site, self.state.offset, v)
        return t

    def _apply(self, p: Point, site: Site, iv: Intervention, t: Tensor) -> None:
        v = p.view(t)
        length = v.shape[p.pos_axis]
        local, absolute = self._positions(iv, site, length)
        if local is not None and not local:
            return  # none of this intervention's positions are in this forward step
        index: list[Any] = [slice(None)] * v.ndim
        src_index: list[Any] = [slice(None)] * v.ndim
        heads = None if iv.heads is None else [head_index(site, self.dims, h) for h in iv.heads]
        if heads is not None:
            _check_heads(iv, self.dims)
        pos_l = None if local is None else torch.tensor(local, device=v.device)
        pos_a = None if absolute is None else torch.tensor(absolute, device=v.device)
        head_t = None if heads is None else torch.tensor(heads, device=v.device)
        if pos_l is not None and head_t is not None:
            assert p.head_axis is not None
            # Outer product of positions and heads, not their zip.
            if p.pos_axis < p.head_axis:
                pos_l, pos_a, head_t = pos_l[:, None], pos_a[:, None], head_t[None, :]  # type: ignore[index]
            else:
                head_t, pos_l, pos_a = head_t[:, None], pos_l[None, :], pos_a[None, :]  # type: ignore[index]
        if pos_l is not None:
            index[p.pos_axis], src_index[p.pos_axis] = pos_l, pos_a
        if head_t is not None:
            index[p.head_axis], src_index[p.head_axis] = head_t, head_t  # type: ignore[index]
        selected = v[tuple(index)]
        source = self._source(iv, site, v, selected, tuple(src_index), p)
        new = iv.edit(selected, source)
        if new.shape != selected.shape:
            raise InterventionError(
                f"{iv.name} on {site} produced shape {tuple(new.shape)} for a selected region of "
                f"shape {tuple(selected.shape)}"
            )
        if new.is_floating_point() and not bool(torch.isfinite(new).all()):
            raise InterventionError(
                f"{iv.name} on {site} produced non-finite values (NaN or inf); check the "
                "intervention's values, factor or function"
            )
        v[tuple(index)] = new

    def _positions(
        self, iv: Intervention, site: Site, length: int
    ) -> tuple[list[int] | None, list[int] | None]:
        """Returns (local, absolute) position indices for this forward step, or (None, None)."""
        if iv.positions is None:
            return None, None
        offset = self.state.offset
        total = offset + length
        wanted = (
            list(range(total))[iv.positions]
            if isinstance(iv.positions, slice)
            else [q + total if q < 0 else q for q in iv.positions]
        )
        local, absolute = [], []
        for q in wanted:
            if not 0 <= q < total:
                if self.state.generating:
                    continue
                raise InterventionError(
                    f"position {q} of {iv.name} on {site} is out of range for a sequence of "
                    f"{total} tokens (valid: 0..{total - 1}, or negative from the end)"
                )
            if q >= offset:
                local.append(q - offset)
                absolute.append(q)
        return local, absolute

    def _source(
        self,
        iv: Intervention,
        site: Site,
        v: Tensor,
        selected: Tensor,
        src_index: tuple[Any, ...],
        p: Point,
    ) -> Tensor | None:
        if isinstance(iv, Patch | Add):
            val = iv.value
        elif isinstance(iv, Ablate):
            val = iv.replacement(v.shape[0])
            if val is None:
                return None
        else:
            return None
        if val.dtype != v.dtype:
            raise InterventionError(
                f"{iv.name} value for {site} has dtype {val.dtype}, the model runs in {v.dtype}; "
                f"convert it with .to({v.dtype})"
            )
        if val.device != v.device:
            raise InterventionError(
                f"{iv.name} value for {site} is on {val.device}, the model is on {v.device}; "
                f"move it with .to('{v.device}')"
            )
        if site.head is not None and val.ndim == v.ndim - 1 and p.head_axis is not None:
            val = val.unsqueeze(p.head_axis)  # a per-head site's value, e.g. cache['L3.attn.z.h5']
            val = val.expand(*[-1 if i != p.head_axis else v.shape[i] for i in range(v.ndim)])
        if val.shape == selected.shape:
            return val
        if val.ndim == v.ndim:
            if val.shape[0] not in (1, v.shape[0]):
                raise InterventionError(
                    f"{iv.name} value for {site} has batch size {val.shape[0]}, the run has "
                    f"{v.shape[0]} examples (pass 1 to use the same value for every example)"
                )
            full_like = all(
                val.shape[i] == v.shape[i] or (i == p.pos_axis and self.state.offset > 0)
                for i in range(1, v.ndim)
            )
            if full_like:
                try:
                    return val[src_index].expand_as(selected)
                except (IndexError, RuntimeError):
                    pass
        try:
            return val.expand_as(selected)
        except RuntimeError:
            raise InterventionError(
                f"{iv.name} value for {site} has shape {tuple(val.shape)}; expected the site's "
                f"shape {tuple(v.shape)}, the selected region's shape {tuple(selected.shape)} "
                f"(positions={iv.positions}, heads={iv.heads}), or a shape that broadcasts to it"
            ) from None


def _check_heads(iv: Intervention, dims: Dimensions) -> None:
    for h in iv.heads or ():
        if not 0 <= h < dims.n_heads:
            raise InterventionError(
                f"head {h} of {iv.name} on {iv.site} is out of range: valid heads are "
                f"0..{dims.n_heads - 1}"
            )


def _substitute(
    p: Point, site: Site, dims: Dimensions, t: Tensor, v: Tensor
) -> tuple[Tensor, Tensor]:
    """Returns (t', act): act is an exact copy of v that t' is computed from, so gradients reach it."""
    if v is t:
        return t, v
    act = v.clone()
    t2 = t.clone()
    view = p.view(t2)
    if site.head is not None:
        view = view.select(p.head_axis, head_index(site, dims, site.head))  # type: ignore[arg-type]
    view.copy_(act)
    return t2, act
