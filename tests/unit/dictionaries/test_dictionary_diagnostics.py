"""Splitting pairs counted by brute force; the diagnostics result reads back and summarises."""

import numpy as np
import torch

from interplab.dictionaries.diagnostics import _pairs
from interplab.provenance import Provenance
from interplab.results import load
from interplab.results.dictionary_diagnostics import (
    DictionaryDiagnostics,
    LetterAbsorption,
    SplitPair,
)
from interplab.viz import figure


def test_pairs_are_the_live_high_cosine_pairs_with_their_jaccard():
    g = torch.Generator().manual_seed(0)
    unit = torch.randn(8, 16, generator=g)
    unit[1] = unit[0] + 0.05 * torch.randn(16, generator=g)  # near-duplicate of 0
    unit[3] = unit[2] + 0.05 * torch.randn(16, generator=g)  # near-duplicate of 2
    unit[5] = unit[4] + 0.05 * torch.randn(16, generator=g)  # near-duplicate of dead 4
    unit = unit / unit.norm(dim=1, keepdim=True)
    fires = torch.zeros(40, 8, dtype=torch.bool)
    fires[:10, 0] = True
    fires[10:20, 1] = True  # 0 and 1 never together: split
    fires[:15, 2] = True
    fires[2:15, 3] = True  # 2 and 3 mostly together: redundant
    fires[:5, 5] = True  # 4 never fires
    fires[30:, 6:] = True
    pairs = _pairs(fires, unit, 0.7, 100)
    found = {(p.a, p.b): p for p in pairs}
    cos = unit @ unit.T
    expected = {
        (a, b)
        for a in range(8)
        for b in range(a + 1, 8)
        if cos[a, b] > 0.7 and fires[:, a].any() and fires[:, b].any()
    }
    assert set(found) == expected and {(0, 1), (2, 3)} <= expected
    assert found[(0, 1)].jaccard == 0.0 and found[(0, 1)].together == 0
    assert np.isclose(found[(2, 3)].jaccard, 13 / 15)
    assert all(4 not in k for k in found)


def test_the_result_reads_back_and_summarises_over_letters(tmp_path):
    letters = tuple(
        LetterAbsorption(c, 50, 0.9, i, 0.4, 20, m, a)
        for i, (c, m, a) in enumerate([("a", 4, 2), ("b", 10, 1), ("c", 0, 0)])
    )
    r = DictionaryDiagnostics(
        "res", 96, 400, 0.7, 0.05, 0.3,
        (SplitPair(0, 1, 0.9, 0.0, 10, 10, 0), SplitPair(2, 3, 0.8, 0.8, 15, 13, 13)),
        letters, 0.1, Provenance("dictionary_diagnostics", {}, {}, ""),
    )  # fmt: skip
    assert r.split_fraction == 0.5 and r.redundant_fraction == 0.5
    assert np.allclose(r.absorption_rates(), [0.1, 0.05, 0.0])
    assert np.isclose(r.summary().mean.item(), 0.05)
    r.to_json(tmp_path / "d.json")
    back = load(tmp_path / "d.json")
    assert back.letters == r.letters and back.pairs == r.pairs
    assert "first-letter absorption 0.050" in back.describe()
    assert figure(back) is not None
    none = DictionaryDiagnostics(
        "res", 96, 400, 0.7, 0.05, 0.3, (), letters, 0.1, r.provenance
    )  # fmt: skip
    assert "no pair of live features" in none.describe() and "nan" not in none.describe()
