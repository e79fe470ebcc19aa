"""Probes and directional ablation on the real embedded model (SmolLM2-135M-Instruct).

For time, the truth probe uses a subsample: the first two phrasings of the capital statements
("The capital of X is Y." and "Y is the capital of X.") for 60 seeded countries, 240 statements
in 60 groups, read at the last token (the full stop, as in Marks & Tegmark 2023). One forward
pass per batch gathers all 30 layers; the same activations serve the transfer test.
"""

import numpy as np
import pytest
import torch

from interplab.data import truth_dataset
from interplab.techniques.activations import Activations, gather_activations
from interplab.techniques.directions import (
    ablation_interventions,
    compare_ablation,
    direction_components,
    norm_matched_random_directions,
    orthogonalized_model,
    unit_direction,
)
from interplab.techniques.probes import (
    probe_activations,
    subsample,
    transfer_activations,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def truth():
    full = truth_dataset(seed=0)
    two_phrasings = full.subset(range(len(full) // 2))  # phrasings 0 and 1, every country
    return subsample(two_phrasings, 240, seed=0)


@pytest.fixture(scope="module")
def acts(smol, truth):
    return gather_activations(smol, truth.texts, position="last", batch_size=64)


def test_truth_probe_beats_its_control_task_at_a_middle_layer(truth, acts):
    assert len(truth) == 240 and len(set(truth.groups)) == 60
    r = probe_activations(acts, truth, probe="logistic", folds=5, seed=0, n_resamples=2000)
    best = r.best_layer
    b = r.at(best)
    assert 5 <= best <= 25, f"best layer {best} is not a middle layer"
    assert b.selectivity > 0.2, r.describe()
    assert b.accuracy_low > b.control_high, r.describe()
    assert b.selectivity_low > 0.0, r.describe()
    # Early layers cannot tell a true capital from a false one; the control never can.
    assert r.accuracy[:3].max() < 0.6
    assert np.abs(r.control_accuracy - 0.5).max() < 0.15
    assert bool(r.summary().significant[r.layers.index(best)])


def test_truth_probe_transfers_across_phrasing_and_countries(truth, acts):
    phrasing_0 = [i for i, t in enumerate(truth.texts) if t.startswith("The capital of")]
    countries = sorted(set(truth.groups))
    train_countries = set(countries[::2])
    train_idx = [i for i in phrasing_0 if truth.groups[i] in train_countries]
    test_idx = [
        i
        for i in range(len(truth))
        if i not in set(phrasing_0) and truth.groups[i] not in train_countries
    ]

    def rows(idx):
        return Activations(
            acts.values[idx],
            acts.layers,
            acts.component,
            acts.position,
            acts.model,
            acts.token_index[idx],
        )

    train, test = truth.subset(train_idx, "phrasing 0"), truth.subset(test_idx, "phrasing 1")
    r = transfer_activations(rows(train_idx), train, rows(test_idx), test, n_resamples=2000)
    b = r.at(r.best_layer)
    assert r.n == 60 and r.train_dataset == "phrasing 0"
    assert b.accuracy_low > 0.5, r.describe()


def test_runtime_ablation_matches_orthogonalised_weights_on_smollm2(smol, acts, truth):
    from interplab.techniques.probes import fit_probes

    layer = 12
    d = fit_probes(acts.values[:, [layer]], truth.labels, probe="diffmean").directions[0]
    prompts = ["The capital of France is Paris.", "The capital of Peru is Oslo."]
    ortho = orthogonalized_model(smol, d)
    runtime = smol.run(prompts, interventions=ablation_interventions(smol, d)).logits
    baked = ortho.run(prompts).logits
    diff = (runtime - baked).abs().max().item()
    assert diff < 1e-3 * (1 + runtime.abs().max().item()), diff
    # SmolLM2 ties its unembedding to the embedding: the copy keeps the original readout.
    assert not ortho.weights.tied_embeddings and smol.weights.tied_embeddings
    assert torch.equal(ortho.weights.W_U, smol.weights.W_E.T)
    left = direction_components(ortho, prompts, d)
    scale = smol.run(prompts, capture=["L29.resid_post"]).cache["L29.resid_post"].norm(dim=-1)
    assert max(float(c.abs().max()) for c in left.values()) < 1e-4 * float(scale.max())


def test_the_probe_direction_is_placed_in_a_distribution_of_random_directions(smol, acts, truth):
    from interplab.techniques.probes import fit_probes

    d = fit_probes(acts.values[:, [12]], truth.labels, probe="diffmean").directions[0]
    prompts = ["The capital of France is", "The capital of Japan is"]
    r = compare_ablation(smol, prompts, d, k=3, max_new_tokens=2, seed=0)
    assert r.random_kl.shape == (2, 20) and (r.random_kl > 0).all()
    s = r.standing()
    assert s.n_random == 20 and 1 <= s.rank <= 21 and 0 <= s.percentile <= 100
    # Random directions' effects spread widely: one draw alone would be no baseline.
    assert r.random_kl.max() > 3 * r.random_kl.min()
    # The batched rows (one random direction per row) equal ablating one direction at a time.
    randoms = norm_matched_random_directions(unit_direction(d), 20, seed=0)
    base = smol.run(prompts[0]).logits[0, -1].double().log_softmax(-1)
    for j in (0, 7):
        run = smol.run(prompts[0], interventions=ablation_interventions(smol, randoms[j]))
        lp = run.logits[0, -1].double().log_softmax(-1)
        kl = float((base.exp() * (base - lp)).sum())
        assert abs(r.random_kl[0, j] - kl) <= 1e-4 * (1 + kl), (j, r.random_kl[0, j], kl)
