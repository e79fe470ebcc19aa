"""Builders shared by the test tiers: tiny randomly initialised HF models of every family.

`tiny_hf(family)` returns an unmodified HF CausalLM of a few layers, float32, eval mode, sdpa
attention, built from a fixed seed so every test sees the same weights. After HF's own init every
parameter gets extra seeded noise: HF starts norm weights at one and biases at zero, where a
mistake in how an adapter treats them (a forgotten bias, ``w`` for ``1 + w``) would not show.
`tiny_model(family)` wraps it as an interplab `Model` with no tokenizer: tests pass token ids.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import torch
from torch import nn

from interplab.core.model import Model
from interplab.data.labelled import LabelledDataset
from interplab.models.load import ModelInfo
from interplab.models.registry import adapter_for

VOCAB = 256
SEED = 0

# Each family's smallest config that still exercises its peculiarities: GQA (4 query heads over 2
# kv heads), q/k norms, fused and interleaved projections, partial rotary, Gemma's sliding window
# (shorter than the test sequences) next to a full-attention layer.
_CONFIGS: dict[str, tuple[str, dict[str, Any]]] = {
    "llama": (
        "LlamaConfig",
        dict(
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=128,
        ),
    ),
    "qwen3": (
        "Qwen3Config",
        dict(
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=16,
            max_position_embeddings=128,
        ),
    ),
    "gpt2": (
        "GPT2Config",
        dict(n_embd=64, n_layer=2, n_head=4, n_positions=128, bos_token_id=0, eos_token_id=0),
    ),
    "neox": (
        "GPTNeoXConfig",
        dict(
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=128,
            use_parallel_residual=True,
        ),
    ),
    "gemma3": (
        "Gemma3TextConfig",
        dict(
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=3,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=16,
            query_pre_attn_scalar=16,
            sliding_window=4,
            layer_types=["sliding_attention", "sliding_attention", "full_attention"],
            max_position_embeddings=128,
        ),
    ),
}

FAMILIES: tuple[str, ...] = tuple(_CONFIGS)


def tiny_hf(family: str, **overrides: Any) -> nn.Module:
    """Returns a tiny random HF CausalLM of ``family`` (config fields can be overridden)."""
    if family not in _CONFIGS:
        raise ValueError(f"unknown family {family!r}; known: {', '.join(FAMILIES)}")
    import transformers

    config_class, fields = _CONFIGS[family]
    config = getattr(transformers, config_class)(
        vocab_size=VOCAB, initializer_range=0.1, **{**fields, **overrides}
    )
    torch.manual_seed(SEED)
    hf = transformers.AutoModelForCausalLM.from_config(
        config, attn_implementation="sdpa", dtype=torch.float32
    )
    g = torch.Generator().manual_seed(SEED + 1)
    with torch.no_grad():
        for p in hf.parameters():  # tied weights appear once
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    return hf.eval()


def tiny_model(family: str, **overrides: Any) -> Model:
    """Returns `tiny_hf(family, **overrides)` wrapped as an interplab Model (no tokenizer)."""
    hf = tiny_hf(family, **overrides)
    adapter = adapter_for(hf.config)
    info = ModelInfo(
        name=f"tiny-{family}",
        family=adapter.family,
        source="random",
        weights_sha256=weights_sha256(hf),
        dtype="float32",
        device="cpu",
        n_params=sum(p.numel() for p in hf.parameters()),
    )
    return Model(hf, None, adapter, info)


def weights_sha256(hf: nn.Module) -> str:
    """Returns a sha256 over the model's named parameters and buffers, in name order."""
    h = hashlib.sha256()
    for name, t in sorted(hf.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def tokens(batch: int = 2, length: int = 9, *, seed: int = 0) -> torch.Tensor:
    """Returns random token ids ``[batch, length]`` from a fixed seed."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(VOCAB, (batch, length), generator=g)


def token_pairs(n: int = 3, length: int = 7, seed: int = 0, positions: tuple[int, ...] = (2, 4)):
    """Returns seeded random `TokenPairs` whose corrupt prompts redraw the tokens at
    ``positions``, with answers 1..n and wrong answers 11..n+10."""
    from interplab.techniques.patching import TokenPairs

    g = torch.Generator().manual_seed(seed)
    clean = torch.randint(VOCAB, (n, length), generator=g)
    corrupt = clean.clone()
    for p in positions:
        corrupt[:, p] = torch.randint(VOCAB, (n,), generator=g)
    return TokenPairs(clean, corrupt, torch.arange(1, n + 1), torch.arange(11, n + 11))


def random_direction(d: int = 64, seed: int = 3) -> torch.Tensor:
    """Returns a seeded random vector ``[d]`` (not normalised), for steering and ablation tests."""
    return torch.randn(d, generator=torch.Generator().manual_seed(seed))


def last_letter_dataset() -> LabelledDataset:
    """Returns 24 random short words labelled by their last letter (``b`` 0, ``a`` 1), in six
    groups: a probe task a character tokenizer can learn."""
    rng = np.random.default_rng(0)
    words = ["".join(rng.choice(list("cdefghijk"), size=rng.integers(2, 5))) for _ in range(24)]
    texts = tuple(w + ("a" if i % 2 else "b") for i, w in enumerate(words))
    return LabelledDataset("last-letter", texts, tuple(i % 2 for i in range(24)),
                           tuple(f"g{i % 6}" for i in range(24)), ("b", "a"))  # fmt: skip
