"""DAS on SmolLM2-135M-Instruct: the demo section (the IOI position variable at a late residual
site), its learned subspace used again on fresh pairs, and the result read back from JSON."""

from __future__ import annotations

import numpy as np
import pytest
from rich.console import Console

from interplab import results
from interplab.demo import das as das_demo
from interplab.results.causal_abstraction import DASResult, Subspace
from interplab.techniques.causal_abstraction import (
    counterfactual_dataset,
    interchange,
    ioi_position,
)

pytestmark = pytest.mark.slow


def test_demo_section_learns_a_subspace_that_beats_its_baselines(smol, tmp_path) -> None:
    section = das_demo.section(smol, tmp_path, Console(quiet=True))
    result = results.load(tmp_path / "das_ioi.json")
    assert isinstance(result, DASResult)
    assert result.site == das_demo.CONFIG.site and result.k == 1
    assert result.conditions == ["learned", "random", "control", "full", "none"]
    # The claim the section makes: the learned direction moves the answer where random
    # directions of the same size and the control task do not.
    diff = result.difference("random")
    assert float(diff.ci_low) > 0.0
    assert result.iia("learned") > result.iia("control")
    assert section.figures and section.tables and "IIA" in section.claims[0]
    assert (tmp_path / "das_ioi.png").stat().st_size > 10_000

    # The saved subspace replicates on pairs it never saw (another seed).
    subspace = Subspace.from_json(tmp_path / "das_ioi_subspace.json")
    fresh = counterfactual_dataset(
        smol, ioi_position(), ["io_first"], n=32, seed=123, progress=False
    )
    replicated = interchange(smol, fresh, subspace.site, subspace=subspace)
    none = float(np.mean(replicated.base_predictions == replicated.labels))
    assert replicated.iia > none
