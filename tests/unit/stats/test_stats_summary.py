"""summarize: fields, correction, evidence flags, serialisation, description, purity."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import FrozenInstanceError, replace
from pathlib import Path

import numpy as np
import pytest

from interplab.stats import Summary, summarize


def _sweep(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(64, 6, 5))
    values[:, 2, 3] += 1.0
    return values


def test_scalar_summary_fields_and_description() -> None:
    values = np.random.default_rng(0).normal(1.0, 1.0, size=64)
    summary = summarize(values, n_resamples=2000)
    assert summary.cell_shape == () and summary.n == 64 and summary.n_tests == 1
    assert summary.ci_low < summary.mean < summary.ci_high
    assert bool(summary.significant) and not bool(summary.weak_evidence)
    text = summary.describe()
    assert text.startswith("mean ") and "95% BCa CI" in text and "n=64" in text
    assert "sign-flip, 2,000 resamples" in text and "significant at 0.05" in text


def test_grid_summary_corrects_and_counts_hypotheses() -> None:
    summary = summarize(_sweep(), n_resamples=2000)
    assert summary.mean.shape == summary.p_adjusted.shape == (6, 5)
    assert summary.n_tests == 30
    assert summary.significant[2, 3] and summary.significant.sum() == 1
    assert np.all(summary.p_adjusted >= summary.p_value)
    text = summary.describe()
    assert "at cell (2, 3)" in text and "1 of 30 cells survive Holm at 0.05" in text
    assert "30 hypotheses tested" in text


def test_same_seed_gives_identical_summaries() -> None:
    first = summarize(_sweep(), n_resamples=500, seed=5).to_dict()
    again = summarize(_sweep(), n_resamples=500, seed=5).to_dict()
    assert first == again


def test_summary_agrees_with_the_building_blocks() -> None:
    from interplab.stats import bootstrap_ci, sign_flip_test

    values = _sweep()
    summary = summarize(values, method="percentile", n_resamples=400, seed=2, null=0.1)
    interval = bootstrap_ci(values, method="percentile", n_resamples=400, seed=2)
    test = sign_flip_test(values, null=0.1, n_resamples=400, seed=2)
    np.testing.assert_array_equal(summary.ci_low, interval.low)
    np.testing.assert_array_equal(summary.p_value, test.p_value)


def test_weak_evidence_flags_passing_p_values_above_one_in_a_thousand() -> None:
    rng = np.random.default_rng(3)
    values = rng.normal(size=(40, 200)) + np.linspace(0.0, 0.8, 200)
    summary = summarize(values, n_resamples=2000, correction="none")
    p = summary.p_value
    np.testing.assert_array_equal(summary.weak_evidence, (p <= 0.05) & (p > 0.001))
    assert summary.weak_evidence.any()
    confirmatory = summarize(values, n_resamples=2000, correction="none", exploratory=False)
    assert not confirmatory.weak_evidence.any()


def test_nan_cells_are_reported_and_not_tested() -> None:
    values = _sweep()
    values[:, 0, 0] = np.nan
    summary = summarize(values, n_resamples=300)
    assert summary.n_tests == 29
    assert np.isnan(summary.p_adjusted[0, 0]) and not summary.significant[0, 0]
    assert "1 undefined (all-NaN) cells not tested" in summary.describe()


def test_to_dict_is_json_safe_with_none_for_nan() -> None:
    values = _sweep()
    values[:, 1, 1] = np.nan
    data = summarize(values, n_resamples=300).to_dict()
    round_trip = json.loads(json.dumps(data, allow_nan=False))
    assert round_trip["mean"][1][1] is None
    assert round_trip["cell_shape"] == [6, 5] and round_trip["n_tests"] == 29


def test_too_few_resamples_for_the_correction_is_noted() -> None:
    summary = summarize(_sweep(), n_resamples=200)
    assert any("No cell can be significant" in note for note in summary.notes)
    assert "n_resamples >= 600" in summary.describe()


def test_effect_of_interest_adds_a_power_note() -> None:
    values = np.random.default_rng(4).normal(size=20)
    summary = summarize(values, n_resamples=300, effect_of_interest=0.3)
    assert any(note.startswith("Underpowered: n=20") for note in summary.notes)


def test_grouped_summary_counts_groups() -> None:
    groups = np.repeat(np.arange(16), 4)
    summary = summarize(_sweep(), groups=groups, n_resamples=500)
    assert summary.n_groups == 16 and "n=64 in 16 groups" in summary.describe()


def test_paired_summary_describes_a_mean_difference() -> None:
    rng = np.random.default_rng(6)
    baseline = rng.normal(size=30)
    summary = summarize(baseline + 0.5, baseline=baseline, n_resamples=300)
    assert summary.paired and summary.describe().startswith("mean difference 0.500")


def test_summary_is_frozen_and_validated() -> None:
    summary = summarize(np.arange(10.0), n_resamples=100)
    with pytest.raises(FrozenInstanceError):
        summary.n = 3  # type: ignore[misc]
    with pytest.raises(ValueError, match="valid choices"):
        replace(summary, correction="bonferroni")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="share one shape"):
        replace(summary, mean=np.zeros(3))
    assert isinstance(summary, Summary)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"values": np.ones(0)}, "at least 1 example"),
        ({"method": "student"}, "valid choices are 'bca', 'percentile'"),
        ({"correction": "fdr"}, "valid choices are 'holm', 'bh', 'none'"),
        ({"confidence": 95}, "strictly between 0 and 1"),
        ({"alpha": 0}, "alpha must be"),
        ({"groups": np.arange(4)}, "4 labels but values has 10 examples"),
    ],
)
def test_invalid_input_says_what_was_wrong(kwargs: dict[str, object], message: str) -> None:
    arguments: dict[str, object] = {"values": np.arange(10.0), "n_resamples": 50}
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=message):
        summarize(**arguments)  # type: ignore[arg-type]


def test_stats_package_does_not_import_torch() -> None:
    # Load interplab.stats under a bare parent package, so the check covers this package's own
    # imports whatever the top-level interplab/__init__ pulls in.
    import interplab.stats

    package_dir = Path(interplab.stats.__file__).parent.parent
    script = (
        "import sys, types\n"
        f"parent = types.ModuleType('interplab'); parent.__path__ = [{str(package_dir)!r}]\n"
        "sys.modules['interplab'] = parent\n"
        "import interplab.stats\n"
        "print('torch' in sys.modules)\n"
    )
    output = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    assert output.strip() == "False"


def test_one_example_is_summarised_with_n_1_and_no_interval_or_test() -> None:
    summary = summarize(np.array([[1.5, -2.0]]))
    assert summary.n == 1 and summary.n_tests == 0
    np.testing.assert_array_equal(summary.mean, [1.5, -2.0])
    assert np.isnan(summary.ci_low).all() and not summary.significant.any()
    text = summary.describe(lambda cell: f"cell-{cell[0]}")
    assert "n=1" in text and "cell-1" in text and "no CI" in text
