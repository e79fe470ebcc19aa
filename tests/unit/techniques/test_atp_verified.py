"""Verified patching on tiny random models: its exact cells equal the full exact sweep's (fast and
hook paths), every cell that AtP* scores above the screen runs exactly, and the bound on the
estimated cells holds as often as its confidence says in a simulation with known truth."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binomtest

from interplab import viz
from interplab.configs import ConfigError
from interplab.results import load
from interplab.results.patching_verified import (
    ESTIMATED,
    SAMPLED,
    VERIFIED,
    VerifiedPatchingResult,
)
from interplab.techniques.patching import PatchingError, activation_patching
from interplab.techniques.patching.verified import (
    VerifiedConfig,
    max_effect_bound,
    select_cells,
    verified_patching,
)

from helpers import tiny_model, token_pairs

GRID = ("resid_pre", "resid_mid", "resid_post", "attn_out", "mlp_out", "attn.z")


@pytest.mark.parametrize(
    ("family", "per"), [("llama", "position"), ("llama", "all"), ("gpt2", "position")]
)
def test_exact_cells_equal_the_full_exact_sweep(family, per):
    model = tiny_model(family, num_hidden_layers=3) if family == "llama" else tiny_model(family)
    tp = token_pairs(4, 7)
    full = activation_patching(model, tp, components=GRID, per=per, control=False, progress=False)
    cfg = VerifiedConfig(
        components=GRID,
        per=per,
        threshold=1.0,
        screen=1.0,
        sample=0.1,
        min_sample=3,
        control=False,
    )
    ver = verified_patching(model, tp, config=cfg, progress=False)
    assert ver.method == ("fast" if family == "llama" else "hooks")
    assert ver.n_verified > 0 and ver.n_sampled > 0
    assert ver.n_sampled == sum(int((ver.status[c] == SAMPLED).sum()) for c in GRID)
    assert ver.n_exact < ver.n_cells
    scores = np.concatenate([ver.scores[c].ravel() for c in GRID])
    status = np.concatenate([ver.status[c].ravel() for c in GRID])
    np.testing.assert_array_equal(status == VERIFIED, scores > ver.screen * ver.tolerance)
    for c in GRID:
        exact = ver.exact(c)
        assert exact.shape == full.effect(c).shape[1:]
        np.testing.assert_allclose(ver.effect(c)[:, exact], full.effect(c)[:, exact], atol=1e-5)
        # The rest carries AtP*'s estimates, untouched.
        np.testing.assert_array_equal(ver.effect(c)[:, ~exact], ver.estimates[c][:, ~exact])
    np.testing.assert_allclose(ver.clean, full.clean, atol=1e-6)


def test_method_verified_runs_through_activation_patching():
    model = tiny_model("llama")
    tp = token_pairs(4, 7)
    res = activation_patching(model, tp, method="verified", progress=False)
    assert isinstance(res, VerifiedPatchingResult) and res.control is not None
    assert res.provenance.technique == "activation_patching_verified"
    with pytest.raises(PatchingError, match="contrast"):
        activation_patching(model, tp, method="verified", direction="noise", source="zero")


def test_selection_verifies_every_cell_above_the_cutoff_and_samples_the_rest_uniformly():
    rng = np.random.default_rng(0)
    scores = rng.pareto(1.5, 400)
    status = select_cells(scores, 1.5, 0.1, 20, np.random.default_rng(1))
    top = status == VERIFIED
    np.testing.assert_array_equal(top, scores > 1.5)
    rest = int((~top).sum())
    assert (status == SAMPLED).sum() == max(20, int(np.ceil(0.1 * rest)))
    # Uniform over the rest: across many draws every unverified cell is sampled about as often.
    counts = sum(
        (select_cells(scores, 1.5, 0.1, 20, np.random.default_rng(s)) == SAMPLED).astype(int)
        for s in range(400)
    )
    share = counts[~top] / 400
    assert abs(share.mean() - (status == SAMPLED).sum() / rest) < 1e-9
    assert share.min() > 0.02 and share.max() < 0.15
    assert (select_cells(np.zeros(10), 0.05, 0.0, 20, rng) == SAMPLED).all()


def test_the_bound_holds_as_often_as_its_confidence_says():
    # Many grids with known truth: heavy-tailed estimates, normal estimate errors. The true
    # largest |effect| among the estimated cells may exceed the bound in at most 1 - confidence
    # of the grids (one-sided binomial test), and the bound must not be vacuous.
    rng = np.random.default_rng(0)
    confidence, grids, misses, slack = 0.9, 600, 0, []
    for _ in range(grids):
        cells = int(rng.integers(150, 500))
        estimate = rng.standard_t(3, cells) * rng.uniform(0.1, 2.0)
        truth = estimate + rng.normal(rng.normal(0, 0.05), rng.uniform(0.01, 0.3), cells)
        status = select_cells(np.abs(estimate), float(np.quantile(np.abs(estimate), 0.8)), 0.05,
                              12, rng)  # fmt: skip
        left = status == ESTIMATED
        sampled = status == SAMPLED
        bound = max_effect_bound(estimate[left], (truth - estimate)[sampled], confidence)
        worst = np.abs(truth[left]).max()
        misses += worst > bound
        slack.append(bound / worst)
    test = binomtest(misses, grids, 1 - confidence, alternative="greater")
    assert test.pvalue > 0.01, (misses, grids)
    assert np.median(slack) < 3.0  # informative, not infinite
    assert max_effect_bound(np.array([]), np.array([0.1, 0.2]), 0.9) == 0.0
    assert max_effect_bound(np.array([1.0]), np.array([0.1]), 0.9) == np.inf


def test_result_round_trips_and_marks_exact_cells_in_its_figure(tmp_path):
    model = tiny_model("llama")
    res = verified_patching(
        model, token_pairs(4, 7), components=("resid_pre", "attn.z"), threshold=0.3, control=False,
        progress=False,
    )  # fmt: skip
    path = res.to_json(tmp_path / "verified.json")
    back = load(path)
    assert isinstance(back, VerifiedPatchingResult)
    for c in res.components:
        np.testing.assert_array_equal(back.status[c], res.status[c])
    assert back.bound == res.bound and "cells patched exactly" in back.describe_bound()
    fig = viz.figure(back)
    outlines = [p for p in fig.axes[0].patches if not p.get_fill()]
    assert len(outlines) == int((res.status["resid_pre"] != ESTIMATED).sum())
    maps = viz.heatmaps(back, component="attn.z")
    assert maps[0].faded is not None
    assert viz.html(back)


def test_bad_options_name_the_problem():
    model = tiny_model("llama")
    with pytest.raises(ConfigError, match="threshold"):
        verified_patching(model, token_pairs(), threshold=1.5, progress=False)
    with pytest.raises(ConfigError, match="cannot verify"):
        verified_patching(model, token_pairs(), components=("attn.q",), progress=False)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--method", "bogus"], "--method is exact, verified or atp"),
        (["--method", "atp", "--component", "attn.pattern"], "AtP* cannot estimate"),
        (["--method", "verified", "--ablations", "zero,mean"], "drop --method"),
    ],
)
def test_the_patch_command_refuses_bad_methods_before_loading_a_model(args, message):
    from typer.testing import CliRunner

    from interplab.cli import app

    out = CliRunner().invoke(app, ["patch", *args, "--model", "no-such-model"])
    # The entry point prints a UserError as one line; under CliRunner it is the exception.
    assert out.exit_code != 0 and message in out.output + str(out.exception), out.output
