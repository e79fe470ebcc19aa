"""Feature pages: streamed examples equal brute force; results round-trip and draw."""

import numpy as np
import pytest
import torch

from interplab import viz
from interplab.dictionaries import (
    DictionaryConfig,
    EvalConfig,
    TensorSource,
    TrainConfig,
    build,
    evaluate,
    train,
)
from interplab.dictionaries._examples import ExampleTracker
from interplab.dictionaries.features import FeaturesConfig, encode_prompts, feature_pages
from interplab.results import load
from interplab.sites import Site
from interplab.viz.dictionaries import write_feature_pages

from helpers import tiny_model

SITE = Site(1, "resid_pre")


@pytest.fixture(scope="module")
def model():
    return tiny_model("llama")


@pytest.fixture(scope="module")
def dictionary():
    return build(DictionaryConfig("topk", d_in=64, d_sae=96, k=6, site=SITE), seed=0).eval()


def windows() -> np.ndarray:
    return np.random.default_rng(3).integers(0, 256, size=(48, 14))


def test_streamed_top_examples_equal_a_sort_of_everything():
    g = torch.Generator().manual_seed(0)
    f = torch.relu(torch.randn(12, 10, 5, generator=g))
    ids = torch.randint(256, (12, 10), generator=g)
    tracker = ExampleTracker(5, top=4, reservoir=6, left=2, right=1, seed=0)
    for start in range(0, 12, 5):
        tracker.add(
            f[start : start + 5], ids[start : start + 5], torch.arange(start, min(start + 5, 12)), 1
        )
    flat = f[:, 1:].reshape(-1, 5)
    for j in range(5):
        assert torch.equal(tracker.top.value[j], flat[:, j].topk(4).values)
        assert tracker.count[j] == int((flat[:, j] > 0).sum())
        best = tracker.top
        w, p = int(best.window[j, 0]), int(best.position[j, 0])
        assert float(f[w, p, j]) == float(best.value[j, 0])
        assert int(best.ctx_ids[j, 0, 2]) == int(ids[w, p])  # the centre of the context
        kept = tracker.reservoir.window[j] >= 0
        assert int(kept.sum()) == min(6, int((flat[:, j] > 0).sum()))
        assert bool((tracker.reservoir.value[j][kept] > 0).all())
    assert int(tracker.hist.sum()) == int((flat > 0).sum())


def test_feature_pages_round_trip_and_draw(model, dictionary, tmp_path):
    cfg = FeaturesConfig(
        n_windows=40, batch_windows=8, top=5, reservoir=12, n_random=3, left=3, right=2
    )
    study = feature_pages(
        model, dictionary, windows(), name="res", n_best=3, n_random=2, config=cfg, progress=False
    )
    assert len(study.pages) == 5 and len(study.index.random_features) == 2
    page = study.pages[next(iter(study.pages))]
    assert page.top[0].activation == page.max_activation
    assert [e.activation for e in page.top] == sorted(
        (e.activation for e in page.top), reverse=True
    )
    assert page.neighbours and len(page.boosted) == 10
    files = write_feature_pages(study.index, study.pages, tmp_path)
    assert (tmp_path / "index.html").exists() and len(files) == 2 * 5 + 2
    for result in (page, study.index):
        loaded = load(result.to_json(tmp_path / "r.json"))
        assert type(loaded) is type(result)
        viz.figure(loaded)
        loaded.summary()
    html = (tmp_path / f"f{page.feature}.html").read_text()
    assert "Top 5 examples" in html and "Nearest features" in html


class CharTokenizer:
    """One token per character (ids below 256), enough for the tiny models."""

    pad_token_id = 0
    eos_token_id = 0

    def __call__(self, text, add_special_tokens=True):
        return {"input_ids": [ord(c) % 256 for c in text]}

    def decode(self, ids):
        return "".join(chr(i) for i in ids)


def test_encoded_prompts_list_the_active_features(dictionary, tmp_path):
    model = tiny_model("llama")
    model.tokenizer = CharTokenizer()
    result = encode_prompts(model, dictionary, ["hello there", "hi"], name="res", top=3)
    assert result.tokens[1] == ["h", "i"]
    ids = model.tokenize(["hello there"]).ids
    f = dictionary.encode(model.activations(ids, [SITE])[SITE])[0]
    for pos, (feats, acts) in enumerate(
        zip(result.features[0], result.activations[0], strict=True)
    ):
        best = f[pos].topk(3)
        assert feats == best.indices[best.values > 0].tolist()
        assert acts == pytest.approx(best.values[best.values > 0].tolist())
        assert result.l0[0][pos] == int((f[pos] > 0).sum())
    loaded = load(result.to_json(tmp_path / "enc.json"))
    viz.figure(loaded)
    assert loaded.summary().n == 13


def test_training_curve_and_evaluation_round_trip_and_draw(model, dictionary, tmp_path):
    src = TensorSource({SITE: torch.randn(3000, 64)}, block_tokens=1000)
    run = train(
        src,
        {"d": DictionaryConfig("topk", d_in=64, d_sae=96, k=6, site=SITE)},
        TrainConfig(total_tokens=2000, batch_tokens=200, log_every=2),
        progress=False,
    )
    ev = evaluate(
        model,
        run.dictionaries["d"],
        windows(),
        config=EvalConfig(n_batches=2, batch_windows=4),
        progress=False,
    )
    for result in (run.curves["d"], ev):
        loaded = load(result.to_json(tmp_path / "r.json"))
        assert type(loaded) is type(result)
        viz.save(loaded, tmp_path / "r.png")
        assert loaded.summary().n >= 2
    assert "FVE" in ev.describe()
