"""The research notebook: every run recorded, hypotheses before evidence, findings with evidence.

A project is a folder: one SQLite database (``interplab.sqlite``, WAL mode, numbered schema
migrations) and a content-addressed ``artifacts/`` folder. Nothing here imports torch.

    from interplab import store
    project = store.Project.init("my-project")
    with store.recording("my_sweep", config=cfg, model_info=info, seed=0) as run:
        run.finish(result)
    h = project.hypothesis("heads 9.6 and 9.9 move the indirect object's name")
    project.link(h.id, run.id)                    # marked pre-registered or post hoc by time
    project.finding("...", evidence=[run.id], confidence=0.7, change_my_mind="...")

See docs/notebook.md.
"""

from interplab.store import rerun
from interplab.store.api import current, recorded, recording
from interplab.store.compare import Comparison, Difference, RunDiff
from interplab.store.db import StoreError
from interplab.store.family import FamilyCorrection, RunTests, parse_family
from interplab.store.findings import POSTMORTEM, SprintStats
from interplab.store.location import DB_NAME, Location, default_root, init, resolve
from interplab.store.project import Project
from interplab.store.recording import RunHandle, enabled, evidence_for
from interplab.store.records import (
    Artifact,
    Finding,
    Hypothesis,
    Link,
    Note,
    RunRecord,
    Sprint,
)
from interplab.store.rerun import RerunReport
from interplab.store.schema import SCHEMA_VERSION

__all__ = [
    "DB_NAME",
    "POSTMORTEM",
    "SCHEMA_VERSION",
    "Artifact",
    "Comparison",
    "Difference",
    "FamilyCorrection",
    "Finding",
    "Hypothesis",
    "Link",
    "Location",
    "Note",
    "Project",
    "RerunReport",
    "RunDiff",
    "RunHandle",
    "RunRecord",
    "RunTests",
    "Sprint",
    "SprintStats",
    "StoreError",
    "current",
    "default_root",
    "enabled",
    "evidence_for",
    "init",
    "parse_family",
    "recorded",
    "recording",
    "rerun",
    "resolve",
]
