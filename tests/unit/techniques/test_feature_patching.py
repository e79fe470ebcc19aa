"""Feature sites in the techniques: feature patching equals splicing edits one by one, its
first-order estimate equals the derivative along the feature's decoder row, and attach/resolve
and top examples accept features like any other site."""

import numpy as np
import pytest
import torch

from interplab.core import Apply
from interplab.dictionaries import DictionaryConfig, DictionaryError, build, spliced
from interplab.dictionaries.attach import attach, capture, detach, resolve
from interplab.results import load
from interplab.sites import FeatureSite, Site, SiteError, parse_any
from interplab.techniques.metrics import Metric, Targets
from interplab.techniques.patching import feature_patching
from interplab.techniques.top_examples import top_examples
from interplab.viz import figure

from helpers import tiny_model, token_pairs, tokens

SITE = Site(1, "resid_pre")


@pytest.fixture(scope="module")
def model():
    m = tiny_model("llama")
    d = build(DictionaryConfig("topk", d_in=64, d_sae=96, k=12, site=SITE), seed=0).eval()
    with torch.no_grad():
        d.W_dec.mul_(3.0)  # features large enough to move the tiny model's logits
    attach(m, "res", d)
    return m


def test_feature_sites_parse_and_resolve(model):
    fs = parse_any("L1.resid_pre.sae[res].f7")
    assert fs == FeatureSite(SITE, "res", 7) and isinstance(parse_any("L1.resid_pre"), Site)
    assert resolve(model, fs).features == [7]
    assert len(resolve(model, "L1.resid_pre.sae[res]").features) == 96
    with pytest.raises(DictionaryError, match="attached: res"):
        resolve(model, "L1.resid_pre.sae[other].f1")
    with pytest.raises(DictionaryError, match=r"writes L1\.resid_pre"):
        resolve(model, "L2.resid_pre.sae[res].f1")
    with pytest.raises(DictionaryError, match=r"0\.\.95"):
        resolve(model, "L1.resid_pre.sae[res].f96")
    with pytest.raises(SiteError, match="cannot parse feature site"):
        parse_any("L1.resid_pre.sae[res].g7")


def test_capture_reads_features_and_the_error_term_without_changing_the_model(model):
    ids = tokens(2, 9)
    d = model.attached["res"]
    got = capture(model, ids, ["L1.resid_pre.sae[res]", "L1.resid_pre.sae[res].error", SITE])
    x = got[SITE]
    assert torch.equal(got[FeatureSite(SITE, "res")], d.encode(x))
    assert torch.allclose(got[FeatureSite(SITE, "res", error=True)] + d(x), x, atol=1e-6)


def _metric(model, ids, answer, wrong, interventions=(), grad=False):
    logits = model.run(ids, interventions=list(interventions), grad=grad).logits[:, -1]
    m = Metric("logit_diff")
    return m(logits, Targets(answer, wrong, torch.log_softmax(logits.float(), -1)))


def test_exact_feature_patching_equals_splicing_each_feature_one_example_at_a_time(model):
    tp = token_pairs(3, 7, positions=(2, 4))
    feats = ["L1.resid_pre.sae[res].f3", "L1.resid_pre.sae[res].f11"]
    d = model.attached["res"]
    with torch.no_grad():
        clean_f = d.encode(model.run(tp.clean, capture=[SITE]).cache[SITE])
        corrupt_f = d.encode(model.run(tp.corrupt, capture=[SITE]).cache[SITE])
    r = feature_patching(model, tp, feats, progress=False, record=False)
    assert r.effects.shape == (3, 2, 7)
    expected = np.zeros_like(r.effects)
    with spliced(model, {"res": d}) as sp:
        for i in range(3):
            ids = tp.corrupt[i : i + 1]
            base = _metric(model, ids, tp.answer[i : i + 1], tp.wrong[i : i + 1])
            for j, f in enumerate((3, 11)):
                for p in range(7):
                    edit = sp.set(feats[j], float(clean_f[i, p, f]), positions=[p])
                    with sp.editing([edit]):
                        v = _metric(model, ids, tp.answer[i : i + 1], tp.wrong[i : i + 1])
                    expected[i, j, p] = float(v - base)
    assert np.allclose(r.effects, expected, atol=1e-5)
    assert np.allclose(r.clean_values[:, 0], clean_f[..., 3].numpy())
    assert np.allclose(r.corrupt_values[:, 1], corrupt_f[..., 11].numpy())
    assert np.abs(r.effects).max() > 1e-4  # the test can fail: something moved


