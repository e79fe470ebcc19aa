"""Builders for the black-box tests: the real SmolLM2 tokenizer (chat template included) on a
tiny random Llama whose vocabulary matches it, so prompts render exactly as on the real model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from interplab.core.model import Model
from interplab.models.load import ModelInfo, cache_root
from interplab.models.registry import adapter_for


def smol_folder() -> Path:
    """Returns the converted SmolLM2 folder in the cache (tokenizer and chat template), or skips."""
    import os

    roots = [cache_root(), Path(os.environ.get("HOME", "~")).expanduser() / ".cache" / "interplab"]
    for root in roots:
        found = sorted((root / "models").glob("smollm2-135m-*/tokenizer.json"))
        if found:
            return found[0].parent
    pytest.skip("the embedded model is not converted yet (run interplab.load() once)")


def smol_tokenizer() -> Any:
    """Returns the SmolLM2-135M-Instruct tokenizer (fast to load from the converted folder)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(smol_folder(), local_files_only=True)


def chat_model(tokenizer: Any, *, seed: int = 0, layers: int = 2) -> Model:
    """Returns a tiny random Llama (d_model 64) with ``tokenizer``'s vocabulary, as a Model."""
    import transformers

    config = transformers.LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    hf = transformers.AutoModelForCausalLM.from_config(
        config, attn_implementation="sdpa", dtype=torch.float32
    ).eval()
    info = ModelInfo(
        name="tiny-chat",
        family="llama",
        source="random",
        weights_sha256=f"random-seed-{seed}",
        dtype="float32",
        device="cpu",
        n_params=sum(p.numel() for p in hf.parameters()),
    )
    return Model(hf, tokenizer, adapter_for(hf.config), info)
