"""Linear probes on synthetic activations and a tiny random Llama: agreement with scikit-learn and
numpy, grouped folds, the control task, padding-aware gathering in one forward, artifacts, the
config, and the result's JSON round trip."""

import json

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import StandardScaler

from interplab import viz
from interplab.configs import ConfigError
from interplab.data import LabelledDataset
from interplab.results import load
from interplab.techniques.activations import ActivationError, Activations, gather_activations
from interplab.techniques.directions import load_directions
from interplab.techniques.probes import (
    ProbeConfig,
    ProbeError,
    ProbeResult,
    drop_shared_groups,
    fit_probes,
    linear_probe,
    probe_activations,
    stratified_folds,
    transfer_activations,
)

from helpers import tiny_model

# Agreement with scikit-learn's LogisticRegression (lbfgs, tol 1e-8) on the same standardised
# features: our full-batch L-BFGS runs in float32, so directions agree to a cosine of 0.9999,
# decision scores to 1e-2 and predictions on at least 99% of examples.
SKLEARN_COSINE = 0.9999
SKLEARN_SCORE_ATOL = 1e-2
SKLEARN_AGREEMENT = 0.99


def _synthetic(n=240, layers=3, d=32, signal=(0.0, 0.4, 1.5), seed=0, group_size=4):
    """Labels in {0,1}; layer l carries the label along one direction with strength signal[l],
    features on very different scales (as real residual streams have)."""
    rng = np.random.default_rng(seed)
    y = np.tile([0, 1], n // 2)
    rng.shuffle(y)
    w = rng.normal(size=d)
    scale = rng.uniform(0.3, 5.0, size=d)
    x = rng.normal(size=(n, layers, d)) * scale
    x += (y[:, None, None] - 0.5) * np.asarray(signal)[None, :, None] * w * scale
    groups = tuple(f"g{i // group_size}" for i in range(n))
    ds = LabelledDataset(
        "synthetic",
        tuple(f"example {i}" for i in range(n)),
        tuple(int(v) for v in y),
        groups,
        ("neg", "pos"),
    )
    acts = Activations(
        x.astype(np.float32),
        tuple(range(layers)),
        "resid_post",
        "last",
        {"name": "synthetic"},
        np.zeros(n, dtype=np.int64),
    )
    return acts, ds, y


def test_logistic_probe_matches_sklearn():
    acts, _, y = _synthetic()
    ours = fit_probes(acts.values, y, probe="logistic", c=0.1)
    for layer in range(acts.values.shape[1]):
        x = acts.values[:, layer].astype(np.float64)
        scaler = StandardScaler().fit(x)
        ref = LogisticRegression(C=0.1, tol=1e-8, max_iter=10_000).fit(scaler.transform(x), y)
        w_ref = ref.coef_[0] / scaler.scale_
        b_ref = ref.intercept_[0] - (scaler.mean_ * w_ref).sum()
        w = ours.directions[layer]
        cosine = w @ w_ref / (np.linalg.norm(w) * np.linalg.norm(w_ref))
        assert cosine > SKLEARN_COSINE
        s, s_ref = x @ w + ours.biases[layer], x @ w_ref + b_ref
        np.testing.assert_allclose(s, s_ref, atol=SKLEARN_SCORE_ATOL)
        assert ((s > 0) == (s_ref > 0)).mean() >= SKLEARN_AGREEMENT
        assert abs(((s > 0) == y).mean() - ((s_ref > 0) == y).mean()) <= 1 - SKLEARN_AGREEMENT


def test_diffmean_probe_matches_numpy():
    acts, _, y = _synthetic()
    ours = fit_probes(acts.values, y, probe="diffmean")
    x = acts.values.astype(np.float64)
    mu_pos, mu_neg = x[y == 1].mean(0), x[y == 0].mean(0)
    direction = mu_pos - mu_neg
    np.testing.assert_allclose(ours.directions, direction, rtol=1e-4, atol=1e-4)
    midpoint = (((mu_pos + mu_neg) / 2) * direction).sum(-1)
    np.testing.assert_allclose(ours.biases, -midpoint, rtol=1e-4, atol=1e-3)


def test_grouped_folds_never_split_a_group_and_stay_balanced():
    rng = np.random.default_rng(3)
    sizes = rng.integers(1, 9, size=60)
    groups = [f"g{i}" for i, s in enumerate(sizes) for _ in range(s)]
    labels = rng.integers(0, 2, size=len(groups))
    folds = stratified_folds(labels, groups, k=5, seed=1)
    for g in set(groups):
        assert len({folds[i] for i, h in enumerate(groups) if h == g}) == 1
    per_fold = np.bincount(folds, minlength=5)
    assert per_fold.min() >= 0.7 * per_fold.mean()
    positive_share = np.array([labels[folds == f].mean() for f in range(5)])
    assert np.ptp(positive_share) < 0.2


def test_ungrouped_folds_are_stratified_and_seeded():
    labels = np.array([0] * 53 + [1] * 47)
    folds = stratified_folds(labels, None, k=5, seed=0)
    for c in (0, 1):
        counts = np.bincount(folds[labels == c], minlength=5)
        assert counts.max() - counts.min() <= 1
    assert np.array_equal(folds, stratified_folds(labels, None, k=5, seed=0))
    assert not np.array_equal(folds, stratified_folds(labels, None, k=5, seed=1))
    with pytest.raises(ProbeError, match="groups cannot fill"):
        stratified_folds(labels, ["a", "b", "c"] * 33 + ["a"], k=5)


@pytest.mark.parametrize("probe", ["logistic", "diffmean"])
def test_control_task_is_at_chance_where_the_probe_is_not(probe):
    acts, ds, y = _synthetic()
    r = probe_activations(acts, ds, probe=probe, folds=5, seed=0, n_resamples=2000)
    assert r.accuracy[2] > 0.95
    assert r.accuracy_ci[0, 2] > r.control_ci[1, 2]
    # The control is near chance at every layer, whatever the signal (three permutations averaged).
    assert np.abs(r.control_accuracy - 0.5).max() < 0.1
    assert r.selectivity_ci[0, 2] > 0.3
    # Layer 0 carries no signal: the probe itself is at chance there.
    assert 0.5 - 0.12 < r.accuracy[0] < 0.5 + 0.12
    # The control permutes labels within folds: each fold keeps its class counts.
    assert r.control_labels.shape == (3, 240) and r.control_scores.shape == (3, 240, 3)
    for permuted in r.control_labels:
        for f in range(5):
            assert permuted[r.folds == f].sum() == y[r.folds == f].sum()
        assert not np.array_equal(permuted, y)
    # Per-example arrays are consistent with the per-layer numbers.
    np.testing.assert_allclose(r.accuracy, r.correct.mean(0))
    assert np.array_equal(r.predictions, (r.scores > 0).astype(int))
    assert r.best_layer == 2 and r.n == 240 and r.n_groups == 60
    s = r.summary()
    assert s.n == 240 and s.n_groups == 60 and bool(s.significant[2])


def test_folds_and_control_are_reproducible_from_the_seed():
    acts, ds, _ = _synthetic(n=120)
    a = probe_activations(acts, ds, probe="diffmean", seed=4, n_resamples=500)
    b = probe_activations(acts, ds, probe="diffmean", seed=4, n_resamples=500)
    assert np.array_equal(a.folds, b.folds) and np.array_equal(a.control_labels, b.control_labels)
    assert np.array_equal(a.accuracy_ci, b.accuracy_ci)


def test_transfer_trains_on_one_set_and_drops_shared_groups():
    acts, ds, _ = _synthetic(n=240)
    train_idx, test_idx = list(range(160)), list(range(120, 240))  # groups g30..g39 overlap
    sub = lambda a, idx: Activations(  # noqa: E731
        a.values[idx], a.layers, a.component, a.position, a.model, a.token_index[idx]
    )
    train, test = ds.subset(train_idx, "A"), ds.subset(test_idx, "B")
    kept, dropped = drop_shared_groups(train, test)
    assert dropped == 40 and not set(kept.groups) & set(train.groups)
    keep = [i for i in test_idx if ds.groups[i] not in set(train.groups)]
    r = transfer_activations(sub(acts, train_idx), train, sub(acts, keep), kept, n_resamples=500)
    assert r.train_dataset == "A" and r.n == 80 and r.accuracy[2] > 0.9
    assert r.provenance.technique == "linear_probe_transfer"
    assert r.train_n == 160 and r.train_sha256 == train.hash


def test_non_binary_labels_are_refused():
    acts, ds, _ = _synthetic(n=24)
    three = LabelledDataset(
        "three", ds.texts, tuple(i % 3 for i in range(24)), ds.groups, ("a", "b", "c")
    )
    with pytest.raises(ProbeError, match="binary"):
        probe_activations(acts, three)


# -- on a tiny random Llama, through the tokenizer ------------------------------------------------


class CharTokenizer:
    """One token per character (id = 2 + code point), BOS = 1, pad = 0: enough for padding tests."""

    pad_token_id = 0
    eos_token_id = 0

    def __call__(self, text, add_special_tokens=True):
        return {"input_ids": [1] * add_special_tokens + [2 + ord(ch) % 250 for ch in text]}

    def decode(self, ids, skip_special_tokens=False):
        return "".join(chr(i - 2) if i >= 2 else "" for i in ids)


@pytest.fixture(scope="module")
def char_model():
    model = tiny_model("llama")
    model.tokenizer = CharTokenizer()
    return model


def test_gather_reads_every_layer_in_one_forward_and_ignores_padding(char_model):
    texts = ["ab", "hello world", "xyz!", "q"]
    calls = []
    handle = char_model.hf.register_forward_pre_hook(lambda *a: calls.append(1))
    try:
        last = gather_activations(char_model, texts, position="last", batch_size=8)
        mean = gather_activations(char_model, texts, position="mean", batch_size=8)
    finally:
        handle.remove()
    assert len(calls) == 2  # one forward per batch, all layers captured at once
    sites = [f"L{i}.resid_post" for i in range(char_model.dims.n_layers)]
    for i, text in enumerate(texts):
        alone = char_model.run(text, capture=sites)  # no padding
        full = torch.stack([alone.cache[s][0] for s in sites])  # [layer, pos, d]
        torch.testing.assert_close(
            torch.as_tensor(last.values[i]), full[:, -1], atol=1e-5, rtol=1e-5
        )
        torch.testing.assert_close(
            torch.as_tensor(mean.values[i]), full.mean(1), atol=1e-5, rtol=1e-5
        )
    assert last.token_index.tolist() == [2, 11, 4, 1]
    named = gather_activations(char_model, ["abcab", "xbz"], position="b")
    assert named.token_index.tolist() == [5, 2]  # the last "b", after the BOS token
    offset = gather_activations(char_model, ["abcab", "xbz"], position=-2)
    assert offset.token_index.tolist() == [4, 2]
    with pytest.raises(ActivationError, match="has no token"):
        gather_activations(char_model, ["abc", "xyz"], position="b")
    with pytest.raises(ActivationError, match="residual"):
        gather_activations(char_model, texts, component="attn_out")  # type: ignore[arg-type]


def test_linear_probe_end_to_end_with_artifacts(char_model, tmp_path):
    rng = np.random.default_rng(0)
    words = ["".join(rng.choice(list("cdefghijk"), size=rng.integers(2, 6))) for _ in range(80)]
    texts = tuple(w + ("a" if i % 2 else "b") for i, w in enumerate(words))
    ds = LabelledDataset(
        "last-letter", texts, tuple(i % 2 for i in range(80)), tuple("" for _ in texts), ("b", "a")
    )
    r = linear_probe(char_model, ds, folds=4, n_resamples=500)
    assert r.layers == [0, 1] and r.n == 80 and r.n_groups is None
    assert (r.accuracy > 0.9).all() and (r.selectivity_ci[0] > 0.2).all()
    assert r.directions.directions.shape == (2, char_model.dims.d_model)
    payload = json.loads(r.to_json(tmp_path / "probe.json").read_text())
    assert payload["technique"] == "linear_probe" and payload["correct"]["shape"] == [80, 2]
    assert payload["summary"]["n"] == 80 and payload["provenance"]["seed"] == 0
    recorded = ProbeConfig(folds=4, n_resamples=500, layers=(0, 1)).to_dict()
    assert payload["provenance"]["config"] == recorded  # the layers actually probed
    fig = viz.figure(r)
    assert fig.axes[0].get_xlabel().startswith("layer")
    for suffix in (".safetensors", ".npz"):
        path = r.save_directions(tmp_path / f"dirs{suffix}")
        loaded = load_directions(path)
        np.testing.assert_allclose(loaded.directions, r.directions.directions, rtol=1e-6)
        assert loaded.layers == (0, 1) and loaded.probe == "logistic"
        sidecar = json.loads(path.with_suffix(".json").read_text())
        assert sidecar["provenance"]["data_sha256"] == ds.hash
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave nothing behind


def test_probe_result_round_trips_through_json_and_draws(tmp_path):
    acts, ds, _ = _synthetic(n=120)
    r = probe_activations(acts, ds, probe="diffmean", n_resamples=300)
    loaded = load(r.to_json(tmp_path / "probe.json"))
    assert isinstance(loaded, ProbeResult)
    for name in ("scores", "correct", "accuracy_ci", "auroc_ci", "control_scores", "folds"):
        a, b = getattr(r, name), getattr(loaded, name)
        assert a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True), name
    np.testing.assert_array_equal(loaded.directions.directions, r.directions.directions)
    assert loaded.position == "last" and loaded.at(2) == r.at(2)
    assert loaded.summary().n == r.summary().n == 120
    assert "at L2.resid_post" in loaded.describe_summary()  # a Site, never a cell index
    assert viz.figure(loaded).axes[0].get_ylabel() == "held-out accuracy"
    for position in (-2, " is"):  # an int offset and a token text keep their type
        moved = ProbeResult.from_dict(r.to_dict() | {"position": position})
        assert moved.position == position


