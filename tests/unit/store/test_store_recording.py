"""Recording runs: where the project is, what a run records, artifacts, switches, the decorator."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest
from fake_technique import MODEL, PROMPTS, FakeResult, fake_sweep

from interplab.provenance import data_hash
from interplab.store import Project, StoreError, recorded, recording, resolve
from interplab.store.artifacts import path_of


def test_resolution_prefers_argument_then_environment_then_folder_then_default(
    tmp_path, monkeypatch
):
    a = Project.init(tmp_path / "a")
    b = Project.init(tmp_path / "b")
    nested = a.root / "deep" / "er"
    nested.mkdir(parents=True)
    monkeypatch.chdir(nested)
    assert resolve().root == a.root and resolve().chosen_by == "folder"
    monkeypatch.setenv("INTERPLAB_PROJECT", str(b.root))
    assert resolve().root == b.root
    assert resolve(a.root).root == a.root
    assert resolve(a.location.db).db == a.location.db  # the database file itself
    monkeypatch.delenv("INTERPLAB_PROJECT")
    monkeypatch.chdir(tmp_path)
    default = resolve()
    assert default.chosen_by == "default"
    assert default.root == (tmp_path / "home" / "default").resolve()
    assert default.db.is_file()


def test_a_named_project_must_exist(tmp_path, monkeypatch):
    with pytest.raises(StoreError, match="interplab init"):
        resolve(tmp_path / "typo")
    monkeypatch.setenv("INTERPLAB_PROJECT", str(tmp_path / "typo"))
    with pytest.raises(StoreError, match="INTERPLAB_PROJECT"):
        resolve()


def test_a_run_records_setup_result_and_artifacts(project, tmp_path):
    figure = tmp_path / "fig.png"
    figure.write_bytes(b"\x89PNG fake bytes")
    result = fake_sweep(PROMPTS, record=False)
    with project.recording(
        "fake_sweep", config={"shift": 0.5}, model_info=MODEL, seed=0, inputs=PROMPTS, label="x"
    ) as run:
        run.finish(result, tensors={"acts": np.arange(6.0).reshape(2, 3)}, figures=[figure],
                   examples=PROMPTS[:3])  # fmt: skip
    rec = project.run(run.id)
    assert rec.status == "done" and rec.ended is not None and rec.ended >= rec.started
    assert rec.technique == "fake_sweep" and rec.label == "x"
    assert rec.config == {"shift": 0.5} and rec.seed == 0
    assert rec.model_name == "fake-model" and rec.model_sha256 == "f" * 64
    assert rec.data_sha256 == data_hash(PROMPTS)
    assert rec.versions["numpy"] == np.__version__ and "python" in rec.versions
    assert rec.pid > 0 and rec.host and rec.cwd and rec.command is not None
    kinds = {a.kind: a for a in rec.artifacts}
    assert set(kinds) == {"result", "tensors", "figure", "examples", "inputs"}
    for a in rec.artifacts:  # content-addressed: the file is named by its bytes' hash
        import hashlib

        assert (
            hashlib.sha256(path_of(project.location.artifacts, a.sha256).read_bytes()).hexdigest()
            == a.sha256
        )
    loaded = project.result(run.id)
    assert isinstance(loaded, FakeResult)
    np.testing.assert_array_equal(loaded.values, result.values)
    np.testing.assert_array_equal(project.tensors(run.id)["acts"], np.arange(6.0).reshape(2, 3))
    assert project.stored_json(run.id, "inputs") == PROMPTS
    assert not list((project.location.artifacts / "tmp").iterdir())  # no temp file left


def test_the_summary_is_computed_from_the_stored_result_once(project):
    result = fake_sweep(PROMPTS)
    rec = project.runs()[0]
    assert rec.summary is None  # recording does not pay for the bootstrap
    summary = project.summary(rec.id)
    assert summary == json.loads(json.dumps(result.summary().to_dict()))
    assert project.run(rec.id).n_tests == 4 and project.run(rec.id).summary == summary
    (listed,) = project.runs()  # listings carry the headline, not the whole summary
    assert listed.summary is None and listed.headline is not None
    assert listed.headline.n == len(PROMPTS) and listed.headline.n_tests == 4


def test_a_summary_given_at_finish_is_stored(project):
    result = fake_sweep(PROMPTS, record=False)
    with project.recording("fake_sweep") as run:
        run.finish(result, summary=result.summary())
    assert project.run(run.id).summary is not None and project.run(run.id).n_tests == 4


def test_failed_and_interrupted_runs_are_marked_and_the_error_propagates(project):
    with pytest.raises(RuntimeError, match="boom"), project.recording("fake_sweep") as failed:
        raise RuntimeError("boom")
    with pytest.raises(KeyboardInterrupt), project.recording("fake_sweep") as stopped:
        raise KeyboardInterrupt
    assert project.run(failed.id).status == "failed"
    assert project.run(failed.id).error == "RuntimeError: boom"
    assert project.run(stopped.id).status == "interrupted"


def test_a_block_without_finish_says_no_result_was_stored(project):
    with project.recording("fake_sweep") as run:
        pass
    rec = project.run(run.id)
    assert rec.status == "done" and rec.error is not None and "no result" in rec.error


def test_recording_can_be_switched_off(project, monkeypatch):
    with project.recording("fake_sweep", record=False) as run:
        run.finish(fake_sweep(PROMPTS))  # switched off for the block: nothing inside records
    assert run.id is None and not run.recording
    fake_sweep(PROMPTS, record=False)

    def outer(prompts):  # a function called with record=False records nothing it calls
        return fake_sweep(prompts)

    recorded("outer")(outer)(PROMPTS, record=False)
    monkeypatch.setenv("INTERPLAB_RECORD", "0")
    fake_sweep(PROMPTS)
    with recording("fake_sweep") as off:
        pass
    assert off.id is None
    assert project.count_runs() == 0


def test_the_decorator_records_provenance_and_inputs(project):
    result = fake_sweep(PROMPTS[:5], shift=1.0, seed=3)
    (rec,) = project.runs()
    assert rec.technique == "fake_sweep" and rec.status == "done"
    assert rec.config == {"shift": 1.0, "cells": 4, "seed": 3} and rec.seed == 3
    assert rec.model_sha256 == MODEL["weights_sha256"]
    assert rec.data_sha256 == result.provenance.data_sha256
    assert project.stored_json(rec.id, "inputs") == PROMPTS[:5]


def test_nested_recordings_record_only_the_outer_run(project):
    with recording("outer", config={"k": 1}) as outer:
        outer.finish(fake_sweep(PROMPTS))
        with recording("nested") as nested:  # a no-op handle: finishing it leaves outer alone
            nested.finish(fake_sweep(PROMPTS[:2]))
    (rec,) = project.runs()
    assert rec.id == outer.id and rec.technique == "outer" and nested.id is None
    assert project.result(rec.id).values.shape[0] == len(PROMPTS)


def test_git_commit_and_dirty_state_are_recorded_inside_a_repository(
    project, tmp_path, monkeypatch
):
    from interplab.store import capture

    repo = tmp_path / "repo"
    repo.mkdir()
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}  # fmt: skip
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    (repo / "a.txt").write_text("a")
    subprocess.run(["git", "add", "a.txt"], cwd=repo, check=True)
    subprocess.run(["git", "commit", "-qm", "a"], cwd=repo, check=True)
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True
    ).stdout.strip()
    monkeypatch.chdir(repo)
    monkeypatch.setattr(capture, "_cache", {})
    with project.recording("clean") as clean:
        clean.finish(None)
    (repo / "a.txt").write_text("changed")
    monkeypatch.setattr(capture, "_cache", {})
    with project.recording("dirty") as dirty:
        dirty.finish(None)
    assert (project.run(clean.id).git_commit, project.run(clean.id).git_dirty) == (head, False)
    assert (project.run(dirty.id).git_commit, project.run(dirty.id).git_dirty) == (head, True)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(capture, "_cache", {})
    with project.recording("outside") as outside:
        outside.finish(None)
    assert project.run(outside.id).git_commit is None and project.run(outside.id).git_dirty is None


def test_runs_filter_and_order(project):
    for shift in (0.0, 1.0):
        fake_sweep(PROMPTS[:4], shift=shift)
    with project.recording("other", model_info={"name": "m2"}) as other:
        other.finish(None)
    assert [r.id for r in project.runs()] == [3, 2, 1]
    assert [r.id for r in project.runs(technique="fake_sweep")] == [2, 1]
    assert [r.id for r in project.runs(model="m2")] == [3]
    assert [r.id for r in project.runs(limit=1)] == [3]
    with pytest.raises(StoreError, match="not one of"):
        project.runs(status="finished")
    with pytest.raises(StoreError, match="no run 99"):
        project.run(99)


def test_diff_lists_config_and_number_differences(project):
    fake_sweep(PROMPTS, shift=0.0)
    fake_sweep(PROMPTS, shift=2.0)
    d = project.diff(1, 2)
    assert [x.path for x in d.config.differences] == ["shift"]
    assert d.config.differences[0].stored == 0.0 and d.config.differences[0].new == 2.0
    assert d.setup.matches  # same model, seed, data, code
    assert d.numbers is not None and not d.numbers.matches
    assert any(x.path.startswith("mean[") for x in d.numbers.differences)


def test_a_running_runs_progress_is_in_the_store_while_it_runs(project, monkeypatch):
    import sys
    import time

    from interplab.progress import progress_bar
    from interplab.store import queries

    recording_module = sys.modules["interplab.store.recording"]

    monkeypatch.setattr(recording_module, "PROGRESS_S", 0.05)
    monkeypatch.setattr(sys.modules["interplab.progress"], "LISTEN_INTERVAL_S", 0.0)
    with project.recording("fake_sweep") as run, progress_bar(10, "cells", False) as advance:
        advance(4)
        deadline = time.monotonic() + 10
        state = None
        while time.monotonic() < deadline:
            state = queries.run_states(project, [run.id], stale_check=False)[0].to_dict()
            if state["progress"] == ["cells", 4, 10]:
                break
            time.sleep(0.05)
        assert state is not None and state["progress"] == ["cells", 4, 10]
        advance(6)
    done = queries.run_states(project, [run.id], stale_check=False)[0]
    assert done.status == "done"
