"""Activation and attribution patching on tiny random models: the fast path equals the one-cell
hook loop, self-patching changes nothing, full patches recover exactly, and attribution is exact
where the metric is linear in the patched activation."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from torch import nn

from interplab import viz
from interplab.configs import ConfigError
from interplab.results import load
from interplab.results.patching import AttributionResult, PatchingResult
from interplab.results.patching_compare import Comparison
from interplab.sites import Site
from interplab.techniques.metrics import Metric, MetricError, normalised_recovery
from interplab.techniques.patching import (
    FAST_TOLERANCE,
    PatchingConfig,
    PatchingError,
    TokenPairs,
    activation_patching,
    attribution_patching,
    compare_with_activation_patching,
)

from helpers import tiny_model, token_pairs

ALL = ("resid_pre", "resid_mid", "resid_post", "attn_out", "mlp_out", "attn.z")


_pairs = token_pairs


@pytest.fixture(scope="module")
def llama():
    return tiny_model("llama")


@pytest.mark.parametrize(
    ("per", "direction", "source", "metric"),
    [
        ("position", "denoise", "contrast", "logit_diff"),
        ("position", "noise", "contrast", "kl"),
        ("position", "noise", "resample", "prob"),
        ("all", "noise", "mean", "logit_diff"),
        ("all", "noise", "zero", "logit_diff"),
    ],
)
def test_fast_and_packed_paths_equal_the_one_cell_loop(llama, per, direction, source, metric):
    kw: dict[str, Any] = dict(
        components=ALL, per=per, direction=direction, source=source, metric=metric, control=False
    )
    slow = activation_patching(llama, _pairs(), method="loop", progress=False, **kw)
    assert slow.method == "loop"
    for method in ("fast", "hooks"):
        # A small budget makes the packed path split the cells over several batches.
        r = activation_patching(
            llama, _pairs(), method=method, batch_budget_mb=0.05, progress=False, **kw
        )
        assert r.method == method
        for c in ALL:
            scale = 1 + np.abs(slow.patched(c))
            assert np.all(np.abs(r.effect(c) - slow.effect(c)) <= FAST_TOLERANCE * scale), c
        np.testing.assert_array_equal(r.clean, slow.clean)


def test_fast_path_chunks_under_a_tiny_budget_give_the_same_effects(llama):
    big = activation_patching(llama, _pairs(), components=("resid_pre", "attn.z"), progress=False)
    small = activation_patching(
        llama, _pairs(), components=("resid_pre", "attn.z"), batch_budget_mb=0.01, progress=False
    )
    for c in ("resid_pre", "attn.z"):
        np.testing.assert_allclose(small.effect(c), big.effect(c), atol=1e-5)


@pytest.mark.parametrize("family", ["qwen3", "gpt2"])
def test_other_families_agree_with_the_hook_loop_or_fall_back(family):
    model = tiny_model(family)
    comps = ("resid_pre", "attn_out", "attn.z")
    auto = activation_patching(model, _pairs(2, 6), components=comps, progress=False)
    slow = activation_patching(model, _pairs(2, 6), components=comps, method="loop", progress=False)
    assert auto.method == ("fast" if family == "qwen3" else "hooks")
    assert family == "qwen3" or "hook path used" in auto.note
    for c in comps:
        np.testing.assert_allclose(auto.effect(c), slow.effect(c), atol=FAST_TOLERANCE * 10)


def test_patching_a_run_with_its_own_activations_changes_nothing(llama):
    p = _pairs()
    same = TokenPairs(p.clean, p.clean, p.answer, p.wrong)
    for method in ("fast", "hooks", "loop"):
        r = activation_patching(llama, same, components=ALL, method=method, progress=False)
        for c in ALL:
            assert np.all(r.effect(c) == 0.0), (method, c)


def test_full_residual_at_layer_zero_recovers_the_clean_metric(llama):
    r = activation_patching(llama, _pairs(), per="all", progress=False)
    np.testing.assert_allclose(r.recovery()[:, 0], 1.0, atol=1e-4)
    noised = activation_patching(llama, _pairs(), per="all", direction="noise", progress=False)
    np.testing.assert_allclose(noised.patched()[:, 0], noised.corrupt, atol=1e-4)


def test_result_summary_json_and_figure(llama, tmp_path):
    r = activation_patching(llama, _pairs(4), components=("resid_pre", "attn.z"), progress=False)
    assert r.effect("resid_pre").shape == (4, 2, 7)
    assert r.effect("attn.z").shape == (4, 2, 4, 7)
    s = r.summary("resid_pre", n_resamples=500)
    assert s.cell_shape == (2, 7) and s.n_tests <= 14
    top = r.top_cells("resid_pre", 3, summary=s)
    assert len(top) == 3 and top[0].site == Site(top[0].index[0], "resid_pre")
    position = top[0].position
    assert position is not None and position == top[0].index[1]
    assert top[0].token == r.tokens[0][position]
    assert f"at {top[0].label}" in r.describe("resid_pre", summary=s)  # named, not an index
    heads = r.top_cells("attn.z", 1)[0]
    assert heads.site.head is not None and heads.site.component == "attn.z"
    path = r.to_json(tmp_path / "r.json")
    assert path.exists() and not list(tmp_path.glob(".*tmp"))
    viz.figure(r, component="attn.z")
    viz.figure(r)


def test_results_round_trip_through_json_and_draw_the_same(llama, tmp_path):
    r = activation_patching(llama, _pairs(4), components=("resid_pre", "attn.z"), progress=False)
    loaded = load(r.to_json(tmp_path / "r.json"))
    assert isinstance(loaded, PatchingResult) and isinstance(loaded.control, PatchingResult)
    for c in r.components:
        np.testing.assert_array_equal(loaded.effect(c), r.effect(c))
        np.testing.assert_array_equal(loaded.control.effect(c), r.control.effect(c))  # type: ignore[union-attr]
    assert loaded.provenance.config == r.provenance.config
    assert (loaded.method, loaded.source, loaded.tokens) == (r.method, r.source, r.tokens)
    assert loaded.top_cells(k=3) == r.top_cells(k=3)
    viz.figure(loaded, component="attn.z")
    viz.figure(loaded, control=True)
    attr = attribution_patching(llama, _pairs(4), components=("resid_pre",), control=False)
    back = AttributionResult.from_json(attr.to_json(tmp_path / "a.json"))
    np.testing.assert_array_equal(back.effect(), attr.effect())
    viz.figure(back)
    cmp = compare_with_activation_patching(attr, r, n_resamples=100)
    again = load(cmp.to_json(tmp_path / "c.json"))
    assert isinstance(again, Comparison) and again.cells == cmp.cells
    np.testing.assert_array_equal(again.errors, cmp.errors)
    assert again.summary().cell_shape == (2 * 7,)
    viz.figure(again)


def test_a_config_runs_what_the_keywords_run(llama):
    kw: dict[str, Any] = dict(
        components=("resid_pre", "mlp_out"), per="all", direction="noise", control=False
    )
    by_keywords = activation_patching(llama, _pairs(), progress=False, **kw)
    config = PatchingConfig(components=("resid_pre", "mlp_out"), per="all", direction="noise")
    by_config = activation_patching(
        llama, _pairs(), config=replace(config, control=False), progress=False
    )
    assert by_config.provenance.config == by_keywords.provenance.config
    assert by_keywords.provenance.config["components"] == ["resid_pre", "mlp_out"]
    for c in ("resid_pre", "mlp_out"):
        np.testing.assert_array_equal(by_config.effect(c), by_keywords.effect(c))


def test_errors_name_the_problem(llama):
    p = _pairs()
    with pytest.raises(ConfigError, match="direction"):
        activation_patching(llama, p, direction="sideways", progress=False)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"cannot patch 'attn\.q'"):
        activation_patching(llama, p, components=("attn.q",), progress=False)
    with pytest.raises(ConfigError, match=r"method=.*choose one of"):
        activation_patching(llama, p, method="magic", progress=False)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="direction='noise'"):
        activation_patching(llama, p, source="zero", progress=False)
    with pytest.raises(PatchingError, match="one token"):
        TokenPairs(p.clean, p.corrupt, p.answer, p.answer)
    with pytest.raises(PatchingError, match="fast path cannot run"):
        activation_patching(tiny_model("gpt2"), p, method="fast", progress=False)
    with pytest.raises(MetricError, match="unknown metric"):
        Metric("accuracy")  # type: ignore[arg-type]
    with pytest.raises(MetricError, match="example 1"):
        normalised_recovery(np.zeros((2, 3)), np.array([1.0, 0.5]), np.array([0.0, 0.5]))


def test_attribution_is_exact_where_the_metric_is_linear_in_the_patched_activation():
    # With the final norm made the identity, the logit difference is a linear function of the
    # final residual, so patching the last layer's resid_post or mlp_out changes it by exactly
    # grad . (clean - corrupt).
    model = tiny_model("llama")
    model.hf.model.norm = nn.Identity()
    comps = ("resid_post", "mlp_out")
    attr = attribution_patching(model, _pairs(), components=comps)
    act = activation_patching(model, _pairs(), components=comps, method="hooks", progress=False)
    for c in comps:
        np.testing.assert_allclose(attr.effect(c)[:, -1], act.effect(c)[:, -1], atol=1e-4)
    np.testing.assert_allclose(attr.clean, act.clean, atol=1e-5)


def test_attribution_grids_and_comparison(llama):
    attr = attribution_patching(llama, _pairs(4), components=ALL)
    act = activation_patching(llama, _pairs(4), components=ALL, progress=False)
    for c in ALL:
        assert attr.effect(c).shape == act.effect(c).shape
    cmp = compare_with_activation_patching(attr, act, n_resamples=200)
    assert -1 <= cmp.pearson <= 1 and cmp.pearson_ci[0] <= cmp.pearson_ci[1]
    assert cmp.n_cells == 2 * 7 and len(cmp.worst(3)) == 3
    assert "Pearson" in cmp.describe()
    worst = cmp.worst(1)[0]
    assert worst.cell.site.component == "resid_pre" and worst.cell.position is not None
    viz.figure(cmp)
    attr_all = attribution_patching(llama, _pairs(4), components=("attn.z",), per="all")
    assert attr_all.effect().shape == (4, 2, 4)
