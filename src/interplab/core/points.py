"""Hook points: where each Site lives on the HF model, and how to read and write it there.

A `Point` is one (module, input-or-output) pair plus a `View`: a function from the raw tensor at
that point to the site's canonical shape. Every view is a true view (reshape, transpose or slice
of the same storage), so writing through it on a clone edits exactly the site's entries; that is
how interventions reach fused and interleaved projections without re-implementing any forward.

Canonical shapes (see `interplab.types` for the axis names):

    residual-like sites       [batch, pos, d_model]
    attn.q / attn.z           [batch, pos, head, d_head]
    attn.k / attn.v           [batch, pos, kv_head, d_head]
    attn.pattern              [batch, head, pos, key_pos]
    mlp.in                    [batch, pos, d_model]
    mlp.pre / mlp.post        [batch, pos, d_mlp]
    logits                    [batch, pos, vocab]
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from torch import Tensor, nn

from interplab.models.adapter import Adapter, Projection, get_module
from interplab.sites import Dimensions, Site, SiteError

Kind = Literal["in", "out"]
View = Callable[[Tensor], Tensor]


@dataclass(frozen=True)
class Point:
    """Where a site's tensor is read: a module's first input or (an element of) its output."""

    module: nn.Module
    kind: Kind
    index: int | None  # element of a tuple output; None for a plain tensor
    view: View
    pos_axis: int
    head_axis: int | None

    @property
    def key(self) -> tuple[int, Kind, int | None]:
        """Identifies the tensor read: sites that share it (q, k, v of a fused projection) share
        one hook, each through its own view; attn_out and the pattern, two elements of one
        output, get a hook each."""
        return (id(self.module), self.kind, self.index)


def _identity(t: Tensor) -> Tensor:
    return t


def _projection_view(p: Projection, n_heads: int, d_head: int) -> View:
    if p.layout == "flat":
        return lambda t: t.unflatten(-1, (n_heads, d_head))
    if p.layout == "split":
        return _identity
    if p.layout == "heads_first":
        return lambda t: t.transpose(1, 2)
    width = n_heads * d_head
    if p.layout == "fused":
        return lambda t: t[..., p.part * width : (p.part + 1) * width].unflatten(
            -1, (n_heads, d_head)
        )
    # interleaved: [batch, pos, heads * 3 * d_head], q/k/v side by side inside each head
    return lambda t: t.unflatten(-1, (n_heads, 3 * d_head))[
        ..., p.part * d_head : (p.part + 1) * d_head
    ]


def resolve(site: Site, adapter: Adapter, hf: nn.Module, dims: Dimensions) -> Point:
    """Returns the hook point that reads ``site`` (the site's head is applied by the caller)."""
    c = site.component
    if c == "embed":
        return Point(adapter.block(hf, 0), "in", None, _identity, 1, None)
    if c == "final_norm":
        return Point(get_module(hf, adapter.final_norm), "out", None, _identity, 1, None)
    if c == "logits":
        return Point(get_module(hf, adapter.unembed), "out", None, _identity, 1, None)
    assert site.layer is not None
    block = adapter.block(hf, site.layer)
    if c == "resid_pre":
        return Point(block, "in", None, _identity, 1, None)
    if c == "resid_post":
        return Point(block, "out", None, _identity, 1, None)
    if c == "resid_mid":
        if adapter.mlp_in is None or adapter.parallel_residual(hf.config):
            raise SiteError(
                f"{site} does not exist in this model: with a parallel residual ({adapter.family}) "
                "attention and MLP both read resid_pre; use resid_pre, attn_out and mlp_out"
            )
        return Point(get_module(block, adapter.mlp_in), "in", None, _identity, 1, None)
    if c == "attn_out":
        index = 0 if adapter.attn_out == adapter.attn else None
        return Point(get_module(block, adapter.attn_out), "out", index, _identity, 1, None)
    if c == "mlp_out":
        return Point(get_module(block, adapter.mlp_out), "out", None, _identity, 1, None)
    if c == "attn.pattern":
        return Point(get_module(block, adapter.attn), "out", 1, _identity, 2, 1)
    if c == "attn.z":
        view = _projection_view(Projection(adapter.o_proj), dims.n_heads, dims.d_head)
        return Point(get_module(block, adapter.o_proj), "in", None, view, 1, 2)
    if c in ("attn.q", "attn.k", "attn.v"):
        proj = {"attn.q": adapter.q, "attn.k": adapter.k, "attn.v": adapter.v}[c]
        n = dims.n_heads if c == "attn.q" else dims.n_kv_heads
        if proj.layout in ("fused", "interleaved"):
            n = dims.n_heads  # fused projections (GPT-2, NeoX) have no grouped-query attention
        view = _projection_view(proj, n, dims.d_head)
        return Point(get_module(block, proj.module), "out", None, view, 1, 2)
    if c == "mlp.in":
        return Point(get_module(block, adapter.mlp), "in", None, _identity, 1, None)
    if c == "mlp.pre":
        return Point(get_module(block, adapter.mlp_pre), "out", None, _identity, 1, None)
    if c == "mlp.post":
        return Point(get_module(block, adapter.mlp_post), "in", None, _identity, 1, None)
    raise SiteError(f"no hook point for {site}")  # unreachable: Site validates components


def head_index(site: Site, dims: Dimensions, head: int) -> int:
    """Returns the index along the site's head axis that query head ``head`` reads."""
    if site.component in ("attn.k", "attn.v"):
        return head // dims.group_size
    return head
