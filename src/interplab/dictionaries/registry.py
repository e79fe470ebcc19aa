"""Architectures by name: the one table from a config's ``architecture`` to its class.

Transcoders and skip transcoders are not separate classes: every architecture reads ``site`` and
writes ``target`` (`DictionaryConfig.kind`), so a TopK transcoder is a `TopKSAE` whose config
says ``kind="transcoder"``.
"""

from __future__ import annotations

from interplab.dictionaries.base import Dictionary
from interplab.dictionaries.batchtopk import BatchTopKSAE
from interplab.dictionaries.config import ARCHITECTURES, DictionaryConfig, DictionaryError
from interplab.dictionaries.jumprelu import JumpReLUSAE
from interplab.dictionaries.matryoshka import MatryoshkaBatchTopKSAE
from interplab.dictionaries.standard import StandardSAE
from interplab.dictionaries.topk import TopKSAE

REGISTRY: dict[str, type[Dictionary]] = {
    cls.architecture: cls
    for cls in (StandardSAE, TopKSAE, BatchTopKSAE, JumpReLUSAE, MatryoshkaBatchTopKSAE)
}
assert set(REGISTRY) == set(ARCHITECTURES)


def architecture_class(name: str) -> type[Dictionary]:
    """Returns the class registered for architecture ``name``."""
    if name not in REGISTRY:
        raise DictionaryError(
            f"unknown dictionary architecture {name!r}; known: {', '.join(sorted(REGISTRY))}"
        )
    return REGISTRY[name]


def build(config: DictionaryConfig, *, seed: int = 0) -> Dictionary:
    """Returns a freshly initialised dictionary for ``config`` (deterministic given ``seed``)."""
    return architecture_class(config.architecture)(config, seed=seed)


__all__ = ["REGISTRY", "architecture_class", "build"]
