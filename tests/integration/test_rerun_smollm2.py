"""A recorded run of a real technique re-runs from its record with every number identical."""

from __future__ import annotations

from pathlib import Path

import pytest

from interplab import store
from interplab.techniques import direct_logit_attribution, logit_lens


def test_recorded_dla_and_lens_rerun_exactly(
    smol, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = store.Project.init(tmp_path / "project")
    monkeypatch.setenv("INTERPLAB_PROJECT", str(project.root))
    prompts = [
        "When Mary and John went to the store, John gave a drink to",
        "When Tom and Anna went to the park, Anna gave a ball to",
    ]
    direct_logit_attribution(smol, prompts, target=[" Mary", " Tom"], baseline=[" John", " Anna"])
    logit_lens(smol, prompts[:1], target=" Mary")
    logit_lens(smol, prompts[:1], target=" Mary", record=False)
    runs = project.runs()
    assert sorted(r.technique for r in runs) == ["direct_logit_attribution", "logit_lens"]
    for run in runs:
        report = store.rerun.rerun(project, run.id)
        assert report.matches, report.describe() if hasattr(report, "describe") else report
