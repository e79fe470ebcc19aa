"""A learned `Subspace` where other techniques take a direction, a vector or a patch.

- Directional ablation (`interplab.techniques.directions`): ``subspace.direction()`` is the unit
  vector of a k=1 subspace, for `compare_ablation`, `ablation_interventions` or
  `orthogonalized_model`; `subspace_ablation_interventions` projects a whole k-dim subspace
  out of every write to the residual stream (the same map, ``x − (x B) Bᵀ``, for k ≥ 1).
- Steering (`interplab.techniques.steering`): `subspace_steering_vector` is ``B (μ_to − μ_from)``,
  the difference of the mean source coordinates of two answer slots mapped back to the
  residual, as a `SteeringVector` at the subspace's site for `steer` and
  `steering_interventions`.
- Patching: `subspace_patch` is an `Apply` that writes a source run's coordinates along the
  subspace into a site (everything else stays the base's), for `Model.run` or
  `Model.intervene`, e.g. beside the whole-site `Patch` of activation patching.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from interplab.core.interventions import Apply, Positions
from interplab.core.model import Model
from interplab.provenance import Provenance, data_hash
from interplab.results.causal_abstraction import AbstractionError, Subspace
from interplab.results.steering import SteeringVector
from interplab.sites import Site


def subspace_direction(subspace: Subspace) -> np.ndarray:
    """Returns the unit direction ``[d]`` of a k=1 subspace (for directional ablation)."""
    return subspace.direction()


def subspace_ablation_interventions(model: Model, subspace: Subspace) -> list[Apply]:
    """Returns interventions projecting the subspace out of the embedding and every attn_out and
    mlp_out (directional ablation of a k-dim subspace); needs a residual-stream subspace."""
    if subspace.d != model.dims.d_model:
        raise AbstractionError(
            f"the subspace lives in {subspace.d} dimensions, the residual stream in "
            f"{model.dims.d_model}; ablation needs a residual-stream subspace"
        )
    b = torch.as_tensor(subspace.basis, dtype=torch.float64)
    b = torch.linalg.qr(b).Q.to(model.device, model.dtype)

    def project_out(x: Tensor) -> Tensor:
        return x - (x @ b) @ b.T

    sites = [Site(None, "embed")]
    for layer in range(model.dims.n_layers):
        sites += [Site(layer, "attn_out"), Site(layer, "mlp_out")]
    return [Apply(s, project_out) for s in sites]


def subspace_steering_vector(
    subspace: Subspace, towards: int | str, away: int | str, *, scale: float = 1.0
) -> SteeringVector:
    """Returns ``scale · B (μ_towards − μ_away)``: the move, inside the subspace, from the mean
    source coordinates of answer slot ``away`` to those of ``towards`` (index or slot name), as
    a steering vector at the subspace's residual site."""
    site = subspace.site
    if site.component not in ("resid_pre", "resid_post") or site.layer is None:
        raise AbstractionError(
            f"steering adds to resid_pre or resid_post; this subspace lives at {site}"
        )
    to, frm = _slot(subspace, towards), _slot(subspace, away)
    means = subspace.label_means
    if np.isnan(means[[to, frm]]).any():
        raise AbstractionError(
            f"slot {subspace.slots[to]!r} or {subspace.slots[frm]!r} had no training pairs; "
            "no mean to steer between"
        )
    basis = subspace.basis.astype(np.float64)
    pos, neg = basis @ means[to], basis @ means[frm]
    vector = (scale * (pos - neg))[None].astype(np.float32)
    return SteeringVector(
        layers=[site.layer],
        component=site.component,  # type: ignore[arg-type]
        position="last",
        vectors=vector,
        positive_mean=pos[None].astype(np.float32),
        negative_mean=neg[None].astype(np.float32),
        n_positive=0,
        n_negative=0,
        provenance=Provenance(
            technique="steering_vector",
            model=subspace.provenance.model,
            config={
                "from_subspace": subspace.method,
                "site": str(site),
                "towards": subspace.slots[to],
                "away": subspace.slots[frm],
                "scale": scale,
            },
            data_sha256=data_hash(subspace.basis.round(6)),
            seed=subspace.provenance.seed,
        ),
    )


def subspace_patch(
    subspace: Subspace, source: Tensor, *, site: Site | None = None, positions: Positions = None
) -> Apply:
    """Returns an intervention that sets the coordinates along the subspace at ``site`` (the
    subspace's own by default) to those of ``source`` (that site's activations from another run,
    the site's full shape or the selected positions'), keeping the rest of the base's."""
    where = Site.parse(site or subspace.site)
    if isinstance(positions, slice):
        raise AbstractionError("give subspace_patch positions as ints (e.g. [-1]), not a slice")
    picked = (
        None
        if positions is None
        else ([positions] if isinstance(positions, int) else list(positions))
    )
    b64 = torch.as_tensor(subspace.basis, dtype=torch.float64)
    if source.shape[-1] != subspace.d:
        raise AbstractionError(
            f"source activations have width {source.shape[-1]}; the subspace lives in {subspace.d}"
        )

    def fn(x: Tensor) -> Tensor:
        s = source.to(x.device, x.dtype)
        if where.head is not None and s.ndim == x.ndim - 1:
            s = s.unsqueeze(-2)
        if picked is not None and s.shape != x.shape and s.ndim == x.ndim:
            s = s[:, picked]
        if s.shape != x.shape:
            raise AbstractionError(
                f"source activations {tuple(source.shape)} match neither {where}'s shape nor the "
                f"selected positions' {tuple(x.shape)}"
            )
        b = b64.to(x.device, x.dtype)
        return x + ((s - x) @ b) @ b.T

    return Apply(where, fn, positions=positions)


def _slot(subspace: Subspace, slot: int | str) -> int:
    if isinstance(slot, str):
        if slot not in subspace.slots:
            raise AbstractionError(f"no slot {slot!r}; slots: {subspace.slots}")
        return subspace.slots.index(slot)
    if not 0 <= slot < len(subspace.slots):
        raise AbstractionError(f"slot {slot} is out of range 0..{len(subspace.slots) - 1}")
    return int(slot)


def subspace_from_basis(
    basis: np.ndarray | Tensor,
    site: Site | str,
    *,
    positions: Sequence[int] = (-1,),
    model: Model | None = None,
    label: str = "given",
) -> Subspace:
    """Returns a `Subspace` from any ``[d, k]`` basis (orthonormalised here), e.g. a probe
    direction, to interchange, ablate or compare with a learned one."""
    b = torch.as_tensor(np.asarray(basis) if isinstance(basis, np.ndarray) else basis)
    b = b.detach().double().cpu()
    if b.ndim == 1:
        b = b[:, None]
    q = torch.linalg.qr(b).Q.numpy()
    return Subspace(
        site=Site.parse(site),
        positions=tuple(positions),
        basis=q,
        method=label,
        task="",
        variables=[],
        slots=[],
        label_means=np.zeros((0, q.shape[1])),
        provenance=Provenance(
            technique="subspace",
            model={} if model is None else model.info.to_dict(),
            config={"method": label},
            data_sha256=data_hash(q.round(6)),
        ),
    )


__all__ = [
    "subspace_ablation_interventions",
    "subspace_direction",
    "subspace_from_basis",
    "subspace_patch",
    "subspace_steering_vector",
]
