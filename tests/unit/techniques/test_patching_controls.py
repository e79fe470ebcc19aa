"""Patching's controls and honest examples on tiny random models: control pairs change the task's
positions in unrelated tokens, the control comparison separates task-specific from general cells,
ablation methods run side by side, examples are labelled, and an interrupted sweep leaves the
model and saved results as they were."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from interplab import viz
from interplab.provenance import write_json
from interplab.results import load
from interplab.results.patching_compare import AblationComparison
from interplab.techniques.patching import (
    PatchingError,
    TokenPairs,
    activation_patching,
    compare_ablations,
    compare_control,
    control_pairs,
    fast,
)

from helpers import tiny_model


def _pairs(n: int = 6, length: int = 7, seed: int = 0) -> TokenPairs:
    g = torch.Generator().manual_seed(seed)
    clean = torch.randint(256, (n, length), generator=g)
    corrupt = clean.clone()
    corrupt[:, 2] = (clean[:, 2] + 1 + torch.randint(255, (n,), generator=g)) % 256
    corrupt[::2, 4] = (clean[::2, 4] + 7) % 256
    return TokenPairs(clean, corrupt, torch.arange(1, n + 1), torch.arange(11, n + 11))


def _hooks(model) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.hf.modules())


@pytest.fixture(scope="module")
def llama():
    return tiny_model("llama")


def test_control_pairs_change_the_same_positions_in_other_tokens(llama):
    task = _pairs()
    ctrl = control_pairs(llama, task, seed=3)
    assert ctrl.clean.shape == task.clean.shape
    np.testing.assert_array_equal(ctrl.clean != ctrl.corrupt, task.clean != task.corrupt)
    assert not torch.equal(ctrl.clean, task.clean)
    # The answers are the model's own: the clean control prefers its answer to the wrong one.
    logits = llama.forward(ctrl.clean)[:, -1]
    rows = torch.arange(task.n)
    assert (logits[rows, ctrl.answer] >= logits[rows, ctrl.wrong]).all()
    assert torch.equal(ctrl.answer, logits.argmax(-1))
    # Where the corruption changes the top prediction, that prediction is the wrong answer.
    top_corrupt = llama.forward(ctrl.corrupt)[:, -1].argmax(-1)
    changed = top_corrupt != ctrl.answer
    assert changed.sum() >= task.n // 2
    assert torch.equal(ctrl.wrong[changed], top_corrupt[changed])
    assert torch.equal(control_pairs(llama, task, seed=3).clean, ctrl.clean)


def test_the_control_sweep_runs_by_default_and_can_be_switched_off(llama):
    r = activation_patching(llama, _pairs(), progress=False)
    assert r.control is not None and r.control.n == r.n
    assert r.control.effect().shape == r.effect().shape
    assert r.provenance.config["control"] is True
    off = activation_patching(llama, _pairs(), progress=False, control=False)
    assert off.control is None
    np.testing.assert_array_equal(off.effect(), r.effect())
    with pytest.raises(PatchingError, match="without a control"):
        off.control_comparison()


def test_a_cell_that_matters_only_on_the_task_is_task_specific_and_a_shared_one_is_general(llama):
    r = activation_patching(llama, _pairs(n=12), control=False, progress=False)
    n, layers, length = r.effect().shape
    task_e = np.zeros((n, layers, length))
    ctrl_e = np.zeros((n, layers, length))
    noise = np.random.default_rng(0).normal(0, 0.05, (2, n, layers, length))
    task_e[:, 0, 2] = 1.0  # task only
    task_e[:, 1, -1] = 1.0  # both
    ctrl_e[:, 1, -1] = 1.0
    task = _with(r, task_e + noise[0])
    ctrl = _with(r, ctrl_e + noise[1])
    cmp = compare_control(task, ctrl, "resid_pre")
    flat = lambda lay, p: lay * length + (p % length)  # noqa: E731
    assert cmp.specific[flat(0, 2)] and not cmp.general[flat(0, 2)]
    assert cmp.general[flat(1, -1)] and not cmp.specific[flat(1, -1)]
    assert "1 are task-specific" in cmp.describe() and "1 matter as much" in cmp.describe()


def _with(result, effect):
    from dataclasses import replace

    return replace(
        result,
        effects={"resid_pre": effect},
        clean=np.ones(result.n),
        corrupt=np.zeros(result.n),
    )


def test_examples_label_most_affected_random_and_quantile_prompts(llama):
    r = activation_patching(llama, _pairs(n=9), control=False, progress=False)
    rows = r.examples(k=2, n_random=3, n_bins=3)
    kinds = [row.kind.split(" (")[0] for row in rows]
    assert kinds[:2] == ["most affected"] * 2 and kinds[2:5] == ["random"] * 3
    assert all(k.startswith("quantile bin") for k in kinds[5:]) and len(kinds) == 8
    where = (rows[0].site, rows[0].position, rows[0].token)
    assert all((row.site, row.position, row.token) == where for row in rows)
    assert rows[0].site.component == "resid_pre" and where[1] is not None
    assert rows[0].token == r.tokens[0][where[1]]
    effects = [row.effect for row in rows]
    assert abs(effects[0]) == max(abs(e) for e in effects)
    bins = effects[5:]
    assert bins == sorted(bins)  # one prompt from each bin, low to high
    with pytest.raises(PatchingError, match="axes"):
        r.examples(cell=(0,))


def test_ablation_methods_side_by_side_equal_separate_sweeps(llama, tmp_path):
    cmp = compare_ablations(llama, _pairs(), methods=("zero", "mean"), progress=False)
    alone = activation_patching(
        llama, _pairs(), direction="noise", source="mean", control=False, progress=False
    )
    np.testing.assert_array_equal(cmp.results["mean"].effect(), alone.effect())
    rho = cmp.agreement["zero~mean"]["resid_pre"]
    assert -1.0 <= rho <= 1.0
    assert "Spearman" in cmp.describe()
    png, page = viz.save(cmp, tmp_path / "abl.png")
    assert png.stat().st_size > 1000 and page.read_text().count("<h2>") == 2
    back = load(cmp.to_json(tmp_path / "abl.json"))
    assert isinstance(back, AblationComparison) and back.agreement == cmp.agreement
    np.testing.assert_array_equal(back.results["mean"].effect(), alone.effect())
    assert back.summary("zero").cell_shape == cmp.summary("zero").cell_shape
    viz.figure(back)
    with pytest.raises(PatchingError, match="two or more of"):
        compare_ablations(llama, _pairs(), methods=("zero",), progress=False)


def test_an_interrupted_sweep_leaves_no_hooks_and_the_next_sweep_is_unchanged(llama, monkeypatch):
    before = _hooks(llama)
    reference = activation_patching(
        llama, _pairs(), components=("mlp_out",), control=False, progress=False
    )
    real = fast._run_chunk
    calls = {"n": 0}

    def interrupt_third(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(fast, "_run_chunk", interrupt_third)
    with pytest.raises(KeyboardInterrupt):
        activation_patching(
            llama,
            _pairs(),
            components=("mlp_out",),
            control=False,
            batch_budget_mb=0.01,
            progress=False,
        )
    monkeypatch.undo()
    assert calls["n"] == 3 and _hooks(llama) == before
    again = activation_patching(
        llama, _pairs(), components=("mlp_out",), control=False, progress=False
    )
    np.testing.assert_array_equal(again.effect(), reference.effect())


def test_an_interrupted_write_keeps_the_previous_file(tmp_path, monkeypatch):
    target = write_json(tmp_path / "result.json", {"old": 1})
    import interplab.provenance as prov

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(prov.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_json(target, {"new": list(range(100_000))})
    assert target.read_text().replace(" ", "").replace("\n", "") == '{"old":1}'
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]


def test_attribution_estimates_its_control_too(llama, tmp_path):
    from interplab.techniques.patching import attribution_patching

    r = attribution_patching(llama, _pairs())
    assert r.control is not None and r.control.effect().shape == r.effect().shape
    assert r.control.control is None  # the control has no control of its own
    assert "task-specific" in r.control_comparison().describe() or "survives" in (
        r.control_comparison().describe()
    )
    _, page = viz.save(r, tmp_path / "attr.png")
    assert page.read_text().count("<h2>") == 2
    assert attribution_patching(llama, _pairs(), control=False).control is None
