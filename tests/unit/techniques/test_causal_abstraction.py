"""Causal abstraction on tiny models: high-level models, counterfactual data, interchange
interventions (identity source, a brute-force loop, both computation paths), DAS and Boundless
DAS recovering a planted subspace, results, figures and the adapters to other techniques."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from interplab import results as results_module
from interplab import viz
from interplab.core.interventions import Patch
from interplab.results.causal_abstraction import DASConfig, InterchangeResult
from interplab.techniques.causal_abstraction import (
    AbstractionError,
    AbstractionTask,
    CausalModel,
    DASResult,
    Subspace,
    counterfactual_dataset,
    das,
    interchange,
    load_task,
    principal_cosines,
    random_basis,
    subspace_ablation_interventions,
    subspace_direction,
    subspace_from_basis,
    subspace_patch,
    subspace_steering_vector,
)
from interplab.techniques.causal_abstraction.runner import (
    HookRunner,
    PartialRunner,
    full_edit,
    subspace_edit,
)
from interplab.techniques.directions import ablation_interventions
from interplab.techniques.steering import steering_interventions

from helpers import tiny_model

D = 64


def planted_model(seed: int = 0):
    """Returns a tiny Llama whose residual stream carries one binary variable along a known unit
    direction ``u`` and nowhere else it can reach the answer: the embedding of tokens >= 128 has
    +1 along ``u``, of the others -1, with every other part of the embedding orthogonal to ``u``;
    no attention or MLP output writes along ``u``; the final norm has unit weights and the two
    answer tokens (1, 2) unembed as ±0.25 u. So at every residual site the answer is the sign of
    ``x · u``: the last token's class."""
    m = tiny_model("llama")
    hf = m.hf
    g = torch.Generator().manual_seed(seed + 7)
    u = torch.randn(D, generator=g)
    u /= u.norm()
    p = torch.eye(D) - torch.outer(u, u)
    with torch.no_grad():
        e = hf.model.embed_tokens.weight
        cls = (torch.arange(e.shape[0]) >= 128).float() * 2 - 1
        e.copy_(0.3 * e @ p + cls[:, None] * u)
        for layer in hf.model.layers:
            layer.self_attn.o_proj.weight.copy_(0.3 * p @ layer.self_attn.o_proj.weight)
            layer.mlp.down_proj.weight.copy_(0.3 * p @ layer.mlp.down_proj.weight)
        hf.model.norm.weight.fill_(1.0)
        hf.lm_head.weight[1] = 0.25 * u
        hf.lm_head.weight[2] = -0.25 * u
    return m, u


def planted_task(length: int = 6) -> AbstractionTask:
    cm = CausalModel(
        variables={"cls": lambda e, v: e[-1] >= 128},
        output=lambda e, v: 1 if v["cls"] else 2,
        name="last_token_class",
    )
    return AbstractionTask(
        cm,
        sample=lambda r: [r.randrange(3, 256) for _ in range(length)],
        prompt=lambda e: e,
        candidates=lambda e: (1, 2),
        name="planted",
        slots=("A", "B"),
    )


def ragged_task() -> AbstractionTask:
    """Prompts of 4..9 tokens and four candidates (answers need not be right: filter off)."""
    cm = CausalModel(
        variables={"x": lambda e, v: e[0] % 4, "y": lambda e, v: (v["x"] + e[-1]) % 4},
        output=lambda e, v: 10 + v["y"],
        name="ragged",
    )
    return AbstractionTask(
        cm,
        sample=lambda r: [r.randrange(3, 256) for _ in range(r.randrange(4, 10))],
        prompt=lambda e: e,
        candidates=lambda e: (10, 11, 12, 13),
        name="ragged",
    )


@pytest.fixture(scope="module")
def planted():
    return planted_model()


@pytest.fixture(scope="module")
def planted_data(planted):
    m, _ = planted
    return counterfactual_dataset(m, planted_task(), ["cls"], n=200, seed=0, progress=False)


