"""Diagnostics on the real model: first letters are linearly readable at the middle layer, and
the counts nest (absorbed <= missed <= hits) for a dictionary of random features."""

import numpy as np
import pytest

from interplab.dictionaries import DictionaryConfig, build
from interplab.dictionaries.diagnostics import diagnose
from interplab.sites import Site

pytestmark = pytest.mark.slow


def test_diagnostics_on_smollm2(smol):
    site = Site(15, "resid_pre")
    d = build(DictionaryConfig("topk", d_in=576, d_sae=1152, k=32, site=site), seed=0).eval()
    windows = np.random.default_rng(0).integers(100, 20000, size=(8, 32))
    r = diagnose(smol, d, windows, name="random", n_windows=8, max_words=1500, progress=False)
    assert r.n_tokens == 8 * 31
    assert len(r.letters) >= 8
    assert np.median([x.probe_f1 for x in r.letters]) > 0.5
    for x in r.letters:
        assert 0 <= x.absorbed <= x.misses <= x.hits
    assert all(p.cosine > 0.7 for p in r.pairs)
