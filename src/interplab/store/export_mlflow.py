"""Export to MLflow, optional: finished runs into an MLflow SQLite backend, for users who keep one.

interplab never needs MLflow; without it this says how to install it.

1. Open (or create) the MLflow SQLite store at ``to`` and the experiment, with its artifacts in
   ``mlartifacts/`` beside the database (not MLflow's default ``./mlruns`` of the cwd).
2. For each finished run not exported before (the tag ``interplab.run_id`` with this project's
   path in ``interplab.project`` marks an exported run): params from the flattened config, tags
   for technique, model, weights and data hashes, git commit and seed, metrics from the stored
   summary's headline cell (mean, CI, adjusted p, n, tests), the artifacts as files, and the
   run's start and end times.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from interplab.store.artifacts import copy_out
from interplab.store.db import StoreError

if TYPE_CHECKING:
    from interplab.store.project import Project
    from interplab.store.records import RunRecord

INSTALL = "pip install 'interplab[notebook]'"
_PARAM_VALUE_MAX = 6000


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            text = v if isinstance(v, str) else json.dumps(v)
            out[key[:250]] = text[:_PARAM_VALUE_MAX]
    return out


def _metrics(project: Project, run: RunRecord) -> dict[str, float]:
    from interplab.store.summaries import headline

    summary = project.summary(run.id)
    if summary is None:
        return {}
    h = headline(summary)
    values = {
        "mean": h.mean,
        "ci_low": h.ci_low,
        "ci_high": h.ci_high,
        "p_adjusted": h.p_adjusted,
        "n": h.n,
        "n_tests": h.n_tests,
    }
    return {k: float(v) for k, v in values.items() if v == v}  # NaN is not a metric


def export_mlflow(project: Project, to: str | Path, *, experiment: str = "interplab") -> int:
    """Exports the project's finished runs to the MLflow SQLite database ``to``; returns how
    many runs were exported (runs exported before are skipped)."""
    try:
        from mlflow.entities import Metric, Param, RunTag  # pyright: ignore[reportMissingImports]
        from mlflow.tracking import MlflowClient  # pyright: ignore[reportMissingImports]
    except ImportError:
        raise StoreError(
            f"exporting to MLflow needs MLflow's client: `{INSTALL}` (mlflow-skinny with its "
            "SQLite backend) or `pip install mlflow`; interplab itself never needs it"
        ) from None
    db = Path(str(to).removeprefix("sqlite:///")).expanduser().resolve()
    db.parent.mkdir(parents=True, exist_ok=True)
    client = MlflowClient(tracking_uri=f"sqlite:///{db}")
    found = client.get_experiment_by_name(experiment)
    exp_id = (
        found.experiment_id
        if found is not None
        else client.create_experiment(
            experiment, artifact_location=(db.parent / "mlartifacts").as_uri()
        )
    )
    exported = 0
    for run in sorted(project.runs(status="done"), key=lambda r: r.id):
        query = (
            f"tags.`interplab.run_id` = '{run.id}' and tags.`interplab.project` = '{project.root}'"
        )
        if client.search_runs([exp_id], filter_string=query, max_results=1):
            continue
        record = project.run(run.id)
        tags = {
            "interplab.run_id": str(run.id),
            "interplab.project": str(project.root),
            "interplab.technique": run.technique,
            "interplab.model": run.model_name or "",
            "interplab.weights_sha256": run.model_sha256 or "",
            "interplab.data_sha256": run.data_sha256 or "",
            "interplab.seed": str(run.seed),
            "interplab.git_commit": run.git_commit or "",
            "interplab.label": run.label or "",
        }
        created = client.create_run(
            exp_id, start_time=int(run.started * 1000), run_name=f"{run.technique} #{run.id}"
        )
        rid = created.info.run_id
        stamp = int((run.ended or run.started) * 1000)
        client.log_batch(
            rid,
            metrics=[Metric(k, v, stamp, 0) for k, v in _metrics(project, run).items()],
            params=[Param(k, v) for k, v in _flatten(run.config).items()],
            tags=[RunTag(k, v) for k, v in tags.items()],
        )
        with tempfile.TemporaryDirectory() as tmp:
            for a in record.artifacts:
                path = copy_out(project.location.artifacts, a.sha256, Path(tmp) / a.name)
                client.log_artifact(rid, str(path))
        client.set_terminated(rid, status="FINISHED", end_time=stamp)
        exported += 1
    return exported


__all__ = ["INSTALL", "export_mlflow"]