@pytest.fixture(scope="module")
def das_result(planted, planted_data) -> DASResult:
    m, _ = planted
    return das(m, planted_data, "L0.resid_post", k=1, steps=150, lr=0.02, progress=False)


# -- the high-level model --------------------------------------------------------------------


def test_causal_model_recomputes_downstream_of_an_intervention() -> None:
    cm = CausalModel(
        variables={"a": lambda e, v: e["p"] + 1, "b": lambda e, v: v["a"] * 10},
        output=lambda e, v: v["b"] + e["q"],
    )
    assert cm.predict({"p": 1, "q": 3}) == 23
    assert cm.predict({"p": 1, "q": 3}, {"a": 5}) == 53
    assert cm.predict({"p": 1, "q": 3}, {"b": 7}) == 10
    # The base keeps its own q; a comes from the source.
    assert cm.counterfactual({"p": 1, "q": 3}, {"p": 4, "q": 0}, ["a"]) == 53
    with pytest.raises(AbstractionError, match="no variable c; variables: a, b"):
        cm.counterfactual({"p": 1, "q": 3}, {"p": 4, "q": 0}, ["c"])
    with pytest.raises(AbstractionError, match="at least one variable"):
        cm.check_variables([])
    with pytest.raises(AbstractionError, match="no variables"):
        CausalModel(variables={}, output=lambda e, v: 0)


def test_load_task_reads_module_function_and_explains_mistakes() -> None:
    task = load_task("interplab.techniques.causal_abstraction.tasks:ioi_position")
    assert task.name == "ioi_position"
    assert task.causal_model.predict({"a": "Mary", "b": "John", "io_first": True}) == " Mary"
    with pytest.raises(AbstractionError, match=r"'package\.module:function'"):
        load_task("no_colon_here")
    with pytest.raises(AbstractionError, match="cannot import 'no_such_module_xyz'"):
        load_task("no_such_module_xyz:f")
    with pytest.raises(AbstractionError, match="has no attribute 'nope'"):
        load_task("interplab.techniques.causal_abstraction.tasks:nope")
    with pytest.raises(AbstractionError, match="not an AbstractionTask"):
        load_task("interplab.techniques.causal_abstraction.tasks:IOI_TEMPLATE")


def test_counterfactual_dataset_labels_follow_the_high_level_model(planted, planted_data) -> None:
    data = planted_data
    assert data.n == 200 and data.dropped == 0  # the planted model is always right
    for b, s, label, base_label in zip(
        data.base_ids, data.source_ids, data.labels, data.base_labels, strict=True
    ):
        assert label == (0 if s[-1] >= 128 else 1)
        assert base_label == (0 if b[-1] >= 128 else 1)
    train, test = data.split(0.3, seed=0)
    assert (train.n, test.n) == (140, 60)
    assert sorted(train.base_prompts + test.base_prompts) == sorted(data.base_prompts)
    shuffled = data.shuffled_labels(1)
    assert sorted(shuffled) == sorted(data.labels) and not np.array_equal(shuffled, data.labels)


def test_counterfactual_dataset_refuses_answers_outside_the_candidates(planted) -> None:
    m, _ = planted
    bad = AbstractionTask(
        planted_task().causal_model,
        sample=lambda r: [5, 6, r.randrange(3, 256)],
        prompt=lambda e: e,
        candidates=lambda e: (3, 4),
        name="bad",
    )
    with pytest.raises(AbstractionError, match="not among the candidates"):
        counterfactual_dataset(m, bad, ["cls"], n=4, progress=False)


def test_filter_drops_pairs_the_network_gets_wrong(planted) -> None:
    m, _ = planted
    # A high-level model that disagrees with the network on every low token: those pairs drop.
    cm = CausalModel(
        variables={"c": lambda e, v: e[-1] >= 64}, output=lambda e, v: 1 if v["c"] else 2
    )
    task = AbstractionTask(
        cm,
        sample=lambda r: [r.randrange(3, 256) for _ in range(5)],
        prompt=lambda e: e,
        candidates=lambda e: (1, 2),
    )
    data = counterfactual_dataset(m, task, ["c"], n=20, seed=1, progress=False)
    assert data.dropped > 0 and data.drawn >= data.n + data.dropped
    for b, s in zip(data.base_ids, data.source_ids, strict=True):
        assert not 64 <= b[-1] < 128 and not 64 <= s[-1] < 128


