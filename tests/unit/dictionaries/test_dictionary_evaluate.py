"""Evaluation formulas (each with a regression test) and the evaluation of a known dictionary."""

import math

import numpy as np
import pytest
import torch

from interplab.dictionaries import (
    DictionaryConfig,
    EvalConfig,
    build,
    ce_loss_recovered,
    evaluate,
    fraction_of_variance_explained,
)
from interplab.results import load
from interplab.sites import Site

from helpers import tiny_model

SITE = Site(1, "resid_pre")


def test_predicting_the_mean_explains_exactly_nothing():
    x = torch.randn(500, 8, dtype=torch.float64) * torch.arange(1, 9) + 100.0
    mean = x.mean(0)
    assert fraction_of_variance_explained(x, mean.expand_as(x), mean) == 0.0
    assert fraction_of_variance_explained(x, x) == 1.0
    # The wrong formula (variance about zero, SAELens issue #659) would score the mean ~1.
    wrong = 1 - float((x - mean).pow(2).sum() / x.pow(2).sum())
    assert wrong > 0.99


def test_fve_is_sklearns_variance_weighted_r2():
    metrics = pytest.importorskip("sklearn.metrics")
    g = torch.Generator().manual_seed(0)
    x = torch.randn(300, 6, generator=g, dtype=torch.float64) * 3 + 1
    x_hat = x + torch.randn(300, 6, generator=g, dtype=torch.float64)
    expected = metrics.r2_score(x.numpy(), x_hat.numpy(), multioutput="variance_weighted")
    assert fraction_of_variance_explained(x, x_hat) == pytest.approx(expected, rel=1e-12)


def test_ce_loss_recovered_formula():
    assert ce_loss_recovered(2.0, 2.0, 5.0) == 1.0
    assert ce_loss_recovered(2.0, 5.0, 5.0) == 0.0
    assert ce_loss_recovered(2.0, 3.0, 5.0) == pytest.approx(2 / 3)
    assert math.isnan(ce_loss_recovered(2.0, 3.0, 2.0))


@pytest.fixture(scope="module")
def model():
    return tiny_model("llama")


def windows() -> np.ndarray:
    return np.random.default_rng(1).integers(0, 256, size=(40, 12))


def exact_dictionary() -> torch.nn.Module:
    """ReLU(z) - ReLU(-z) = z: a standard SAE with 2 * d latents that reconstructs perfectly."""
    d = build(DictionaryConfig("standard", d_in=64, d_sae=128, site=SITE)).eval()
    eye = torch.eye(64)
    with torch.no_grad():
        d.W_enc.copy_(torch.cat([eye, -eye], 1))
        d.W_dec.copy_(torch.cat([eye, -eye], 0))
        d.b_enc.zero_()
        d.b_dec.copy_(torch.randn(64, generator=torch.Generator().manual_seed(2)))
    return d


def test_a_perfect_dictionary_recovers_all_of_the_loss(model, tmp_path):
    result = evaluate(
        model,
        exact_dictionary(),
        windows(),
        name="exact",
        config=EvalConfig(n_batches=4, batch_windows=5),
        progress=False,
    )
    assert result.fve == pytest.approx(1.0, abs=1e-6)
    assert result.ce_recovered == pytest.approx(1.0, abs=1e-4)
    assert result.kl == pytest.approx(0.0, abs=1e-6)
    assert abs(result.ce_zero - result.ce_clean) > 1e-3  # ablating the site matters
    assert result.n_tokens == 20 * 11 and result.batches["fve"].shape == (4,)
    assert result.dead_fraction < 0.1 and 0 < result.l0 <= 64
    summaries = result.summaries()
    assert set(summaries) >= {"fve", "ce_recovered", "kl", "l0"}
    loaded = load(result.to_json(tmp_path / "eval.json"))
    assert loaded.fve == result.fve and np.array_equal(loaded.density, result.density)


def test_a_mean_dictionary_explains_nothing_and_a_zero_one_recovers_nothing(model):
    config = EvalConfig(n_batches=2, batch_windows=5)
    ids = windows()[-10:]
    x = model.run(torch.from_numpy(ids), capture=[SITE]).cache[SITE][:, 1:].reshape(-1, 64)
    mean = build(DictionaryConfig("topk", d_in=64, d_sae=64, k=1, site=SITE)).eval()
    with torch.no_grad():
        mean.W_enc.zero_()
        mean.b_enc.fill_(-1.0)  # never fires
        mean.b_dec.copy_(x.double().mean(0).float())
    result = evaluate(model, mean, windows(), config=config, progress=False)
    assert result.fve == pytest.approx(0.0, abs=1e-6)
    assert result.dead_fraction == 1.0 and result.l0 == 0.0
    with torch.no_grad():
        mean.b_dec.zero_()  # the reconstruction is zero: splicing it is the zero ablation
    zero = evaluate(model, mean, windows(), config=config, progress=False)
    assert zero.ce_spliced == pytest.approx(zero.ce_zero, abs=1e-6)
    assert zero.ce_recovered == pytest.approx(0.0, abs=1e-6)
