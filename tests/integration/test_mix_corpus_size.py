"""The installed mixed corpus holds at least 10M SmolLM2 tokens, estimated from a sample.

Counting every token takes about 1.5 minutes; the characters-per-token ratio of 400 seeded
documents, times the corpus's characters, lands within about 1% of the full count (10.95M).
Skipped unless `make corpus` has fetched every source.
"""

import pytest

from interplab.data.mix import MIX_SOURCES, estimate_tokens, missing_sources, mix_corpus

pytestmark = pytest.mark.slow


def test_mixed_corpus_has_ten_million_tokens(request: pytest.FixtureRequest) -> None:
    missing = missing_sources()
    if missing:
        pytest.skip(f"corpus sources not installed ({', '.join(missing)}); run `make corpus`")
    corpus = mix_corpus()
    assert list(corpus.sources) == list(MIX_SOURCES)
    assert all(info["documents"] > 0 for info in corpus.sources.values())
    smol = request.getfixturevalue("smol")
    estimate = estimate_tokens(corpus, smol.tokenizer, sample_documents=400, seed=0)
    assert 3.5 < estimate.chars_per_token < 5.0
    assert estimate.estimated_tokens >= 10_000_000, estimate
