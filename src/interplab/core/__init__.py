"""The only code that touches the HF model: forwards on token batches, capture and intervene,
partial forwards over a cached prefix, and the weights as views."""

from interplab.core.cache import Cache
from interplab.core.hooks import HookSession
from interplab.core.interventions import (
    Ablate,
    Add,
    Apply,
    Intervention,
    InterventionError,
    Patch,
    Scale,
)
from interplab.core.model import Generation, InputError, Model, Run, Tokens, load
from interplab.core.partial import BaseRun, Partial, PartialUnsupported
from interplab.core.weights import Norm, Weights

__all__ = [
    "Ablate",
    "Add",
    "Apply",
    "BaseRun",
    "Cache",
    "Generation",
    "HookSession",
    "InputError",
    "Intervention",
    "InterventionError",
    "Model",
    "Norm",
    "Partial",
    "PartialUnsupported",
    "Patch",
    "Run",
    "Scale",
    "Tokens",
    "Weights",
    "load",
]
