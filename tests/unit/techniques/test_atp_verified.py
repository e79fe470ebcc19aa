"""Verified patching on tiny random models: its exact cells equal the full exact sweep's (fast and
hook paths), every cell the estimate and its sampled error cannot rule out runs exactly, and the
bound on the estimated cells holds as often as its confidence says in a simulation with known
truth."""

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
    verify_more,
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
        confidence=0.5,
        sample=0.1,
        min_sample=8,
        control=False,
    )
    ver = verified_patching(model, tp, config=cfg, progress=False)
    assert ver.method == ("fast" if family == "llama" else "hooks")
    assert ver.n_verified > 0 and ver.n_sampled > 0
    # A random model's AtP* is poor, so on the 27-cell "all" grid every cell may need verifying;
    # the position grids keep estimated cells, whose values must be AtP*'s untouched.
    assert per == "all" or ver.n_exact < ver.n_cells
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


def test_selection_verifies_what_the_estimate_and_its_error_cannot_rule_out():
    rng = np.random.default_rng(0)
    means = rng.standard_t(3, 400)
    status = select_cells(means, None, 1.5, 0.1, 20, np.random.default_rng(1))
    top = status == VERIFIED
    np.testing.assert_array_equal(top, np.abs(means) > 1.5)
    rest = int((~top).sum())
    assert (status == SAMPLED).sum() == max(20, int(np.ceil(0.1 * rest)))
    # A GradDrop score above the tolerance verifies a cell whose mean cancels to 0.
    scores = np.abs(means)
    scores[np.argmin(np.abs(means))] = 9.0
    with_scores = select_cells(means, scores, 1.5, 0.1, 20, np.random.default_rng(1))
    assert with_scores[np.argmin(np.abs(means))] == VERIFIED
    # The sampled errors widen the net: afterwards no cell left can exceed the tolerance.
    errors = rng.normal(0.1, 0.2, int((status == SAMPLED).sum()))
    more = verify_more(status, means, errors, 1.5, 0.95)
    assert more.any() and not (more & (status != ESTIMATED)).any()
    assert np.abs(means[more]).min() >= np.abs(means[(status == ESTIMATED) & ~more]).max() - 0.2
    status[more] = VERIFIED
    left = status == ESTIMATED
    assert max_effect_bound(means[left], errors, 0.95) <= 1.5
    # Without a spread to judge by, everything left runs exactly.
    assert verify_more(status, means, errors[:1], 1.5, 0.95)[left].all()
    assert (select_cells(np.zeros(10), None, 0.05, 0.0, 20, rng) == SAMPLED).all()


def test_the_bound_holds_as_often_as_its_confidence_says():
    # Many grids with known truth: heavy-tailed estimates, normal estimate errors. The true
    # largest |effect| among the estimated cells may exceed the bound in at most 1 - confidence
    # of the grids (one-sided binomial test), and the bound must not be vacuous. And every cell
    # whose true |effect| exceeds the tolerance runs exactly as often as the confidence says.
    rng = np.random.default_rng(0)
    confidence, grids, misses, missed_big, slack = 0.9, 600, 0, 0, []
    for _ in range(grids):
        cells = int(rng.integers(150, 500))
        estimate = rng.standard_t(3, cells) * rng.uniform(0.1, 2.0)
        truth = estimate + rng.normal(rng.normal(0, 0.05), rng.uniform(0.01, 0.3), cells)
        tolerance = float(np.quantile(np.abs(truth), 0.9))
        status = select_cells(estimate, None, tolerance, 0.05, 12, rng)
        sampled = status == SAMPLED
        errors = (truth - estimate)[sampled]
        status[verify_more(status, estimate, errors, tolerance, confidence)] = VERIFIED
        left = status == ESTIMATED
        bound = max_effect_bound(estimate[left], errors, confidence)
        assert bound <= tolerance
        if left.any():
            worst = np.abs(truth[left]).max()
            misses += worst > bound
            missed_big += worst > tolerance
            slack.append(bound / worst)
    test = binomtest(misses, grids, 1 - confidence, alternative="greater")
    assert test.pvalue > 0.01, (misses, grids)
    assert binomtest(missed_big, grids, 1 - confidence, alternative="greater").pvalue > 0.01
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
