"""Causal tracing on tiny random models: the batched sweep equals a one-cell-at-a-time loop of
plain interventions on both paths, no noise means no effect, full restorations recover the clean
run, results round-trip through JSON and draw, and bad inputs fail with messages that say what is
valid."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from interplab import results, viz
from interplab.configs import ConfigError
from interplab.core.interventions import Add, Patch
from interplab.sites import Site
from interplab.techniques.tracing import (
    TracingCell,
    TracingConfig,
    TracingError,
    TracingResult,
    causal_tracing,
    embedding_std,
    factual_subjects,
    subject_noise,
    window_range,
)

from helpers import tiny_model

SPANS = [(2, 4), (0, 1), (3, 6)]
SITE = {"resid": "resid_post", "attn": "attn_out", "mlp": "mlp_out"}


def _ids(n: int = 3, length: int = 7, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(256, (n, length), generator=g)


@pytest.fixture(scope="module")
def llama4():
    return tiny_model("llama", num_hidden_layers=4)


def _reference(model, ids, spans, result) -> dict[str, np.ndarray]:
    """p(answer) per cell, one forward per (example, sample, cell) through `model.intervene`."""
    n_layers = model.dims.n_layers
    scale = result.noise * float(model.weights.W_E.detach().std())
    noises = subject_noise(list(ids), spans, result.samples, scale, 0, model.dims.d_model)
    out = {c: np.zeros((len(ids), n_layers, ids.shape[1])) for c in result.components}
    sites = [f"L{j}.{s}" for s in SITE.values() for j in range(n_layers)]
    for e in range(len(ids)):
        clean = model.run(ids[e : e + 1], capture=sites).cache
        answer = result.answer_ids[e]
        noised = Add("embed", noises[e])  # every sample in one batch, one cell at a time
        rows = ids[e : e + 1].expand(result.samples, -1)
        for c in result.components:
            for layer in range(n_layers):
                layers = [layer] if c == "resid" else window_range(layer, result.window, n_layers)
                for i in range(ids.shape[1]):
                    patches = [
                        Patch(f"L{j}.{SITE[c]}", clean[f"L{j}.{SITE[c]}"], positions=[i])
                        for j in layers
                    ]
                    with model.intervene([noised, *patches]):
                        logits = model(rows)[:, -1]
                    p = torch.softmax(logits, -1)[:, answer].mean()
                    out[c][e, layer, i] = float(p)
    return out


@pytest.mark.parametrize(
    ("family", "window", "method"),
    [("llama", 3, "auto"), ("llama", 3, "hooks"), ("qwen3", 2, "auto"), ("gpt2", 2, "auto")],
)
def test_batched_sweep_equals_one_cell_at_a_time_interventions(llama4, family, window, method):
    model = llama4 if family == "llama" else tiny_model(family)
    ids, spans = _ids(2), SPANS[:2]
    result = causal_tracing(
        model,
        ids,
        subjects=spans,
        samples=2,
        window=window,
        noise=5.0,
        method=method,
        progress=False,
    )
    fast = model.supports_partial() and method == "auto"
    assert result.method == ("suffix" if fast else "hooks")
    assert bool(result.fallback) == (method == "auto" and not model.supports_partial())
    ref = _reference(model, ids, spans, result)
    for c in result.components:
        np.testing.assert_allclose(result.restored[c], ref[c], atol=1e-5, rtol=0)
    # The comparison is not vacuous: restoring changes p(answer) somewhere.
    assert np.abs(result.effect("resid")).max() > 1e-3


def test_small_budget_chunks_give_the_same_result(llama4):
    big = causal_tracing(llama4, _ids(), subjects=SPANS, samples=2, progress=False)
    small = causal_tracing(
        llama4, _ids(), subjects=SPANS, samples=2, batch_budget_mb=0.1, progress=False
    )
    for c in big.components:
        np.testing.assert_allclose(small.restored[c], big.restored[c], atol=1e-6)


def test_zero_noise_gives_zero_effects(llama4):
    result = causal_tracing(llama4, _ids(), subjects=SPANS, noise=0.0, samples=2, progress=False)
    np.testing.assert_allclose(result.corrupted, result.clean, atol=1e-7)
    for c in result.components:
        np.testing.assert_allclose(result.effect(c), 0.0, atol=1e-6)


def test_restoring_the_last_layer_at_the_final_position_recovers_clean(llama4):
    result = causal_tracing(llama4, _ids(), subjects=SPANS, samples=3, noise=8.0, progress=False)
    assert np.all(np.abs(result.clean - result.corrupted) > 1e-4)  # the noise did something
    np.testing.assert_allclose(result.restored["resid"][:, -1, -1], result.clean, atol=1e-6)
    # At the last layer no other position reaches the output.
    np.testing.assert_allclose(result.effect("resid")[:, -1, :-1], 0.0, atol=1e-6)


def test_restoring_every_position_of_a_layer_recovers_clean(llama4):
    ids = _ids()
    result = causal_tracing(
        llama4, ids, subjects=SPANS, samples=2, noise=8.0, components="resid", progress=False
    )
    scale = result.noise * result.sigma
    noises = subject_noise(list(ids), SPANS, 2, scale, 0, llama4.dims.d_model)
    for e in range(len(ids)):
        clean = llama4.run(ids[e : e + 1], capture=["L1.resid_post"]).cache["L1.resid_post"]
        for s in range(2):
            with llama4.intervene(
                [Add("embed", noises[e][s : s + 1]), Patch("L1.resid_post", clean)]
            ):
                p = torch.softmax(llama4(ids[e : e + 1])[0, -1], -1)[result.answer_ids[e]]
            assert float(p) == pytest.approx(result.clean[e], abs=1e-6)


def test_the_seed_reproduces_and_another_seed_differs(llama4):
    a, b, c = (
        causal_tracing(llama4, _ids(), subjects=SPANS, samples=2, seed=seed, progress=False)
        for seed in (1, 1, 2)
    )
    np.testing.assert_array_equal(a.restored["attn"], b.restored["attn"])
    assert not np.allclose(a.corrupted_samples, c.corrupted_samples)


def test_cells_before_the_subject_are_exactly_zero_and_untested(llama4):
    ids = _ids()
    spans = [(3, 5)] * 3
    result = causal_tracing(llama4, ids, subjects=spans, samples=2, progress=False)
    assert np.all(result.effect("mlp")[:, :, :3] == 0.0)
    s = result.summary("resid", n_resamples=200)
    assert np.isnan(s.mean[:, :3]).all() and not np.isnan(s.mean[:, 3:]).any()
    assert s.n == 3


def test_window_range_follows_romes_rule():
    assert list(window_range(10, 10, 30)) == list(range(5, 15))
    assert list(window_range(2, 10, 30)) == list(range(0, 7))
    assert list(window_range(28, 10, 30)) == list(range(23, 30))
    assert list(window_range(4, 1, 30)) == [4]
    assert list(window_range(4, 3, 30)) == [3, 4, 5]


def test_result_round_trips_through_json_and_draws(llama4, tmp_path):
    import json

    result = causal_tracing(llama4, _ids(), subjects=[(3, 5)] * 3, samples=2, progress=False)
    path = result.to_json(tmp_path / "t.json")
    data = json.loads(path.read_text())
    assert data["technique"] == "causal_tracing"
    assert data["provenance"]["config"] == TracingConfig(samples=2).to_dict()
    assert data["effects"]["resid"]["shape"] == [3, 4, 7]
    assert "resid" in data["summary"]
    loaded = results.load(path)
    assert isinstance(loaded, TracingResult)
    for c in result.components:
        np.testing.assert_array_equal(loaded.restored[c], result.restored[c])
    np.testing.assert_array_equal(loaded.corrupted_samples, result.corrupted_samples)
    assert loaded.subject_spans == result.subject_spans == [(3, 5)] * 3
    assert (loaded.components, loaded.method, loaded.sigma) == (
        result.components,
        result.method,
        result.sigma,
    )
    assert [m.title for m in viz.heatmaps(loaded)] == [
        "restore resid_post",
        "restore attn_out, window 10",
        "restore mlp_out, window 10",
    ]
    assert viz.heatmaps(loaded)[0].col_labels[3].endswith("*")
    hover = viz.heatmaps(loaded)[0].hover
    assert hover is not None and "L2.resid_post @ 4" in hover[2][4]
    written = viz.save(loaded, tmp_path / "t.png")
    assert [p.suffix for p in written] == [".png", ".html"]
    assert written[0].stat().st_size > 1000 and "<svg" in written[1].read_text()
    assert viz.save(loaded, tmp_path / "t1.png", example=1)[0].stat().st_size > 1000
    assert viz.figure(loaded).axes


def test_top_cells_and_descriptions_name_sites_not_indices(llama4):
    result = causal_tracing(llama4, _ids(), subjects=[(3, 5)] * 3, samples=2, progress=False)
    s = result.summary("attn", n_resamples=200)
    top = result.top_cells("attn", 3, summary=s)
    assert all(isinstance(c, TracingCell) and c.site.component == "attn_out" for c in top)
    assert top[0].mean == pytest.approx(float(np.nanmax(s.mean)))
    assert top[0].label.startswith(f"{top[0].site} @ {top[0].position} ")
    assert result.site("mlp", 2) == Site(2, "mlp_out")
    text = result.describe("attn", summary=s)
    assert "at cell (" not in text and "attn_out @" in text


def test_one_prompt_traces_but_has_no_summary(llama4):
    result = causal_tracing(llama4, _ids(1, 6), subjects=[(1, 2)], samples=1, progress=False)
    assert result.effect("resid").shape == (1, 4, 6)
    with pytest.raises(TracingError, match="at least 2 prompts"):
        result.summary()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(subjects=[(2, 4)] * 3, components=("resid", "heads")), "unknown component 'heads'"),
        (dict(subjects=[(2, 4)] * 3, window=0), "window"),
        (dict(subjects=[(2, 4)] * 3, noise=-1.0), "noise"),
        (dict(subjects=[(2, 4)] * 3, samples=0), "samples"),
        (dict(subjects=[(5, 9)] * 3), "not inside its 7 tokens"),
        (dict(subjects=[(2, 4)]), "3 token spans"),
    ],
)
def test_bad_options_raise_clear_errors(llama4, kwargs, match):
    with pytest.raises((TracingError, ConfigError), match=match):
        causal_tracing(llama4, _ids(), progress=False, **kwargs)


def test_config_lists_valid_choices_and_keywords_equal_a_config(llama4):
    with pytest.raises(ConfigError, match="'auto', 'suffix', 'hooks'"):
        TracingConfig(method="fast")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="finite"):
        TracingConfig(noise=float("nan"))
    cfg = TracingConfig(components=("resid",), samples=2, window=3, seed=4)
    a = causal_tracing(llama4, _ids(), subjects=SPANS, config=cfg, progress=False)
    b = causal_tracing(
        llama4,
        _ids(),
        subjects=SPANS,
        components="resid",
        samples=2,
        window=3,
        seed=4,
        progress=False,
    )
    np.testing.assert_array_equal(a.restored["resid"], b.restored["resid"])
    assert a.provenance.config == b.provenance.config == cfg.to_dict()
    with pytest.raises(TracingError, match="method='suffix' cannot run"):
        causal_tracing(tiny_model("gpt2"), _ids(), subjects=SPANS, method="suffix", progress=False)


def test_sigma_is_the_embedding_std_times_the_embedding_scale():
    for family in ("llama", "gemma3"):
        model = tiny_model(family)
        scale = float(getattr(model.weights.embedding, "embed_scale", 1.0))
        expected = float(model.weights.W_E.detach().float().std()) * scale
        assert embedding_std(model) == pytest.approx(expected, rel=1e-6)


def test_text_prompts_need_their_subject_in_the_prompt():
    from interplab.data.pairs import ContrastPair

    class _Tok:
        is_fast = True

    model = tiny_model("llama")
    model.tokenizer = _Tok()
    with pytest.raises(TracingError, match="'Germany' does not occur in prompt 'The capital of"):
        causal_tracing(model, ["The capital of France is"], subjects=["Germany"], progress=False)
    pair = ContrastPair("Paris is in", "Rome is in", " France", " Italy")
    with pytest.raises(TracingError, match="matches none of the factual templates"):
        factual_subjects([pair])
    good = ContrastPair("The capital of France is", "The capital of Italy is", " Paris", " Rome")
    assert factual_subjects([good]) == ["France"]
