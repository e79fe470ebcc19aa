"""The explicit registry of architecture adapters, keyed by HF ``config.model_type``."""

from __future__ import annotations

from typing import Any

from interplab.errors import UserError
from interplab.models.adapter import Adapter
from interplab.models.gemma3 import GEMMA3
from interplab.models.gpt2 import GPT2
from interplab.models.llama import LLAMA, QWEN3
from interplab.models.neox import NEOX

ADAPTERS: tuple[Adapter, ...] = (LLAMA, QWEN3, GPT2, NEOX, GEMMA3)


class UnsupportedArchitectureError(UserError):
    """A model whose architecture no adapter describes."""


def adapter_for(config: Any) -> Adapter:
    """Returns the adapter for a HF config, or an error listing the supported model types."""
    model_type = getattr(config, "model_type", None)
    for adapter in ADAPTERS:
        if model_type in adapter.model_types:
            return adapter
    supported = sorted(t for a in ADAPTERS for t in a.model_types)
    raise UnsupportedArchitectureError(
        f"no adapter for model_type {model_type!r}; supported: {', '.join(supported)}. "
        "An adapter is one short declarative file in interplab/models/ (see llama.py)."
    )
