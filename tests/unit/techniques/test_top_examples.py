"""Streaming max-activating examples on a tiny random model, checked against brute force."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from interplab import viz
from interplab.configs import ConfigError
from interplab.results import load
from interplab.sites import Site
from interplab.stats import Summary
from interplab.techniques.top_examples import (
    TopExamplesConfig,
    TopExamplesError,
    TopExamplesResult,
    top_examples,
)
from interplab.techniques.top_examples import state as streaming_state
from interplab.viz.top_examples import page, save_page

from helpers import VOCAB, tiny_model

WINDOWS, LENGTH, BATCH = 12, 16, 4


@pytest.fixture(scope="module")
def model():
    return tiny_model("llama")


def _corpus(n_windows: int, seed: int = 0) -> np.ndarray:
    g = np.random.default_rng(seed)
    return g.integers(0, VOCAB, (n_windows, LENGTH)).astype(np.uint32)


def _direction() -> torch.Tensor:
    return torch.randn(64, generator=torch.Generator().manual_seed(3))


def _brute(model, corpus: np.ndarray) -> np.ndarray:
    """Returns [direction, window * pos] activations, computed in the same batches."""
    v = _direction()
    parts = []
    for start in range(0, len(corpus), BATCH):
        ids = torch.from_numpy(corpus[start : start + BATCH].astype(np.int64))
        run = model.run(ids, capture=["L1.mlp.post", "L0.resid_post"])
        proj = run.cache["L0.resid_post"] @ (v / v.norm())
        parts.append(torch.cat([run.cache["L1.mlp.post"], proj[..., None]], -1).flatten(0, 1))
    return torch.cat(parts).T.numpy()


def _run(model, corpus: np.ndarray, **kwargs):
    return top_examples(
        model,
        corpus,
        site="L1.mlp.post",
        directions={"probe": ("L0.resid_post", _direction())},
        k=5,
        n_random=6,
        n_bins=3,
        per_bin=2,
        n_hist=8,
        context=(3, 2),
        batch_size=BATCH,
        progress=False,
        **kwargs,
    )


def test_streamed_top_k_equals_a_brute_force_sort_exactly(model):
    corpus = _corpus(WINDOWS)
    result = _run(model, corpus)
    acts = _brute(model, corpus)
    assert result.n_directions == acts.shape[0] == 129
    for d in range(acts.shape[0]):
        order = np.argsort(-acts[d], kind="stable")[:5]
        np.testing.assert_array_equal(result.top.score[d], acts[d, order])
        np.testing.assert_array_equal(result.top.window[d], order // LENGTH)
        np.testing.assert_array_equal(result.top.position[d], order % LENGTH)
    assert result.n_tokens == WINDOWS * LENGTH
    np.testing.assert_allclose(result.mean, acts.mean(1), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(result.std, acts.std(1), rtol=1e-4, atol=1e-6)


def test_context_tokens_and_activations_match_the_corpus(model):
    corpus = _corpus(WINDOWS)
    result = _run(model, corpus)
    acts = _brute(model, corpus).reshape(-1, WINDOWS, LENGTH)
    for d in (0, 77, 128):
        for ex in result.contexts(d, "top"):
            w, p = ex.window, ex.position
            lo = max(0, p - 3)
            assert ex.tokens == [str(int(t)) for t in corpus[w, lo : p + 3]]
            np.testing.assert_array_equal(ex.acts, acts[d, w, lo : p + 3])
            assert ex.acts[ex.focus] == ex.score


def test_random_and_quantile_samples_are_valid_distinct_members(model):
    corpus = _corpus(WINDOWS)
    result = _run(model, corpus)
    acts = _brute(model, corpus).reshape(-1, WINDOWS, LENGTH)
    for d in range(result.n_directions):
        for kind in ("random", "quantiles"):
            samples = result.contexts(d, kind)
            where = [(ex.window, ex.position) for ex in samples]
            assert len(set(where)) == len(where)
            for ex in samples:
                assert acts[d, ex.window, ex.position] == ex.score
        assert len(result.contexts(d, "random")) == 6
        for ex in result.contexts(d, "quantiles"):
            lo, hi = result.bin_ranges[d, ex.slot[0]]
            assert lo <= ex.score <= hi
        fractions = result.bin_fractions[d]
        assert fractions[0, 0] == 0.0 and np.nanmax(fractions) == 1.0


def test_state_size_does_not_grow_with_the_corpus(model):
    small = _run(model, _corpus(WINDOWS), max_tokens=4 * LENGTH)
    large = _run(model, _corpus(3 * WINDOWS))
    assert small.n_tokens == 4 * LENGTH and large.n_tokens == 3 * WINDOWS * LENGTH
    assert small.state_bytes == large.state_bytes


def test_stopping_early_changes_nothing(model):
    corpus = _corpus(4)
    a, b = _run(model, corpus), _run(model, corpus, stop_early=False)
    np.testing.assert_array_equal(a.top.score, b.top.score)
    np.testing.assert_array_equal(a.random.window, b.random.window)


def test_an_interrupted_pass_resumes_from_its_checkpoint(model, tmp_path, monkeypatch):
    corpus = _corpus(WINDOWS)
    full = _run(model, corpus)
    ckpt = tmp_path / "pass.ckpt"
    original = streaming_state.State.update
    calls = {"n": 0}

    def flaky(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(streaming_state.State, "update", flaky)
    with pytest.raises(KeyboardInterrupt):
        _run(model, corpus, checkpoint=ckpt, checkpoint_every=1)
    assert ckpt.is_file()
    monkeypatch.setattr(streaming_state.State, "update", original)
    resumed = _run(model, corpus, checkpoint=ckpt)
    assert not ckpt.exists()
    np.testing.assert_array_equal(resumed.top.score, full.top.score)
    np.testing.assert_array_equal(resumed.random.window, full.random.window)
    np.testing.assert_array_equal(resumed.quantiles.window, full.quantiles.window)


def test_html_and_json_are_written(model, tmp_path):
    result = _run(model, _corpus(4))
    html = save_page(result, tmp_path / "top.html", directions=["probe", 0]).read_text()
    assert "probe" in html and "background:rgba(" in html and "quantile bins" in html
    assert result.to_json(tmp_path / "top.json").stat().st_size > 0
    assert result.n_tokens == 4 * LENGTH


def test_result_round_trips_through_json_and_draws_the_same_page(model, tmp_path):
    result = _run(model, _corpus(4))
    loaded = load(result.to_json(tmp_path / "top.json"))
    assert isinstance(loaded, TopExamplesResult)
    for kind in ("top", "random", "quantiles"):
        for field in ("score", "window", "position", "context_ids", "context_acts"):
            a, b = getattr(getattr(result, kind), field), getattr(getattr(loaded, kind), field)
            assert a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True), (kind, field)
    assert loaded.units == result.units and loaded.labels[-1] == "probe"
    assert loaded.sites[0] == Site(1, "mlp.post") and loaded.labels[0] == "L1.mlp.post[0]"
    assert page(loaded) == page(result)
    assert viz.figure(loaded, limit=4).axes[0].get_xlabel() == "activation"


def test_summary_is_the_mean_over_random_tokens_per_direction(model):
    result = _run(model, _corpus(WINDOWS))
    s = result.summary()
    assert isinstance(s, Summary) and s.n == 6 and s.mean.shape == (result.n_directions,)
    np.testing.assert_allclose(s.mean, result.random.score.mean(1), rtol=1e-5, atol=1e-6)


def test_config_and_inputs_are_checked(model):
    with pytest.raises(ConfigError, match="n_hist"):
        TopExamplesConfig(n_bins=5, n_hist=4)
    with pytest.raises(ConfigError, match="k must be"):
        TopExamplesConfig(k=0)
    with pytest.raises(TopExamplesError, match="outside"):
        top_examples(model, _corpus(2), site="L1.mlp.post", neurons=[999], progress=False)
    with pytest.raises(TopExamplesError, match="finite and non-zero"):
        top_examples(model, _corpus(2), site=None, progress=False,
                     directions={"bad": ("L0.resid_post", torch.full((64,), float("nan")))})  # fmt: skip
    cfg = TopExamplesConfig(k=5, n_random=6, n_bins=3, per_bin=2, n_hist=8, context=(3, 2),
                            batch_size=BATCH)  # fmt: skip
    by_config = top_examples(model, _corpus(4), site="L1.mlp.post", config=cfg, progress=False,
                             directions={"probe": ("L0.resid_post", _direction())})  # fmt: skip
    by_keywords = _run(model, _corpus(4))
    np.testing.assert_array_equal(by_config.top.score, by_keywords.top.score)
    assert by_config.provenance.config == cfg.to_dict()
