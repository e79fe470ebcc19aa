"""Causal tracing on the real SmolLM2-135M reproduces ROME's picture of factual recall.

Measured on the first 8 one-token-country prompts of "The capital of {country} is" (5 samples,
noise 3σ): p(answer) falls from 0.35 to 0.0003; restoring resid_post at the subject token
recovers 73-100% of it in layers 0-10 and under 4% from layer 20 on; at the final position it
recovers nothing before layer 16 and 92-127% from layer 23 on; attention at the final position
(window 10) peaks at layer 19 (85%) where the MLPs there recover at most 5%.
"""

import numpy as np
import pytest

from interplab import viz
from interplab.data import factual_pairs
from interplab.techniques.tracing import TracingError, causal_tracing


@pytest.fixture(scope="module")
def traced(smol):
    ds = factual_pairs(smol.tokenizer, templates=("The capital of {country} is",))
    keep = [i for i, p in enumerate(ds) if len(smol.tokenize(p.clean).ids[0]) == 5][:4]
    return causal_tracing(smol, ds.subset(keep), samples=3, seed=0, progress=False)


def test_noise_on_the_subject_destroys_the_answer(traced):
    assert traced.subject_spans == [(3, 4)] * 4
    assert traced.clean.mean() > 0.2
    assert traced.corrupted.mean() < 0.1 * traced.clean.mean()


def test_the_fact_sits_on_the_subject_early_and_on_the_last_token_late(traced):
    gap = float((traced.clean - traced.corrupted).mean())
    resid = traced.effect("resid").mean(0)  # [layer, pos]
    subject, last = 3, 4
    assert resid[:11, subject].mean() > 0.5 * gap
    assert resid[24:, subject].max() < 0.1 * gap
    assert resid[:11, last].max() < 0.05 * gap
    assert resid[24:, last].mean() > 0.6 * gap
    attn, mlp = traced.effect("attn").mean(0), traced.effect("mlp").mean(0)
    assert attn[15:26, last].max() > 0.2 * gap
    assert attn[15:26, last].max() > 3 * mlp[15:26, last].max()


def test_the_summary_finds_the_peak_cells_with_intervals(traced):
    top = traced.top_cells("resid", 3, summary=traced.summary("resid", n_resamples=2000))
    assert all(cell.position in (3, 4) for cell in top)
    assert all(cell.ci_low <= cell.mean <= cell.ci_high for cell in top)
    assert all(cell.site.component == "resid_post" for cell in top)


def test_prompts_of_different_lengths_trace_one_by_one(smol):
    result = causal_tracing(
        smol,
        ["The capital of France is", "The capital city of Japan is"],
        subjects=["France", "Japan"],
        samples=1,
        components="resid",
        progress=False,
    )
    assert result.subject_spans == [(3, 4), (4, 5)]
    assert result.answers == [" Paris", " Tokyo"]
    assert np.isnan(result.effect("resid")[0, :, 5:]).all()
    assert not np.isnan(result.effect("resid")[1]).any()
    with pytest.raises(TracingError, match="one token length"):
        result.summary()
    assert len(viz.heatmaps(result, example=1)[0].col_labels) == 6
