"""interplab: look inside open language models, test causal hypotheses, defend the results.

import interplab as ip
model = ip.load()                                   # SmolLM2-135M-Instruct, embedded
with model.capture(["L12.resid_post", "L3.attn.z"]) as cache:
    logits = model("The Eiffel Tower is located in the city of")
run = model.run(prompts, interventions=[ip.Patch("L5.resid_post", value, positions=[-1])])

Importing the package imports nothing heavy: each name below is loaded from its module on first
use (PEP 562), so ``import interplab.stats`` or ``interplab.results.load(path)`` in a process
without torch never loads torch. Subpackages (``ip.viz``, ``ip.stats``, ...) load the same way.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from interplab import configs as configs
    from interplab import core as core
    from interplab import data as data
    from interplab import dictionaries as dictionaries
    from interplab import errors as errors
    from interplab import models as models
    from interplab import progress as progress
    from interplab import provenance as provenance
    from interplab import report as report
    from interplab import results as results
    from interplab import sites as sites
    from interplab import stats as stats
    from interplab import store as store
    from interplab import techniques as techniques
    from interplab import types as types
    from interplab import viz as viz
    from interplab.core import (
        Ablate,
        Add,
        Apply,
        Cache,
        InputError,
        Intervention,
        InterventionError,
        Model,
        Patch,
        Run,
        Scale,
        Tokens,
        load,
    )
    from interplab.errors import UserError
    from interplab.models import ModelInfo, ModelNotFoundError, embedded_models
    from interplab.sites import Component, Dimensions, Site, SiteError

__version__ = "0.1.0"

# Public name -> the module that defines it.
_EXPORTS: dict[str, str] = {
    "Ablate": "interplab.core",
    "Add": "interplab.core",
    "Apply": "interplab.core",
    "Cache": "interplab.core",
    "InputError": "interplab.core",
    "Intervention": "interplab.core",
    "InterventionError": "interplab.core",
    "Model": "interplab.core",
    "Patch": "interplab.core",
    "Run": "interplab.core",
    "Scale": "interplab.core",
    "Tokens": "interplab.core",
    "load": "interplab.core",
    "UserError": "interplab.errors",
    "ModelInfo": "interplab.models",
    "ModelNotFoundError": "interplab.models",
    "embedded_models": "interplab.models",
    "Component": "interplab.sites",
    "Dimensions": "interplab.sites",
    "Site": "interplab.sites",
    "SiteError": "interplab.sites",
}

_SUBPACKAGES = frozenset(
    {
        "configs",
        "core",
        "data",
        "dictionaries",
        "errors",
        "models",
        "progress",
        "provenance",
        "report",
        "results",
        "sites",
        "stats",
        "store",
        "techniques",
        "types",
        "viz",
    }
)

__all__ = [
    "Ablate",
    "Add",
    "Apply",
    "Cache",
    "Component",
    "Dimensions",
    "InputError",
    "Intervention",
    "InterventionError",
    "Model",
    "ModelInfo",
    "ModelNotFoundError",
    "Patch",
    "Run",
    "Scale",
    "Site",
    "SiteError",
    "Tokens",
    "UserError",
    "__version__",
    "embedded_models",
    "load",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is not None:
        value = getattr(importlib.import_module(module), name)
        globals()[name] = value  # later lookups skip this function
        return value
    if name in _SUBPACKAGES:
        return importlib.import_module(f"interplab.{name}")
    raise AttributeError(f"module 'interplab' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*__all__, *_SUBPACKAGES})
