"""Non-finite values never pass silently: interventions that hold or produce NaN/inf raise."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from interplab.core.interventions import Add, Apply, InterventionError, Patch, Scale

from helpers import tiny_model

IDS = torch.arange(1, 7)[None]


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_factors_and_values_are_refused_on_construction(bad: float) -> None:
    with pytest.raises(InterventionError, match="finite"):
        Scale("L0.resid_post", bad)
    with pytest.raises(InterventionError, match="finite"):
        Add("L0.resid_post", torch.ones(64), coefficient=bad)
    vector = torch.ones(64)
    vector[3] = bad
    with pytest.raises(InterventionError, match="non-finite"):
        Add("L0.resid_post", vector)
    with pytest.raises(InterventionError, match="non-finite"):
        Patch("L0.resid_post", vector)


_MODEL = tiny_model("llama")


@settings(max_examples=40, deadline=None)
@given(
    factor=st.floats(allow_nan=False, allow_infinity=False, width=32),
    layer=st.integers(0, 1),
    fill=st.sampled_from([math.nan, math.inf, -math.inf, 0.0, 1.0, 1e38]),
    use_apply=st.booleans(),
)
def test_any_intervention_either_raises_or_leaves_finite_logits(
    factor: float, layer: int, fill: float, use_apply: bool
) -> None:
    if use_apply:

        def fn(t: torch.Tensor) -> torch.Tensor:
            return torch.full_like(t, fill)

        iv = Apply(f"L{layer}.mlp_out", fn)
    else:
        iv = Scale(f"L{layer}.resid_post", factor)
    try:
        run = _MODEL.run(IDS, interventions=[iv])
    except InterventionError as e:
        assert "non-finite" in str(e)
    else:
        assert bool(torch.isfinite(run.logits).all())
