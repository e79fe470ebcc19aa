"""The happiness steering exercise on the real embedded model (SmolLM2-135M-Instruct)."""

from __future__ import annotations

import numpy as np
import pytest

from interplab.data import sentiment_dataset
from interplab.data.sentiment_prompts import NEUTRAL_PROMPTS
from interplab.techniques.steering import happiness_score, happiness_vector, steer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def result(smol):
    vector = happiness_vector(smol, layers=6)
    return steer(
        smol,
        list(NEUTRAL_PROMPTS[:8]),
        vector,
        coefficients=[0.0, 8.0],
        n_random=2,
        max_new_tokens=16,
    )


def test_steering_raises_happiness_above_the_random_vector_baseline(result):
    s = result.summaries()
    steered, random = s["steered score"], s["random score"]
    diff = s["steered - random score"]
    assert steered.n == 8
    # At coefficient 8 the happiness vector beats norm-matched random vectors, paired per prompt,
    # and the two conditions' 95% CIs do not overlap.
    assert diff.ci_low[1] > 0
    assert steered.ci_low[1] > random.ci_high[1]
    assert steered.mean[1] > s["none score"].mean[1]
    assert np.isfinite(result.steered_perplexity).all()
    main = result.summary()  # the paired steered - random difference, as one Summary
    np.testing.assert_array_equal(main.mean, diff.mean)


def test_coefficient_zero_generates_exactly_the_unsteered_text(result):
    for i in range(result.n):
        assert result.steered_texts[i][0] == result.none_texts[i]
        assert all(t == result.none_texts[i] for t in result.random_texts[i][0])
    np.testing.assert_array_equal(result.steered_scores[:, 0], result.none_scores)
    np.testing.assert_array_equal(result.steered_perplexity[:, 0], result.none_perplexity)


def test_the_judge_ranks_positive_reviews_above_negative_ones(smol):
    data = sentiment_dataset()
    scores = happiness_score(smol, list(data.texts))
    labels = np.asarray(data.labels)
    assert scores[labels == 1].mean() > scores[labels == 0].mean()
