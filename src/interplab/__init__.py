"""interplab: look inside open language models, test causal hypotheses, defend the results.

import interplab as ip
model = ip.load()                                   # SmolLM2-135M-Instruct, embedded
with model.capture(["L12.resid_post", "L3.attn.z"]) as cache:
    logits = model("The Eiffel Tower is located in the city of")
run = model.run(prompts, interventions=[ip.Patch("L5.resid_post", value, positions=[-1])])
"""

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
    Scale,
    load,
)
from interplab.models import ModelInfo, ModelNotFoundError, embedded_models
from interplab.sites import Component, Dimensions, Site, SiteError

__version__ = "0.1.0"

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
    "Scale",
    "Site",
    "SiteError",
    "__version__",
    "embedded_models",
    "load",
]
