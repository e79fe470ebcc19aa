"""Re-running a recorded run: exact when seed, weights and versions match; within a stated
tolerance otherwise; every differing number listed."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fake_technique import PROMPTS, FakeResult, fake_sweep, rerun_fake

from interplab.store import StoreError, rerun


def test_a_rerun_reproduces_every_number_exactly(project):
    fake_sweep(PROMPTS, shift=0.7, seed=4)
    report = project.rerun(1)
    assert report.exact_expected and report.why_not_exact == ()
    assert report.comparison.exact and report.matches and report.data_matches is True
    assert report.comparison.n_numbers == len(PROMPTS) * 4
    assert (
        report.rerun == 2 and project.run(2).rerun_of == 1 and project.run(2).label == "rerun of 1"
    )
    assert "MATCH" in report.describe() and "exactly" in report.describe()


def test_a_changed_number_is_a_mismatch_listed_by_position(project, monkeypatch):
    fake_sweep(PROMPTS)

    def drifted(config, model_info, inputs):
        r = rerun_fake(config, model_info, inputs)
        values = r.values.copy()
        values[3, 1] += 1e-3
        return FakeResult(r.prompts, values, r.provenance)

    monkeypatch.setitem(rerun._REGISTRY, "fake_sweep", drifted)
    report = project.rerun(1, record=False)
    assert not report.matches and report.rerun is None
    assert project.count_runs() == 1  # the decorated function it calls recorded nothing either
    (diff,) = report.comparison.differences
    assert diff.path == "values[3, 1]" and diff.abs_diff == pytest.approx(1e-3)
    assert "MISMATCH" in report.describe()


def test_other_library_versions_compare_within_the_stated_tolerance(project, monkeypatch):
    fake_sweep(PROMPTS)
    run = project.run(1)
    with project.write() as conn:
        conn.execute("UPDATE runs SET versions = ? WHERE id = 1",
                     (json.dumps({**run.versions, "numpy": "0.0.1"}),))  # fmt: skip

    def rounding(config, model_info, inputs):
        r = rerun_fake(config, model_info, inputs)
        return FakeResult(r.prompts, r.values * (1 + 1e-9), r.provenance)

    monkeypatch.setitem(rerun._REGISTRY, "fake_sweep", rounding)
    report = project.rerun(1, rtol=1e-6)
    assert not report.exact_expected and any("numpy 0.0.1 then" in w for w in report.why_not_exact)
    assert report.matches and report.comparison.n_within > 0
    strict = project.rerun(1, rtol=1e-12, atol=0.0)
    assert not strict.matches


def test_different_data_is_reported(project, monkeypatch):
    fake_sweep(PROMPTS)
    monkeypatch.setitem(rerun._REGISTRY, "fake_sweep",
                        lambda config, model_info, inputs: rerun_fake(config, model_info, inputs[:-1]))  # fmt: skip
    report = project.rerun(1)
    assert report.data_matches is False and not report.matches
    assert "different data" in report.describe()


def test_a_technique_nobody_registered_cannot_be_rerun(project):
    with project.recording("unregistered") as run:
        run.finish(fake_sweep(PROMPTS, record=False))
    with pytest.raises(StoreError, match="no way to re-run 'unregistered'"):
        project.rerun(run.id)
    with project.recording("fake_sweep") as empty:
        pass
    with pytest.raises(StoreError, match="stored no result"):
        project.rerun(empty.id)


def test_compare_treats_nan_as_equal_and_reports_shapes():
    from interplab.store.compare import compare

    a = FakeResult(["x"], np.array([[np.nan, 1.0]]), fake_sweep(["x"], record=False).provenance)
    same = compare(a.to_dict(), a.to_dict(), skip=("provenance",))
    assert same.exact and same.n_numbers == 2
    b = FakeResult(["x"], np.array([[np.nan, 1.0, 2.0]]), a.provenance)
    shaped = compare(a.to_dict(), b.to_dict(), skip=("provenance",))
    assert not shaped.matches and shaped.differences[0].path == "values (shape)"


def test_a_recorded_function_reruns_from_its_stored_call_without_registration(project):
    from fake_technique import double, fake_scaled

    factor = np.array([1.0, -0.5, 3.0], dtype=np.float32)
    fake_scaled(PROMPTS, factor, transform=double, seed=3)
    call = project.stored_call(1)
    assert call is not None and call.function == "fake_technique:fake_scaled"
    assert call.not_stored is None and next(iter(call.arrays.values())).tolist() == factor.tolist()
    with pytest.raises(StoreError, match="--import fake_technique"):
        project.rerun(1)  # a function outside interplab runs only when its module is allowed
    report = project.rerun(1, modules=["fake_technique"])
    assert report.exact_expected and report.comparison.exact and report.matches
    assert report.comparison.n_numbers == len(PROMPTS) * 3


def test_a_call_holding_an_inline_function_says_why_it_cannot_be_rerun(project):
    from fake_technique import fake_scaled

    fake_scaled(PROMPTS, np.ones(2), transform=lambda v: v + 1)
    assert project.run(1).status == "done"  # the run itself is recorded as usual
    with pytest.raises(
        StoreError,
        match=r"argument 'transform' is .*<lambda>, a function defined inline; only a module-level",
    ):
        project.rerun(1, modules=["fake_technique"])


def test_a_stored_call_names_only_a_function_recorded_for_that_technique(project):
    from fake_technique import fake_scaled

    fake_scaled(PROMPTS, np.ones(2))
    with project.write() as conn:  # a store edited to make rerun call something else
        conn.execute("UPDATE runs SET technique = 'fake_sweep_other' WHERE id = 1")
    with pytest.raises(StoreError, match="not the function that recorded 'fake_sweep_other'"):
        project.rerun(1, modules=["fake_technique"])


def test_a_function_of_a_script_run_directly_says_it_cannot_be_imported_again(project):
    from interplab.store import calls

    call = calls.StoredCall("__main__:toy_sweep", {})
    with pytest.raises(StoreError, match=r"run directly \(__main__\).*register"):
        calls.resolve_function(call, "toy_sweep")
