"""Load HF models offline; one declarative adapter per architecture family."""

from interplab.models.adapter import Adapter, Projection
from interplab.models.load import (
    DEFAULT_MODEL,
    EMBEDDED,
    Loaded,
    ModelInfo,
    ModelNotFoundError,
    cache_root,
    embedded_models,
    load_hf,
)
from interplab.models.registry import ADAPTERS, UnsupportedArchitectureError, adapter_for

__all__ = [
    "ADAPTERS",
    "DEFAULT_MODEL",
    "EMBEDDED",
    "Adapter",
    "Loaded",
    "ModelInfo",
    "ModelNotFoundError",
    "Projection",
    "UnsupportedArchitectureError",
    "adapter_for",
    "cache_root",
    "embedded_models",
    "load_hf",
]
