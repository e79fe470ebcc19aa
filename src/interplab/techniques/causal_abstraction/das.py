"""Distributed alignment search: learn the subspace at a site where a high-level variable lives.

DAS (Geiger, Wu, Potts, Icard, Goodman 2023, "Finding Alignments Between Interpretable Causal
Variables and Distributed Neural Representations", arXiv:2303.02536) and Boundless DAS (Wu,
Geiger, Icard, Potts, Goodman 2023, "Interpretability at Scale", arXiv:2305.08809):

1. Split the counterfactual pairs into train and held-out test (seeded, ``test_fraction``).
2. Parametrise an orthogonal map at the site (`rotation`): DAS learns ``k`` orthonormal
   directions; Boundless DAS a full rotation and a soft boundary over its coordinates, annealed
   to a hard one, with a penalty on the boundary so the subspace stays small.
3. Train on the train pairs: interchange the subspace from the source run into the base run
   and minimise the cross-entropy of the network's candidate logits against the high-level
   model's counterfactual answer (Adam; the model's weights are fixed, gradients reach only
   the rotation). Residual sites on Llama-family models take the partial path (only the later
   layers and positions are re-run); every other site a whole forward through hooks.
4. On the held-out pairs, report IIA of the learned subspace beside the baselines that make it
   a claim, all on the same pairs: ``random`` (``n_random`` Haar-random subspaces of the same
   size, mean outcome per pair), ``control`` (the same search, same seed, trained and tested on
   labels shuffled across pairs: how much a subspace of this size can fit answers unrelated to
   the variable), ``full`` (the whole site swapped: the ceiling for any subspace of it) and
   ``none`` (no intervention: how often the base answer already agrees).
5. Keep the learned basis as a `Subspace` with provenance and the mean source coordinates by
   answer slot, usable by steering, directional ablation and patching (`adapters`).

Caveats: a high held-out IIA says the subspace *can* carry the variable's causal role on this
distribution, not that the network uses only it (Makelov et al. 2024 show 1-d residual patches
that succeed through a dormant pathway); choosing a site after a sweep makes its IIA optimistic.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from interplab.core.model import Model
from interplab.progress import progress_bar
from interplab.provenance import Provenance
from interplab.results.causal_abstraction import (
    AbstractionError,
    DASConfig,
    DASMethod,
    DASResult,
    Subspace,
)
from interplab.sites import Site, SiteLike
from interplab.store import recorded
from interplab.techniques.causal_abstraction.dataset import CounterfactualDataset
from interplab.techniques.causal_abstraction.rotation import (
    BoundlessRotation,
    SubspaceRotation,
    random_basis,
)
from interplab.techniques.causal_abstraction.runner import (
    Runner,
    full_edit,
    make_runner,
    subspace_edit,
)


@recorded("das")
def das(
    model: Model,
    data: CounterfactualDataset,
    site: SiteLike,
    *,
    positions: int | tuple[int, ...] = (-1,),
    method: DASMethod = "das",
    k: int = 1,
    steps: int = 200,
    batch_size: int = 32,
    lr: float = 0.01,
    test_fraction: float = 0.3,
    control: str = "shuffled",
    n_random: int = 5,
    seed: int = 0,
    path: str = "auto",
    progress: bool = True,
    config: DASConfig | None = None,
) -> DASResult:
    """Returns the subspace at ``site`` learned on a train split of ``data`` (DAS: ``k``
    directions; Boundless: a learned size), with held-out IIA beside random rotations of the
    same size, a shuffled-label control task, the whole site and no intervention.
    ``config`` replaces the keyword options."""
    cfg = config or DASConfig(
        site=Site.parse(site),
        positions=(positions,) if isinstance(positions, int) else tuple(positions),
        method=method,
        k=k,
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        test_fraction=test_fraction,
        control=control,  # type: ignore[arg-type]
        n_random=n_random,
        seed=seed,
        path=path,  # type: ignore[arg-type]
    )
    train, test = data.split(cfg.test_fraction, seed=cfg.seed)
    train_runner = make_runner(model, train, [cfg.site], cfg.positions, cfg.path)
    test_runner = make_runner(model, test, [cfg.site], cfg.positions, cfg.path)
    width = train_runner.width
    if cfg.method == "das" and cfg.k > width:
        raise AbstractionError(f"k={cfg.k} exceeds the site's width {width}")
    train_labels = torch.as_tensor(train.labels)
    control_train = train.shuffled_labels(cfg.seed + 1)
    control_test = test.shuffled_labels(cfg.seed + 2)
    n_runs = 1 + int(cfg.control == "shuffled")
    with progress_bar(cfg.steps * n_runs, f"{cfg.method} at {cfg.site}", progress) as advance:
        learned, curve = _fit(model, train_runner, train_labels, cfg, width, advance)
        if cfg.control == "shuffled":
            ctl, ctl_curve = _fit(
                model, train_runner, torch.as_tensor(control_train), cfg, width, advance
            )
        else:
            ctl, ctl_curve = None, {"loss": [], "accuracy": [], "size": []}
    basis = learned.to(torch.float64)
    labels = torch.as_tensor(test.labels)
    conditions = ["learned"]
    columns = [_outcomes(test_runner, subspace_edit(basis.to(model.device)), labels)]
    if cfg.n_random > 0:
        conditions.append("random")
        draws = [
            _outcomes(
                test_runner,
                subspace_edit(
                    random_basis(width, basis.shape[1], cfg.seed + 100 + i).to(model.device)
                ),
                labels,
            )
            for i in range(cfg.n_random)
        ]
        columns.append(np.mean(draws, axis=0))
    if ctl is not None:
        conditions.append("control")
        columns.append(
            _outcomes(
                test_runner,
                subspace_edit(ctl.to(torch.float64).to(model.device)),
                torch.as_tensor(control_test),
            )
        )
    conditions += ["full", "none"]
    columns.append(_outcomes(test_runner, full_edit(), labels))
    columns.append(_outcomes(test_runner, None, labels))
    prov = Provenance(
        technique="das",
        model=model.info.to_dict(),
        config=cfg.to_dict(),
        data_sha256=data.sha256,
        seed=cfg.seed,
    )
    subspace = Subspace(
        site=train_runner.sites[0],
        positions=cfg.positions,
        basis=basis.numpy(),
        method=cfg.method,
        task=data.task,
        variables=list(data.variables),
        slots=list(data.slots) or [f"candidate {i}" for i in range(data.n_candidates)],
        label_means=_label_means(train_runner, basis, train.labels, data.n_candidates),
        provenance=prov,
    )
    return DASResult(
        task=data.task,
        variables=list(data.variables),
        site=train_runner.sites[0],
        positions=cfg.positions,
        method=cfg.method,
        k=int(basis.shape[1]),
        subspace=subspace,
        conditions=conditions,
        outcomes=np.stack(columns, axis=1).astype(np.float64),
        base_prompts=list(test.base_prompts),
        source_prompts=list(test.source_prompts),
        labels=test.labels.copy(),
        control_labels=np.asarray(control_test, dtype=np.int64),
        n_candidates=data.n_candidates,
        n_train=train.n,
        n_random=cfg.n_random,
        train_loss=np.asarray(curve["loss"]),
        train_accuracy=np.asarray(curve["accuracy"]),
        control_loss=np.asarray(ctl_curve["loss"]),
        control_accuracy=np.asarray(ctl_curve["accuracy"]),
        boundary=np.asarray(curve["size"]),
        provenance=prov,
    )


def _fit(
    model: Model,
    runner: Runner,
    labels: Tensor,
    cfg: DASConfig,
    width: int,
    advance,
) -> tuple[Tensor, dict[str, list[float]]]:
    """Returns the learned hard basis ``[width, k]`` and the per-step loss, batch IIA and size."""
    rot: SubspaceRotation | BoundlessRotation
    if cfg.method == "das":
        rot = SubspaceRotation(width, cfg.k, cfg.seed)
    else:
        rot = BoundlessRotation(width, cfg.seed, cfg.boundary_init)
    rot = rot.to(model.device)
    params = [p for p in rot.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=cfg.lr)
    rng = np.random.default_rng(cfg.seed)
    n = runner.data.n
    order = rng.permutation(n)
    cursor = 0
    curve: dict[str, list[float]] = {"loss": [], "accuracy": [], "size": []}
    t0 = max(cfg.temperature_start * width, cfg.temperature_end)
    for step in range(cfg.steps):
        if cursor + min(cfg.batch_size, n) > n:
            order, cursor = rng.permutation(n), 0
        rows = torch.as_tensor(order[cursor : cursor + cfg.batch_size])
        cursor += len(rows)
        frac = step / max(cfg.steps - 1, 1)
        temperature = math.exp((1 - frac) * math.log(t0) + frac * math.log(cfg.temperature_end))
        with torch.enable_grad():
            logits = runner.logits(rows, rot.edit(temperature))
            target = labels[rows].to(logits.device)
            ce = F.cross_entropy(logits.float(), target)
            loss = ce + cfg.boundary_weight * rot.penalty().to(ce.device)
            if not bool(torch.isfinite(loss)):
                raise AbstractionError(
                    f"DAS training diverged at step {step} (loss {float(loss)}); lower lr "
                    f"(now {cfg.lr})"
                )
            grads = torch.autograd.grad(loss, params, allow_unused=True)
        for p, g in zip(params, grads, strict=True):
            p.grad = None if g is None else g.detach()
        opt.step()
        curve["loss"].append(float(ce.detach()))
        curve["accuracy"].append(float((logits.argmax(-1) == target).float().mean()))
        curve["size"].append(rot.size(temperature))
        advance(1)
    return rot.hard_basis().cpu(), curve


def _outcomes(runner: Runner, edit, labels: Tensor) -> np.ndarray:
    """Returns ``[pair]`` 1.0 where the prediction with ``edit`` equals the label."""
    return (runner.predictions(edit) == labels).double().numpy()


def _label_means(runner: Runner, basis: Tensor, labels: np.ndarray, n_slots: int) -> np.ndarray:
    """Returns ``[slot, k]`` the mean source coordinates along ``basis`` (over positions and the
    pairs whose counterfactual answer is that slot); NaN for a slot never seen."""
    src = runner.source[runner.sites[0]].detach().double().cpu()  # [n, P, d]
    coords = (src @ basis).mean(1).numpy()  # [n, k]
    out = np.full((n_slots, basis.shape[1]), np.nan)
    for slot in range(n_slots):
        hit = labels == slot
        if hit.any():
            out[slot] = coords[hit].mean(0)
    return out


__all__ = ["das"]