# -- interchange interventions ----------------------------------------------------------------


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_identity_source_changes_nothing(family: str) -> None:
    m = tiny_model(family)
    data = counterfactual_dataset(
        m, ragged_task(), ["x"], n=12, seed=3, filter_correct=False, progress=False
    )
    same = data.subset(range(data.n))
    object.__setattr__(same, "source_ids", list(same.base_ids))
    runner = HookRunner(m, same, [m.sites("L1.resid_pre")[0]], (-1, 0))
    rows = torch.arange(same.n)
    toks = runner.base
    plain = m.run(toks).logits
    for edit in (full_edit(), subspace_edit(random_basis(D, 5, 0).float())):
        patched = m.run(toks, interventions=[runner._apply(runner.sites[0], rows, edit)]).logits
        assert torch.equal(patched, plain)


def _brute_force(m, data, site, position, basis):
    """One example at a time: capture the source, compute the patched vector by hand, and run
    the base alone with a plain `Patch` at that position."""
    preds = []
    for b, s, cand in zip(data.base_ids, data.source_ids, data.candidates, strict=True):
        src = m.run(torch.tensor([s]), capture=[site]).cache[site][0, position]
        base = m.run(torch.tensor([b]), capture=[site]).cache[site][0, position]
        if basis is None:
            value = src
        else:
            bb = basis.float()
            value = base + ((src - base) @ bb) @ bb.T
        pos = position % len(b)
        logits = m.run(
            torch.tensor([b]), interventions=[Patch(site, value, positions=[pos])]
        ).logits
        preds.append(int(logits[0, -1, torch.as_tensor(cand)].argmax()))
    return np.asarray(preds)


@pytest.mark.parametrize(("family", "site"), [("llama", "L1.resid_pre"), ("gpt2", "L0.attn.z.h2")])
@pytest.mark.parametrize("k", [0, 3])
def test_iia_matches_a_brute_force_loop(family: str, site: str, k: int) -> None:
    m = tiny_model(family)
    data = counterfactual_dataset(
        m, ragged_task(), ["x"], n=16, seed=5, filter_correct=False, progress=False
    )
    width = 16 if "attn" in site else D
    basis = None if k == 0 else random_basis(width, k, 1)
    result = interchange(m, data, site, positions=-1, subspace=basis, path="hooks")
    expected = _brute_force(m, data, m.sites(site)[0], -1, basis)
    np.testing.assert_array_equal(result.predictions, expected)
    assert result.iia == pytest.approx(float((expected == data.labels).mean()))
    assert result.n == 16 and result.k == k
    s = result.summary()
    assert s.n == 16 and float(s.ci_low) <= result.iia <= float(s.ci_high)


def test_partial_path_equals_the_hook_path(planted, planted_data) -> None:
    m, _ = planted
    data = planted_data.subset(range(40))
    site = [m.sites("L1.resid_pre")[0]]
    hooks = HookRunner(m, data, site, (-1, 2))
    fast = PartialRunner(m, data, site, (-1, 2))
    rows = torch.arange(40)
    basis = random_basis(D, 4, 2).float()
    for edit in (None, full_edit(), subspace_edit(basis)):
        a, b = hooks.logits(rows, edit), fast.logits(rows, edit)
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
    via_partial = interchange(m, data, site[0], positions=(-1, 2), subspace=basis, path="partial")
    via_hooks = interchange(m, data, site[0], positions=(-1, 2), subspace=basis, path="hooks")
    np.testing.assert_array_equal(via_partial.predictions, via_hooks.predictions)