def test_the_estimate_is_the_derivative_along_the_decoder_row(model):
    tp = token_pairs(2, 6, positions=(1, 3))
    r = feature_patching(
        model, tp, "L1.resid_pre.sae[res].f5", method="attribution", progress=False, record=False
    )
    d = model.attached["res"]
    delta = torch.tensor(r.clean_values - r.corrupt_values)[:, 0]  # [n, T]
    row = d.W_dec.detach()[5]
    for p in range(6):
        alpha = torch.zeros(2, requires_grad=True)

        def add(x, p=p, alpha=alpha):
            x = x.clone()
            x[:, p] = x[:, p] + (alpha * delta[:, p])[:, None] * row
            return x

        v = _metric(model, tp.corrupt, tp.answer, tp.wrong, [Apply(SITE, add)], grad=True)
        (g,) = torch.autograd.grad(v.sum(), alpha)
        assert np.allclose(r.attribution[:, 0, p], g.numpy(), atol=1e-5)
    assert np.array_equal(r.effects, r.attribution)


def test_a_whole_dictionary_patches_the_top_features_beside_random_ones(model, tmp_path):
    tp = token_pairs(3, 7, positions=(2, 4))
    r = feature_patching(
        model, tp, "L1.resid_pre.sae[res]", top=4, baseline=2, progress=False, record=False
    )
    assert r.ranked == 96 and len(r.features) == 6
    full = feature_patching(
        model, tp, "L1.resid_pre.sae[res]", method="attribution", progress=False, record=False
    )
    top = np.abs(full.attribution.mean(0)).max(-1).argsort()[::-1][:4]
    assert [f.feature for f in r.features[:4]] == sorted(top.tolist(), key=top.tolist().index)
    r.to_json(tmp_path / "r.json")
    back = load(tmp_path / "r.json")
    assert back.features == r.features and np.array_equal(back.effects, r.effects)
    assert figure(back) is not None
    assert "sae[res].f" in back.describe()


def test_per_all_patches_every_position_at_once(model):
    tp = token_pairs(2, 6, positions=(2,))
    r = feature_patching(
        model, tp, ["L1.resid_pre.sae[res].f3"], per="all", progress=False, record=False
    )
    assert r.effects.shape == (2, 1) and r.attribution.shape == (2, 1)


def test_top_examples_read_features(model):
    corpus = tokens(6, 10).numpy()
    r = top_examples(
        model, corpus, site="L1.resid_pre.sae[res]", neurons=[2, 5], k=3, n_random=2,
        progress=False, record=False,
    )  # fmt: skip
    d = model.attached["res"]
    with torch.no_grad():
        f = d.encode(model.run(torch.from_numpy(corpus), capture=[SITE]).cache[SITE])
    assert r.units[0].label == "L1.resid_pre.sae[res].f2"
    assert np.isclose(r.top.score[1, 0], float(f[..., 5].max()), atol=1e-5)


def test_detached_dictionaries_are_not_found(model):
    m = tiny_model("llama")
    attach(m, "tmp", model.attached["res"])
    detach(m, "tmp")
    with pytest.raises(DictionaryError, match="attached: none"):
        resolve(m, "L1.resid_pre.sae[tmp].f1")


def test_a_feature_steering_vector_equals_steering_the_feature_in_the_splice(model):
    from interplab.techniques.steering import feature_vector, steering_interventions

    v = feature_vector(model, "L1.resid_pre.sae[res].f9")
    assert v.layers == [1] and v.component == "resid_pre"
    ids = tokens(2, 8)
    rows = torch.tensor(v.vectors)[None].expand(2, 1, -1) * 4.0
    with torch.no_grad():
        steered = model.run(ids, interventions=steering_interventions(v, rows)).logits
        with spliced(model, {"res": model.attached["res"]}) as sp:
            edit = sp.steer("L1.resid_pre.sae[res].f9", 4.0)
            with sp.editing([edit]):
                expected = model.run(ids).logits
    assert torch.allclose(steered, expected, atol=1e-5)
    assert not torch.allclose(steered, model.forward(ids), atol=1e-3)
