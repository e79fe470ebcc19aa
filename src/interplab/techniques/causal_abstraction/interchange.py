"""Interchange interventions and their accuracy (IIA) against a high-level causal model.

Geiger et al. 2021 ("Causal Abstractions of Neural Networks", NeurIPS) and 2022 ("Inducing
Causal Structure for Interpretable Neural Networks", ICML):

1. For each (base, source) pair of a `CounterfactualDataset`, run the source and keep the
   activations at the chosen sites and token positions (each row's own positions: 0 is its
   first real token, -1 its last).
2. Run the base with those activations written in (the whole vector, or only its coordinates
   along an orthonormal basis: ``x + ((s - x) B) Bᵀ``), and read the network's answer: the
   candidate token with the largest logit at the base's last token.
3. The pair counts as a success when that answer is the high-level model's counterfactual
   answer (its output on the base with the variables set to their source values). IIA is the
   share of successes, reported with n and a 95% bootstrap CI; every pair's outcome is kept,
   and so is the network's answer without the interchange (how often "doing nothing" already
   agrees: the floor a claim must clear).

Caveat (Makelov et al. 2024, "Is This the Subspace You Are Looking for?", ICLR): a subspace
that passes can still act through a dormant pathway rather than the variable's own
representation; compare against random subspaces and the whole site, and check the
subspace's story with other methods.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from interplab.core.model import Model
from interplab.provenance import Provenance
from interplab.results.causal_abstraction import (
    AbstractionError,
    InterchangeConfig,
    InterchangeResult,
    Subspace,
)
from interplab.sites import Site, SiteLike
from interplab.store import recorded
from interplab.techniques.causal_abstraction.dataset import CounterfactualDataset
from interplab.techniques.causal_abstraction.runner import (
    Edit,
    full_edit,
    make_runner,
    subspace_edit,
)

BasisLike = Subspace | np.ndarray | Tensor


@torch.no_grad()
@recorded("interchange")
def interchange(
    model: Model,
    data: CounterfactualDataset,
    sites: SiteLike | Sequence[SiteLike],
    *,
    positions: int | Sequence[int] = (-1,),
    subspace: BasisLike | None = None,
    path: str = "auto",
    batch_size: int = 64,
    config: InterchangeConfig | None = None,
) -> InterchangeResult:
    """Returns every pair's answer with ``sites`` (at ``positions``) swapped from the source run
    into the base run (only the coordinates along ``subspace`` when given), with IIA against
    the high-level model's counterfactual answers. ``config`` replaces the keyword options."""
    if isinstance(sites, str | Site):
        sites = [sites]
    cfg = config or InterchangeConfig(
        sites=tuple(Site.parse(s) for s in sites),
        positions=(positions,) if isinstance(positions, int) else tuple(positions),
        path=path,  # type: ignore[arg-type]
        batch_size=batch_size,
    )
    runner = make_runner(model, data, list(cfg.sites), cfg.positions, cfg.path)
    basis = None if subspace is None else as_basis(subspace, runner.width)
    edit: Edit = full_edit() if basis is None else subspace_edit(basis.to(model.device))
    predictions = runner.predictions(edit, cfg.batch_size).numpy()
    base_predictions = runner.predictions(None, cfg.batch_size).numpy()
    return InterchangeResult(
        task=data.task,
        variables=list(data.variables),
        sites=list(runner.sites),
        positions=cfg.positions,
        k=0 if basis is None else int(basis.shape[1]),
        base_prompts=list(data.base_prompts),
        source_prompts=list(data.source_prompts),
        candidates=data.candidates.copy(),
        labels=data.labels.copy(),
        predictions=predictions.astype(np.int64),
        base_predictions=base_predictions.astype(np.int64),
        provenance=Provenance(
            technique="interchange",
            model=model.info.to_dict(),
            config={
                **cfg.to_dict(),
                "subspace": None if subspace is None else _basis_note(subspace, runner.width),
            },
            data_sha256=data.sha256,
            seed=data.seed,
        ),
    )


def as_basis(subspace: BasisLike, width: int) -> Tensor:
    """Returns ``[width, k]`` orthonormal columns from a `Subspace`, array or tensor (a single
    vector ``[width]`` is one direction, normalised), checked."""
    raw = subspace.basis if isinstance(subspace, Subspace) else subspace
    b = torch.as_tensor(np.asarray(raw) if isinstance(raw, np.ndarray) else raw)
    b = b.detach().to(torch.float64).cpu()
    if b.ndim == 1:
        b = b[:, None] / b.norm()
    if b.ndim != 2 or b.shape[0] != width:
        raise AbstractionError(
            f"a subspace here is [{width}, k] (the site's width); got {tuple(b.shape)}"
        )
    if not bool(torch.isfinite(b).all()):
        raise AbstractionError("the subspace holds NaN or inf")
    gram = b.T @ b
    if not torch.allclose(gram, torch.eye(b.shape[1], dtype=b.dtype), atol=1e-3):
        raise AbstractionError(
            "the subspace's columns are not orthonormal; orthonormalise them (torch.linalg.qr)"
        )
    return b


def _basis_note(subspace: BasisLike, width: int) -> dict:
    basis = as_basis(subspace, width)
    note: dict = {"k": int(basis.shape[1])}
    if isinstance(subspace, Subspace):
        note.update(method=subspace.method, site=str(subspace.site), task=subspace.task)
    from interplab.provenance import data_hash

    note["sha256"] = data_hash(basis.numpy().round(6))
    return note


__all__ = ["BasisLike", "as_basis", "interchange"]
