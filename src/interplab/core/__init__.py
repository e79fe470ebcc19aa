"""Capture and intervene: interventions as values, the hook session, the activation cache."""

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

__all__ = [
    "Ablate",
    "Add",
    "Apply",
    "Cache",
    "Generation",
    "HookSession",
    "InputError",
    "Intervention",
    "InterventionError",
    "Model",
    "Patch",
    "Run",
    "Scale",
    "Tokens",
    "load",
]
