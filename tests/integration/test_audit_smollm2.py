"""Black-box sampling and the auditing game on the real SmolLM2 (and its cached Taboo organism)."""

from __future__ import annotations

import pytest
from rich.console import Console

from interplab.techniques.blackbox import ChatTemplate, SamplingConfig, sample, user
from interplab.techniques.organisms import registry

pytestmark = pytest.mark.slow


def test_prompt_cache_sampling_reproduces_hf_greedy_generation(smol):
    template = ChatTemplate.of(smol)
    prompt = template.prompt([user("What is the capital of France?")])
    ids = template.ids(prompt)
    out = sample(smol, ids, SamplingConfig(n=2, max_new_tokens=12, temperature=0))
    assert out.engine == "prefix-cache"
    ref = smol.generate(prompt, max_new_tokens=12)
    assert ref.ids[0, : len(ids)].tolist() == ids  # the template string tokenises the same
    want = ref.ids[0, len(ids) :].tolist()
    want = want[: want.index(2)] if 2 in want else want
    assert out.ids[0] == want and "Paris" in out.texts[0]


def test_demo_section_plays_a_short_auditing_game(smol, tmp_path):
    if not registry.get("taboo-1").ready:
        pytest.skip("taboo-1 is not trained (make organisms)")
    from interplab.demo.audit import section

    s = section(smol, tmp_path, Console(quiet=True))
    assert (tmp_path / "audit" / "leaderboard.png").stat().st_size > 1000
    assert len(s.tables[0][1]) == 6  # the baseline and five contestants
    assert "leaked its word" in s.claims[0]
