"""Dictionaries on the real model: harvest, train, evaluate, splice, pages, encode, SAELens files."""

import numpy as np
import pytest
import torch

from interplab.data import tokenize_corpus
from interplab.dictionaries import (
    DictionaryConfig,
    EvalConfig,
    HarvestConfig,
    ModelSource,
    TrainConfig,
    evaluate,
    harvest,
    load_dictionary,
    save_dictionary,
    spliced,
    train,
)
from interplab.dictionaries.features import FeaturesConfig, encode_prompts, feature_pages
from interplab.sites import Site

pytestmark = pytest.mark.slow
SITE = Site(6, "resid_pre")


@pytest.fixture(scope="module")
def trained(smol, tmp_path_factory):
    folder = tmp_path_factory.mktemp("sae")
    windows = tokenize_corpus("lee", smol.tokenizer, 64, progress=False).windows
    source = ModelSource(
        smol, windows[:-16], [SITE], HarvestConfig(block_windows=24, batch_windows=8)
    )
    shards = harvest(source, folder / "harvest", max_tokens=3000, progress=False)
    config = DictionaryConfig("topk", d_in=576, d_sae=1152, k=16, site=SITE)
    run = train(
        shards,
        {"res6": config},
        TrainConfig(total_tokens=4 * shards.tokens, batch_tokens=512, lr=1e-3, log_every=2),
        out=folder / "train",
        progress=False,
    )
    return windows, run, folder


def test_a_small_sae_learns_and_is_evaluated_honestly(smol, trained):
    windows, run, folder = trained
    curve = run.curves["res6"]
    assert curve.fve[-1] > curve.fve[0]
    result = evaluate(
        smol,
        run.dictionaries["res6"],
        windows,
        name="res6",
        config=EvalConfig(n_batches=2, batch_windows=8),
        progress=False,
    )
    assert 0.2 < result.fve < 1 and result.l0 <= 16
    assert result.ce_clean < result.ce_spliced < result.ce_zero  # splicing costs less than deleting
    assert 0 < result.ce_recovered < 1 and result.kl > 0
    assert (folder / "train" / "res6" / "training.json").exists()


def test_splicing_with_the_error_term_leaves_the_logits_unchanged(smol, trained):
    _, run, _ = trained
    prompt = "The Eiffel Tower is in the city of"
    clean = smol.forward(prompt)
    with spliced(smol, run.dictionaries) as sp:
        out = sp.run(prompt, capture=["L6.resid_pre.sae[res6]"])
        assert torch.equal(out.logits, clean)
        f = out["L6.resid_pre.sae[res6]"][0, -1]
        top = int(f.argmax())
        steered = sp.run(
            prompt, edits=[sp.steer(f"L6.resid_pre.sae[res6].f{top}", 10 * float(f[top]))]
        )
    assert not torch.equal(steered.logits, clean)


def test_pages_encode_and_saelens_files(smol, trained, tmp_path):
    windows, run, _ = trained
    d = run.dictionaries["res6"]
    study = feature_pages(
        smol,
        d,
        windows,
        name="res6",
        n_best=2,
        n_random=2,
        config=FeaturesConfig(n_windows=16, batch_windows=8),
        progress=False,
    )
    page = next(iter(study.pages.values()))
    assert page.top and page.boosted and all(isinstance(t, str) for t, _ in page.boosted)
    encoded = encode_prompts(smol, d, ["Paris is the capital of France"], name="res6")
    assert encoded.tokens[0][1:3] == [
        t for t in smol.to_str_tokens("Paris is the capital of France")[1:3]
    ]
    save_dictionary(d, tmp_path / "saelens", "saelens", model_name="smollm2-135m")
    again = load_dictionary(tmp_path / "saelens")
    x = smol.activations("Paris is the capital of France", [SITE])[SITE]
    assert torch.equal(again.encode(x), d.encode(x)) and again.site == SITE
    assert np.isfinite(page.summary().mean)
