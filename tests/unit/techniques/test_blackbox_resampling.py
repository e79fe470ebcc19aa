"""Thought-anchor resampling and prompt sweeps on a tiny chat model: determinism and the maths."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from blackbox_models import chat_model, smol_tokenizer

from interplab.configs import ConfigError
from interplab.techniques.blackbox.resampling import (
    extract_answer,
    prompt_sweep,
    sentences,
    thought_anchors,
    two_sample_ci,
)

TRACE = "First I add. Then I check it!\nThe answer is 7."


@pytest.fixture(scope="module")
def model() -> Any:
    return chat_model(smol_tokenizer())


def test_sentences_cover_the_text():
    spans = sentences(TRACE)
    assert [TRACE[a:b] for a, b in spans] == [
        "First I add. ",
        "Then I check it!\n",
        "The answer is 7.",
    ]
    assert sentences("") == []


def test_extract_answer_takes_the_last_answer():
    assert extract_answer("the answer is 3. No, the answer is 7.") == "7"
    assert extract_answer("no idea") == ""


def test_resampling_is_deterministic_and_importance_is_the_kept_minus_replaced_rate(model):
    kw: dict[str, Any] = dict(trace=TRACE, n=12, max_new_tokens=4, seed=3, batch_size=5)
    a = thought_anchors(model, "What is 3 + 4?", **kw)
    b = thought_anchors(model, "What is 3 + 4?", **kw)
    assert a.replacements == b.replacements and np.array_equal(a.importance, b.importance)
    assert a.answer == "7" and len(a.sentences) == 3 and a.same_answer.shape == (4, 12)
    assert a.same_answer[3].all()  # the whole trace kept reaches its own answer
    for i in range(3):  # brute force from the stored per-resample arrays
        kept = a.same_answer[i + 1].mean()
        replaced = a.same_answer[i][a.different[i]]
        if replaced.size:
            assert a.importance[i] == pytest.approx(kept - replaced.mean())
            assert a.ci_low[i] <= a.importance[i] <= a.ci_high[i]
    assert a.importance[2] == pytest.approx(1.0)  # the answer sentence carries the answer
    c = thought_anchors(model, "What is 3 + 4?", **{**kw, "seed": 4})
    assert c.replacements != a.replacements


def test_a_trace_without_an_answer_is_an_error(model):
    with pytest.raises(ConfigError, match="no final answer"):
        thought_anchors(model, "Q?", trace="I think. Hmm.", n=2, max_new_tokens=2)


def test_a_similarity_function_keeps_only_different_replacements(model):
    res = thought_anchors(
        model, "Q?", trace=TRACE, n=6, max_new_tokens=3, similar=lambda a, b: True
    )
    assert res.n_replaced.tolist() == [0, 0, 0] and np.isnan(res.importance).all()


def test_two_sample_ci_brackets_the_difference():
    rng = np.random.default_rng(0)
    a, b = rng.random(400) < 0.7, rng.random(400) < 0.4
    lo, hi = two_sample_ci(a.astype(float), b.astype(float))
    assert lo < 0.3 < hi and hi - lo < 0.2


def test_prompt_sweep_reports_rates_and_differences(model):
    res = prompt_sweep(model, ["Say hi.", "Say bye."], r".", n=5, max_new_tokens=3)
    assert res.matches.shape == (5, 2)
    assert res.difference[0] == 0 and res.p_value[0] == 1
    assert res.summary().mean.shape == (2,)
    with pytest.raises(ConfigError, match="two prompt variants"):
        prompt_sweep(model, ["only one"], r".")
