"""Running interchange interventions: candidate logits of base rows with a site edited from source.

An interchange edit is a function ``edit(x, s)`` of the base activations ``x`` and the source
activations ``s`` at the chosen positions (``[rows, positions, d]``) that returns the new base
values. The three DAS uses:

- whole site:          ``s``
- subspace ``B`` [d, k] (orthonormal columns): ``x + ((s - x) B) Bᵀ`` (the coordinates along
  ``B`` come from the source, the rest stay the base's; with ``s == x`` this is ``x`` exactly)
- rotation ``R`` [d, d] with a soft mask ``m`` [d] (Boundless DAS): ``x + (((s - x) R) ⊙ m) Rᵀ``

Two runners give the same numbers by different routes:

1. `HookRunner` (any site, any architecture, padded batches): one forward of the base rows with
   an `Apply` intervention (`interplab.core`) that writes the edit at each row's own positions.
   The reference.
2. `PartialRunner` (residual sites on models with partial forwards, bases of one length): the
   base run's residual entering the site's layer and its keys and values are kept once; each
   call edits that residual and re-runs only layers from the site on, positions from the first
   edited one on (`Model.partial`), then reads only the candidate logits (`Model.unembed`).
   Training DAS at the last token then costs one token through the later layers per step.

Source activations are captured once (no gradient) at construction. Gradients flow into the
edit's parameters when the caller enables them; the model's weights are never updated.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from interplab.core.interventions import Apply
from interplab.core.model import Model, Tokens
from interplab.results.causal_abstraction import AbstractionError
from interplab.sites import Site
from interplab.techniques.causal_abstraction.dataset import CounterfactualDataset, padded

Edit = Callable[[Tensor, Tensor], Tensor]


def full_edit() -> Edit:
    """Returns the whole-site interchange: the source's values."""
    return lambda x, s: s


def subspace_edit(basis: Tensor) -> Edit:
    """Returns the interchange along the orthonormal columns of ``basis`` ``[d, k]``."""

    def edit(x: Tensor, s: Tensor) -> Tensor:
        b = basis.to(x.dtype)
        return x + ((s - x) @ b) @ b.T

    return edit


def masked_rotation_edit(rotation: Tensor, mask: Tensor) -> Edit:
    """Returns the interchange of rotated coordinates weighted by ``mask`` ``[d]`` in [0, 1]."""

    def edit(x: Tensor, s: Tensor) -> Tensor:
        r = rotation.to(x.dtype)
        return x + (((s - x) @ r) * mask.to(x.dtype)) @ r.T

    return edit


def check_site(model: Model, site: Site) -> Site:
    """Returns the site checked for interchange: one vector per position (a head, not all heads)."""
    site = model.sites(site)[0]
    if site.component in ("attn.pattern", "logits"):
        raise AbstractionError(
            f"{site} cannot be interchanged (patterns are read-only; logits are the output); use "
            "attn.z/q/k/v of a head, a residual, attn_out or mlp_out"
        )
    if site.component.startswith("attn.") and site.head is None:
        raise AbstractionError(
            f"{site} holds every head; name one head (e.g. {site.with_head(0)}) so each position "
            "is one vector"
        )
    return site


def site_width(model: Model, site: Site) -> int:
    """Returns the size of the vector at one position of ``site``."""
    d = model.dims
    if site.component.startswith("attn."):
        return d.d_head
    if site.component in ("mlp.pre", "mlp.post"):
        return d.d_mlp
    return d.d_model


class Runner(abc.ABC):
    """Candidate logits ``[rows, C]`` of base rows, optionally with an interchange edit applied
    at every one of ``sites`` (each with its own source values)."""

    def __init__(
        self,
        model: Model,
        data: CounterfactualDataset,
        sites: Sequence[Site],
        positions: Sequence[int],
    ) -> None:
        self.model = model
        self.data = data
        self.sites = [check_site(model, s) for s in sites]
        if not self.sites:
            raise AbstractionError("give at least one site to interchange")
        widths = {site_width(model, s) for s in self.sites}
        if len(widths) != 1:
            raise AbstractionError(
                f"sites {[str(s) for s in self.sites]} differ in width {sorted(widths)}; "
                "interchange sites of one kind together"
            )
        self.width = widths.pop()
        self.positions = tuple(int(p) for p in positions)
        if not self.positions:
            raise AbstractionError("give at least one token position (e.g. -1, the last token)")
        self.base = padded(model, data.base_ids)
        self.base_index = _indices(self.base, self.positions)  # [n, P]
        self.candidates = torch.as_tensor(data.candidates, device=model.device)
        self.source = self._source_values()  # site -> [n, P, d]

    def _source_values(self) -> dict[Site, Tensor]:
        src = padded(self.model, self.data.source_ids)
        index = _indices(src, self.positions)
        out: dict[Site, list[Tensor]] = {s: [] for s in self.sites}
        for lo in range(0, len(src.ids), 64):
            rows = slice(lo, lo + 64)
            cache = self.model.activations(Tokens(src.ids[rows], src.mask[rows]), self.sites)
            for s in self.sites:
                acts = cache[s]
                r = torch.arange(acts.shape[0], device=acts.device)[:, None]
                out[s].append(acts[r, index[rows]].detach())
        return {s: torch.cat(v) for s, v in out.items()}

    @abc.abstractmethod
    def logits(self, rows: Tensor, edit: Edit | None) -> Tensor:
        """Returns ``[rows, C]`` candidate logits at each base row's last token."""

    def predictions(self, edit: Edit | None, batch_size: int = 64) -> Tensor:
        """Returns ``[n]`` the slot of the largest candidate logit of every pair (no gradient)."""
        out = []
        with torch.no_grad():
            for lo in range(0, self.data.n, batch_size):
                rows = torch.arange(lo, min(lo + batch_size, self.data.n))
                out.append(self.logits(rows, edit).argmax(-1).cpu())
        return torch.cat(out)


