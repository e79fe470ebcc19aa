"""Auditing games: contestants guess the hidden property of model organisms; a scorer keeps the key."""

from interplab.techniques.audit.contestants import (
    CONTESTANTS,
    AuditContext,
    Contestant,
    ContestantSkipped,
    ContestantSpec,
    rank_words,
    register_contestant,
)
from interplab.techniques.audit.harness import (
    BASELINE,
    DEFAULT_CONTESTANTS,
    audit,
    cached_sae,
    score,
)

__all__ = [
    "BASELINE",
    "CONTESTANTS",
    "DEFAULT_CONTESTANTS",
    "AuditContext",
    "Contestant",
    "ContestantSkipped",
    "ContestantSpec",
    "audit",
    "cached_sae",
    "rank_words",
    "register_contestant",
    "score",
]
