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
    ("family", "per", "direction"),
    [
        ("llama", "position", "denoise"),
        ("llama", "all", "denoise"),
        ("llama", "all", "noise"),
        ("gpt2", "position", "denoise"),
        ("gpt2", "position", "noise"),
    ],
)
def test_exact_cells_equal_the_full_exact_sweep(family, per, direction):
    model = tiny_model(family, num_hidden_layers=3) if family == "llama" else tiny_model(family)
    tp = token_pairs(4, 7)
    full = activation_patching(
        model, tp, components=GRID, per=per, direction=direction, control=False, progress=False
    )
    cfg = VerifiedConfig(
        components=GRID,
        per=per,
        direction=direction,
        threshold=1.0,
        screen=1.0,
        group_screen=None,
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
    np.testing.assert_allclose(ver.corrupt, full.corrupt, atol=1e-6)


@pytest.mark.parametrize("per", ["all", "position"])
def test_the_group_screen_patches_each_layers_heads_together_and_expands_where_atp_missed(per):
    # The group of a layer's heads is its attn_out cell: its exact effect on the chosen examples
    # equals the full exact sweep's, the discrepancy is |exact - sum of the heads' AtP*| averaged
    # over those examples, and a layer whose discrepancy exceeds group_screen x the tolerance has
    # every head verified; the other heads are screened at grouped_screen.
    model = tiny_model("llama", num_hidden_layers=3)
    tp = token_pairs(6, 7)
    full = activation_patching(
        model, tp, components=("attn_out",), per=per, control=False, progress=False
    )
    base = dict(components=("resid_pre", "attn.z"), per=per, threshold=1.0, screen=1.0,
                grouped_screen=0.9, sample=0.1, min_sample=3, group_examples=4, control=False)  # fmt: skip
    screens = [0.0, 1e9]
    for group_screen in screens:
        cfg = VerifiedConfig(**base, group_screen=group_screen)  # type: ignore[arg-type]
        ver = verified_patching(model, tp, config=cfg, progress=False)
        idx = np.asarray(ver.group_examples)
        assert len(idx) == 4 and len(set(idx.tolist())) == 4
        effects = ver.group_effects["attn.z"]
        np.testing.assert_allclose(effects, full.effect("attn_out")[idx], atol=1e-5)
        summed = ver.estimates["attn.z"][idx].sum(2)
        disc = ver.group_discrepancy["attn.z"]
        np.testing.assert_allclose(disc, np.abs(effects - summed).mean(0), atol=1e-12)
        failed = disc > group_screen * ver.tolerance
        expected = ver.scores["attn.z"] > 0.9 * ver.tolerance
        expected |= np.broadcast_to(failed[:, None], expected.shape)
        np.testing.assert_array_equal(ver.status["attn.z"] == VERIFIED, expected)
        # Residual cells keep the plain screen.
        np.testing.assert_array_equal(
            ver.status["resid_pre"] == VERIFIED, ver.scores["resid_pre"] > ver.tolerance
        )
        if group_screen == 0.0:
            # Positions before the first token that differs have nothing to miss.
            assert (disc > 0).any() and failed[disc > 0].all()
        if group_screen == 1e9:
            assert not failed.any()
        if group_screen == 0.0:
            # Next: a screen between the discrepancies, so some layers expand and some do not.
            mid = float(np.median(disc[disc > 0])) / ver.tolerance
            screens.append(mid)
        if len(screens) == 3 and group_screen == screens[2]:
            assert failed.any() and not failed.all()
        assert "head groups" in ver.describe_bound()
    off = verified_patching(
        model, tp, config=VerifiedConfig(**base, group_screen=None), progress=False
    )  # type: ignore[arg-type]
    assert off.group_effects == {} and off.group_screen is None
    np.testing.assert_array_equal(
        off.status["attn.z"] == VERIFIED, off.scores["attn.z"] > off.tolerance
    )


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
    with pytest.raises(ConfigError, match="group_screen"):
        verified_patching(model, token_pairs(), group_screen=-1.0, progress=False)
    with pytest.raises(ConfigError, match="grouped_screen"):
        verified_patching(model, token_pairs(), grouped_screen=2.0, progress=False)


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
