"""Recorded runs of real techniques on the embedded model re-run from their stored calls, the model
loaded again by its recorded name, with every number identical."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from interplab import store
from interplab.data import ContrastPair, factual_pairs
from interplab.techniques import activation_patching, causal_tracing, logit_lens

pytestmark = pytest.mark.slow

TEMPLATE = "When{A} and{B} went to the store,{S} gave a drink to"
NAMES = [(" Mary", " John"), (" Tom", " Anna")]


def _pairs() -> list[ContrastPair]:
    return [
        ContrastPair(TEMPLATE.format(A=io, B=s, S=s), TEMPLATE.format(A=s, B=io, S=io), io, s)
        for a, b in NAMES
        for io, s in ((a, b), (b, a))
    ]


def test_recorded_patching_and_tracing_rerun_exactly_from_the_model_name(
    smol, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    torch.set_num_threads(1)
    project = store.Project.init(tmp_path / "project")
    monkeypatch.setenv("INTERPLAB_PROJECT", str(project.root))
    activation_patching(smol, _pairs(), per="all", control=False, progress=False)
    ds = factual_pairs(smol.tokenizer, templates=("The capital of {country} is",))
    keep = [i for i, p in enumerate(ds) if len(smol.tokenize(p.clean).ids[0]) == 5][:2]
    causal_tracing(smol, ds.subset(keep), samples=2, components=("resid",), progress=False)
    logit_lens(smol, ["The capital of France is"], target=" Paris", record=False)
    runs = sorted(project.runs(), key=lambda r: r.id)
    assert [r.technique for r in runs] == ["activation_patching", "causal_tracing"]
    for run, model in zip(runs, (None, smol), strict=True):
        # the first loads the model again by its recorded name; the second is given it
        report = store.rerun.rerun(project, run.id, model=model)
        assert report.exact_expected, report.describe()
        assert report.matches and report.comparison.exact, report.describe()
        assert report.comparison.n_numbers > 20 and report.data_matches is True
        assert report.rerun is not None
        assert project.run(report.rerun).model_sha256 == smol.info.weights_sha256