def test_interchange_refuses_bad_sites_and_bases(planted, planted_data) -> None:
    m, _ = planted
    data = planted_data.subset(range(8))
    with pytest.raises(AbstractionError, match="name one head"):
        interchange(m, data, "L0.attn.z")
    with pytest.raises(AbstractionError, match="read-only"):
        interchange(m, data, "L0.attn.pattern.h1")
    with pytest.raises(AbstractionError, match="not orthonormal"):
        interchange(m, data, "L0.resid_post", subspace=np.ones((D, 2)))
    with pytest.raises(AbstractionError, match=r"\[64, k\]"):
        interchange(m, data, "L0.resid_post", subspace=np.eye(32)[:, :2])
    with pytest.raises(AbstractionError, match="partial path cannot run"):
        interchange(m, data, "L0.mlp_out", path="partial")
    with pytest.raises(AbstractionError, match="name the same token"):
        interchange(m, data, "L0.resid_post", positions=(5, -1))


# -- DAS ----------------------------------------------------------------------------------------


def test_das_recovers_the_planted_direction_and_a_random_rotation_does_not(
    planted, das_result
) -> None:
    _, u = planted
    r = das_result
    cos = float(principal_cosines(r.subspace.basis, u.numpy()[:, None])[0])
    assert cos > 0.9, cos
    assert r.iia("learned") >= 0.95
    assert r.iia("full") == 1.0
    # Baselines: a random 1-d subspace barely overlaps u and does what no intervention does.
    random_cos = float(principal_cosines(random_basis(D, 1, 100).numpy(), u.numpy()[:, None])[0])
    assert random_cos < 0.5
    assert r.iia("random") <= 0.7 and r.iia("random") == pytest.approx(r.iia("none"), abs=0.1)
    assert r.iia("control") <= 0.7
    diff = r.difference("random")
    assert float(diff.ci_low) > 0.2 and float(diff.p_value) < 0.001
    assert r.train_loss[-10:].mean() < r.train_loss[:5].mean()
    assert len(r.train_loss) == len(r.control_loss) == 150
    rows = {row.condition: row for row in r.rows()}
    assert rows["learned"].n == r.n == 60 and rows["learned"].low <= rows["learned"].iia


def test_boundless_das_finds_a_small_subspace_containing_the_direction(
    planted, planted_data
) -> None:
    m, u = planted
    r = das(
        m,
        planted_data,
        "L1.resid_pre",
        method="boundless",
        steps=150,
        lr=0.02,
        n_random=2,
        control="none",
        progress=False,
    )
    assert r.k <= 4 and r.conditions == ["learned", "random", "full", "none"]
    assert float(r.subspace.overlap(u.numpy()[:, None])[0]) > 0.9
    assert r.iia("learned") >= 0.95 and r.iia("random") <= 0.7
    assert r.boundary[0] > r.boundary[-1]  # the soft size shrinks as the boundary is learned


def test_das_is_seeded(planted, planted_data, das_result) -> None:
    m, _ = planted
    again = das(m, planted_data, "L0.resid_post", k=1, steps=150, lr=0.02, progress=False)
    np.testing.assert_array_equal(again.subspace.basis, das_result.subspace.basis)
    np.testing.assert_array_equal(again.outcomes, das_result.outcomes)


def test_das_refuses_bad_options(planted, planted_data) -> None:
    m, _ = planted
    from interplab.configs import ConfigError

    with pytest.raises(ConfigError, match="method='pca' is not valid"):
        DASConfig(site=m.sites("L0.resid_post")[0], method="pca")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="test_fraction"):
        das(m, planted_data, "L0.resid_post", test_fraction=1.5, progress=False)
    with pytest.raises(AbstractionError, match="exceeds the site's width"):
        das(m, planted_data, "L0.resid_post", k=65, steps=1, progress=False)


# -- results, figures and the adapters --------------------------------------------------------


