"""Interchange interventions against pyvene (Wu et al. 2024), the causal-abstraction library.

On a tiny random Llama, pyvene's `VanillaIntervention` (the whole block output swapped at one
position) and `RotatedSpaceIntervention` (the first k coordinates of a rotation swapped) give
the same logits as interplab's interchange through the same rotation's first k columns, and the
same answers pair by pair as `interchange`. Skipped when pyvene is not installed (it is in the
``reference`` extra).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from interplab.core.interventions import Patch
from interplab.techniques.causal_abstraction import (
    AbstractionTask,
    CausalModel,
    counterfactual_dataset,
    interchange,
    random_basis,
    subspace_from_basis,
    subspace_patch,
)

from helpers import tiny_model

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    pv = pytest.importorskip("pyvene")

LENGTH = 7


def _task() -> AbstractionTask:
    cm = CausalModel(variables={"v": lambda e, v: e[-1] % 3}, output=lambda e, v: 10 + v["v"])
    return AbstractionTask(
        cm,
        sample=lambda r: [r.randrange(3, 256) for _ in range(LENGTH)],
        prompt=lambda e: e,
        candidates=lambda e: (10, 11, 12),
        name="mod3",
    )


def _pyvene_logits(hf, intervention, base, source, position):
    cfg = pv.IntervenableConfig(
        [{"layer": 1, "component": "block_output", "intervention_type": intervention}]
    )
    model = pv.IntervenableModel(cfg, model=hf)
    n = base.shape[0]
    where = [[[position]] * n]
    return (
        model,
        lambda: (
            model(
                {"input_ids": base},
                [{"input_ids": source}],
                unit_locations={"sources->base": (where, where)},
            )[1].logits
        ),
    )


def test_whole_site_interchange_equals_pyvenes_vanilla_intervention() -> None:
    m = tiny_model("llama")
    data = counterfactual_dataset(
        m, _task(), ["v"], n=8, seed=0, filter_correct=False, progress=False
    )
    base, source = torch.tensor(data.base_ids), torch.tensor(data.source_ids)
    _, run = _pyvene_logits(m.hf, pv.VanillaIntervention, base, source, LENGTH - 1)
    theirs = run()
    src = m.run(source, capture=["L1.resid_post"]).cache["L1.resid_post"]
    ours = m.run(base, interventions=[Patch("L1.resid_post", src, positions=[-1])]).logits
    assert torch.equal(ours, theirs)
    result = interchange(m, data, "L1.resid_post", path="hooks")
    expected = theirs[:, -1][:, [10, 11, 12]].argmax(-1).numpy()
    np.testing.assert_array_equal(result.predictions, expected)


@pytest.mark.parametrize("k", [1, 5])
def test_rotated_subspace_interchange_equals_pyvenes_rotated_space_intervention(k: int) -> None:
    m = tiny_model("llama")
    data = counterfactual_dataset(
        m, _task(), ["v"], n=8, seed=1, filter_correct=False, progress=False
    )
    base, source = torch.tensor(data.base_ids), torch.tensor(data.source_ids)
    rotation = random_basis(64, 64, 3, torch.float32)
    model, run = _pyvene_logits(m.hf, pv.RotatedSpaceIntervention, base, source, LENGTH - 1)
    intervention = next(iter(model.interventions.values()))
    intervention = intervention[0] if isinstance(intervention, tuple | list) else intervention
    intervention.rotate_layer.weight = rotation  # pyvene rotates x -> x R and swaps the first k
    intervention.set_interchange_dim(k)
    with torch.no_grad():
        theirs = run()
    subspace = subspace_from_basis(rotation[:, :k].double().numpy(), "L1.resid_post")
    src = m.run(source, capture=["L1.resid_post"]).cache["L1.resid_post"]
    ours = m.run(base, interventions=[subspace_patch(subspace, src, positions=[-1])]).logits
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)
    for path in ("hooks", "partial"):
        result = interchange(m, data, "L1.resid_post", subspace=subspace, path=path)
        expected = theirs[:, -1][:, [10, 11, 12]].argmax(-1).numpy()
        np.testing.assert_array_equal(result.predictions, expected)
