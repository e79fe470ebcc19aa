"""AtP* and verified patching on the real embedded model: the QK fix's rebuilt attention matches
SmolLM2's own (rotary, grouped-query), and verified patching's exact cells are the exact sweep's."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from interplab.data import ContrastPair

pytestmark = pytest.mark.slow

NAMES = [(" Mary", " John"), (" Tom", " Anna")]
TEMPLATE = "When{A} and{B} went to the store,{S} gave a drink to"


def _pairs() -> list[ContrastPair]:
    out = []
    for a, b in NAMES:
        for io, s in ((a, b), (b, a)):
            clean = TEMPLATE.format(A=io, B=s, S=s)
            out.append(ContrastPair(clean, TEMPLATE.format(A=s, B=io, S=io), io, s))
    return out


def test_qk_fix_runs_on_smollm2_and_keeps_value_cells_plain(smol):
    from interplab.techniques.patching import atp_star

    torch.set_num_threads(1)
    r = atp_star(
        smol, _pairs(), components=("attn.k", "attn.v"), per="all", graddrop=False,
        control=False, progress=False,
    )  # fmt: skip
    assert r.effect("attn.k").shape == (4, 30, 3)  # 3 key/value heads
    np.testing.assert_array_equal(r.effect("attn.v"), r.plain["attn.v"])
    assert np.isfinite(r.effect("attn.k")).all()
    assert not np.allclose(r.effect("attn.k"), r.plain["attn.k"])  # the fix changed something


def test_verified_heads_equal_the_exact_sweep_on_their_exact_cells(smol):
    from interplab.techniques.patching import activation_patching, verified_patching

    torch.set_num_threads(1)
    kw: dict[str, Any] = dict(components=("attn.z",), per="all", control=False, progress=False)
    full = activation_patching(smol, _pairs(), **kw)
    ver = verified_patching(smol, _pairs(), **kw)
    ran = ver.exact("attn.z")
    assert ver.method == "fast" and 0 < ran.sum() < ran.size
    np.testing.assert_allclose(ver.effect()[:, ran], full.effect()[:, ran], atol=1e-4)
    exact_mean = np.abs(full.effect().mean(0))
    assert exact_mean[ran].max() == exact_mean.max()  # the strongest head ran exactly
    # The promise: every head above the tolerance ran exactly (screens and group checks).
    assert ran[exact_mean > ver.tolerance].all()
    assert ver.group_screen is not None and len(ver.group_examples) == 4