class HookRunner(Runner):
    """The reference: a whole forward per batch through one `Apply` intervention per site."""

    def logits(self, rows: Tensor, edit: Edit | None) -> Tensor:
        toks = Tokens(self.base.ids[rows], self.base.mask[rows])
        ivs = [] if edit is None else [self._apply(s, rows, edit) for s in self.sites]
        run = self.model.run(toks, interventions=ivs, grad=torch.is_grad_enabled())
        last = run.logits[torch.arange(len(rows), device=run.logits.device), toks.last]
        return last.gather(1, self.candidates[rows])

    def _apply(self, site: Site, rows: Tensor, edit: Edit) -> Apply:
        index = self.base_index[rows]
        source = self.source[site][rows]
        head = site.head is not None

        def fn(t: Tensor) -> Tensor:
            t = t.clone()
            r = torch.arange(t.shape[0], device=t.device)[:, None]
            x = t[r, index, 0] if head else t[r, index]
            new = edit(x, source.to(t.dtype))
            if head:
                t[r, index, 0] = new
            else:
                t[r, index] = new
            return t

        return Apply(site, fn)


class PartialRunner(Runner):
    """One residual site: re-runs only the layers and positions an edit can change."""

    def __init__(
        self,
        model: Model,
        data: CounterfactualDataset,
        sites: Sequence[Site],
        positions: Sequence[int],
    ) -> None:
        super().__init__(model, data, sites, positions)
        if len(self.sites) != 1:
            raise AbstractionError("the partial path interchanges one site; use path='hooks'")
        site = self.sites[0]
        reason = partial_reason(model, self.base, site)
        if reason is not None:
            raise AbstractionError(f"the partial path cannot run here: {reason}")
        assert site.layer is not None
        self.n_layers = model.dims.n_layers
        self.layer = site.layer if site.component == "resid_pre" else site.layer + 1
        self.start = int(self.base_index.min())
        with torch.no_grad():
            self.run = model.base_run(self.base)
        self.partial = model.partial(self.start, self.base.ids.shape[1], self.run)

    def logits(self, rows: Tensor, edit: Edit | None) -> Tensor:
        dev = self.model.device
        rows = rows.to(dev)
        hidden = self.run.resid[self.layer][rows, self.start :]
        if edit is not None:
            hidden = hidden.clone()
            r = torch.arange(len(rows), device=dev)[:, None]
            at = self.base_index[rows] - self.start
            source = self.source[self.sites[0]][rows].to(hidden.dtype)
            hidden[r, at] = edit(hidden[r, at], source)
        out = self.partial.layers(self.layer, self.n_layers, hidden, rows)
        return self.model.unembed(out[:, -1], self.candidates[rows])


def partial_reason(model: Model, base: Tokens, site: Site) -> str | None:
    """Returns why the partial path cannot run this site and batch, or None if it can."""
    if site.component not in ("resid_pre", "resid_post"):
        return f"it edits residual sites (resid_pre, resid_post), not {site.component}"
    return model.partial_support(base)


def make_runner(
    model: Model,
    data: CounterfactualDataset,
    sites: Sequence[Site],
    positions: Sequence[int],
    path: str = "auto",
) -> Runner:
    """Returns the partial runner where it applies (``path='auto'`` or ``'partial'``), else the
    hook runner (``'hooks'``, or ``'auto'`` where the partial path cannot run)."""
    if path not in ("auto", "partial", "hooks"):
        raise AbstractionError(f"path={path!r} is not valid; choose 'auto', 'partial' or 'hooks'")
    if path == "hooks":
        return HookRunner(model, data, sites, positions)
    checked = [check_site(model, s) for s in sites]
    reason = (
        "it interchanges one site at a time"
        if len(checked) != 1
        else partial_reason(model, padded(model, data.base_ids), checked[0])
    )
    if reason is None:
        return PartialRunner(model, data, checked, positions)
    if path == "partial":
        raise AbstractionError(f"the partial path cannot run here: {reason}")
    return HookRunner(model, data, checked, positions)


def _indices(tokens: Tokens, positions: Sequence[int]) -> Tensor:
    """Returns ``[rows, P]`` indices into the padded tensor of each relative position."""
    out = torch.stack([tokens.index(p) for p in positions], dim=1)
    if len(positions) > 1 and bool((out.sort(1).values.diff(dim=1) == 0).any()):
        raise AbstractionError(
            f"positions {list(positions)} name the same token in a row (counting from the start "
            "and from the end meet in short prompts); give positions that differ in every row"
        )
    return out


__all__ = [
    "Edit",
    "HookRunner",
    "PartialRunner",
    "Runner",
    "check_site",
    "full_edit",
    "make_runner",
    "masked_rotation_edit",
    "partial_reason",
    "site_width",
]