def test_results_round_trip_through_json(das_result, tmp_path) -> None:
    path = das_result.to_json(tmp_path / "das.json")
    back = results_module.load(path)
    assert isinstance(back, DASResult)
    np.testing.assert_array_equal(back.outcomes, das_result.outcomes)
    np.testing.assert_array_equal(back.subspace.basis, das_result.subspace.basis)
    assert back.subspace.site == das_result.site and back.conditions == das_result.conditions
    sub = Subspace.from_json(das_result.subspace.to_json(tmp_path / "u.json"))
    np.testing.assert_array_equal(sub.basis, das_result.subspace.basis)
    assert Subspace.from_json(path).provenance == das_result.subspace.provenance
    with pytest.raises(Exception, match="not orthonormal"):
        Subspace(**{**das_result.subspace.__dict__, "basis": np.ones((D, 1))})


def test_figures_draw_from_results(das_result, planted, planted_data, tmp_path) -> None:
    m, _ = planted
    written = viz.save(das_result, tmp_path / "das.png")
    assert written and written[0].stat().st_size > 5000
    ic = interchange(m, planted_data.subset(range(20)), "L0.resid_post")
    assert isinstance(ic, InterchangeResult)
    assert viz.save(ic, tmp_path / "ic.png")[0].stat().st_size > 3000
    page = viz.html(das_result)
    # The sentence under the figure (not the base64 image, which may hold any letters).
    assert "held-out IIA" in page.split("<pre>")[-1] and "learned" in page.split("<pre>")[-1]


def test_a_saved_subspace_plugs_into_ablation_steering_and_patching(
    planted, planted_data, das_result, tmp_path
) -> None:
    m, u = planted
    sub = Subspace.from_json(das_result.subspace.to_json(tmp_path / "u.json"))
    toks = torch.tensor(planted_data.base_ids[:16])

    # Directional ablation: the k=1 direction, and the basis form, give the same edit.
    direction = subspace_direction(sub)
    a = m.run(toks, interventions=ablation_interventions(m, direction)).logits
    b = m.run(toks, interventions=subspace_ablation_interventions(m, sub)).logits
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    plain = m.run(toks).logits
    gap = lambda x: (x[:, -1, 1] - x[:, -1, 2]).abs()  # noqa: E731
    assert float(gap(a).mean()) < 0.5 * float(gap(plain).mean())  # the answer signal collapses

    # Steering: from slot B's mean coordinates towards slot A's turns every answer into A.
    vector = subspace_steering_vector(sub, "A", "B")
    assert vector.layers == [0] and vector.component == "resid_post"
    rows = torch.as_tensor(vector.vectors)[None].repeat(16, 1, 1)
    steered = m.run(toks, interventions=steering_interventions(vector, rows, positions=[-1])).logits
    assert bool((steered[:, -1, 1] > steered[:, -1, 2]).all())
    assert not bool((plain[:, -1, 1] > plain[:, -1, 2]).all())

    # Patching: the source's coordinates along the subspace, through Model.run, agree with
    # the interchange function pair by pair.
    data = planted_data.subset(range(16))
    src = m.run(torch.tensor(data.source_ids), capture=["L0.resid_post"]).cache["L0.resid_post"]
    logits = m.run(
        torch.tensor(data.base_ids), interventions=[subspace_patch(sub, src, positions=[-1])]
    ).logits
    preds = logits[:, -1][:, [1, 2]].argmax(-1).numpy()
    ic = interchange(m, data, "L0.resid_post", subspace=sub)
    np.testing.assert_array_equal(preds, ic.predictions)

    given = subspace_from_basis(u.numpy(), "L0.resid_post")
    assert float(given.overlap(sub)[0]) > 0.9
    with pytest.raises(AbstractionError, match="k=2 directions"):
        subspace_from_basis(np.eye(D)[:, :2], "L0.resid_post").direction()
    with pytest.raises(AbstractionError, match="no slot 'C'"):
        subspace_steering_vector(sub, "C", "B")


def test_random_basis_is_orthonormal_and_seeded() -> None:
    a, b = random_basis(20, 4, 3), random_basis(20, 4, 3)
    assert torch.equal(a, b)
    torch.testing.assert_close(a.T @ a, torch.eye(4, dtype=a.dtype))
    assert not torch.equal(a, random_basis(20, 4, 4))
