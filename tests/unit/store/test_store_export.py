"""Export to MLflow: a clear error without mlflow; with it, finished runs land in its SQLite
backend once, with params, metrics, tags and artifacts."""

from __future__ import annotations

import sys

import pytest
from fake_technique import PROMPTS, fake_sweep

from interplab.store import StoreError
from interplab.store.export_mlflow import export_mlflow


def test_without_mlflow_the_error_says_how_to_install_it(project, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)
    fake_sweep(PROMPTS)
    with pytest.raises(StoreError, match="pip install mlflow"):
        export_mlflow(project, tmp_path / "mlflow.db")


# mlflow's own SQLAlchemy use raises deprecation warnings we cannot act on.
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_finished_runs_are_exported_once(project, tmp_path):
    pytest.importorskip("mlflow", reason="mlflow is optional and not installed")
    from mlflow.tracking import MlflowClient

    fake_sweep(PROMPTS, shift=1.0)
    with pytest.raises(RuntimeError), project.recording("fake_sweep"):
        raise RuntimeError("not exported: failed")
    target = tmp_path / "ml" / "mlflow.db"
    assert export_mlflow(project, target) == 1
    assert export_mlflow(project, target) == 0  # already there
    client = MlflowClient(tracking_uri=f"sqlite:///{target}")
    exp = client.get_experiment_by_name("interplab")
    assert exp is not None
    (run,) = client.search_runs([exp.experiment_id])
    assert run.data.params["shift"] == "1.0" and run.data.tags["interplab.run_id"] == "1"
    assert run.data.metrics["n"] == len(PROMPTS) and run.data.metrics["n_tests"] == 4
    names = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"result.json", "inputs.json"} <= names
