"""Model organisms: Taboo models made here (WordNet hints, LoRA), their registry and checks."""

from interplab.techniques.organisms import registry
from interplab.techniques.organisms.checks import check_organism, guess_scores, vocabulary
from interplab.techniques.organisms.hints import TabooData, hints, taboo_data
from interplab.techniques.organisms.recipe import TabooConfig, apply_adapter, train_taboo
from interplab.techniques.organisms.registry import (
    TABOO,
    Organism,
    OrganismError,
    register,
)

__all__ = [
    "TABOO",
    "Organism",
    "OrganismError",
    "TabooConfig",
    "TabooData",
    "apply_adapter",
    "check_organism",
    "guess_scores",
    "hints",
    "register",
    "registry",
    "taboo_data",
    "train_taboo",
    "vocabulary",
]