def test_pooled_auroc_and_fold_auroc_match_sklearn():
    acts, ds, y = _synthetic(n=120)
    r = probe_activations(acts, ds, probe="logistic", n_resamples=300)
    for layer in range(3):
        assert r.auroc[layer] == pytest.approx(roc_auc_score(y, r.scores[:, layer]))
        for f in range(5):
            rows = r.folds == f
            assert r.fold_auroc[f, layer] == pytest.approx(
                roc_auc_score(y[rows], r.scores[rows, layer])
            )
    assert (r.auroc_ci[0] <= r.auroc).all() and (r.auroc <= r.auroc_ci[1]).all()


def test_config_lists_valid_choices_and_checks_ranges():
    with pytest.raises(ConfigError, match="'logistic', 'diffmean'"):
        ProbeConfig(probe="svm")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="resid_pre"):
        ProbeConfig(component="attn_out")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="folds"):
        ProbeConfig(folds=1)
    with pytest.raises(ConfigError, match="c "):
        ProbeConfig(c=0.0)
    with pytest.raises(ConfigError, match="n_controls"):
        ProbeConfig(n_controls=0)
    acts, ds, _ = _synthetic(n=120)
    cfg = ProbeConfig(probe="diffmean", n_resamples=300, seed=3)
    by_config = probe_activations(acts, ds, config=cfg)
    by_keywords = probe_activations(acts, ds, probe="diffmean", n_resamples=300, seed=3)
    np.testing.assert_array_equal(by_config.accuracy_ci, by_keywords.accuracy_ci)
    recorded = by_config.provenance.config
    assert recorded["probe"] == "diffmean" and recorded["layers"] == [0, 1, 2]
