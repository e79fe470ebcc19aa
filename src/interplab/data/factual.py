"""Return factual-recall contrast pairs built from real country-capital pairs.

Factual recall is the standard testbed for locating where a model stores and retrieves facts
(Meng et al. 2022, "Locating and Editing Factual Associations in GPT", arXiv:2202.05262; Geva et
al. 2023, "Dissecting Recall of Factual Associations"). The facts here are the 116 real
country-capital pairs of the word2vec analogy questions (see `assets.capital_pairs`).

1. Keep the countries whose capital is a single token with a leading space (" Paris"), because
   the metric reads one logit per answer. Excluded facts count as dropped, once per template.
2. For each template and each kept country, fill the template ("The capital of France is") and
   find the other countries whose filled prompt has the same number of tokens: only those can be
   the corrupt subject without breaking position-by-position patching.
3. Pick one such partner with the seeded generator; the corrupt prompt is the partner's prompt
   and the wrong answer is the partner's capital. A country with no same-length partner is
   dropped and counted.
4. The group id is the template index, so per-template effects can be separated.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING

from interplab.data.alignment import encode, single_token_id
from interplab.data.assets import CapitalPair, capital_pairs
from interplab.data.pairs import ContrastPair, PairDataset

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

FACTUAL_TEMPLATES: tuple[str, ...] = (
    "The capital of {country} is",
    "The capital city of {country} is",
    "{country}'s capital city is",
)


@dataclass(frozen=True)
class FactualConfig:
    """Choices for `factual_pairs`, validated on construction."""

    templates: tuple[str, ...] = FACTUAL_TEMPLATES
    seed: int = 0
    n: int | None = None

    def __post_init__(self) -> None:
        if not self.templates:
            raise ValueError("templates must not be empty")
        for template in self.templates:
            if template.count("{country}") != 1:
                raise ValueError(f"template must contain '{{country}}' once: {template!r}")
        if self.n is not None and self.n < 1:
            raise ValueError(f"n must be >= 1 or None, got {self.n}")


def factual_pairs(
    tokenizer: PreTrainedTokenizerBase,
    templates: tuple[str, ...] = FACTUAL_TEMPLATES,
    seed: int = 0,
    n: int | None = None,
) -> PairDataset:
    """Return aligned "The capital of X is" -> " capital" pairs from real countries."""
    config = FactualConfig(templates=tuple(templates), seed=seed, n=n)
    facts = capital_pairs()
    usable = [f for f in facts if single_token_id(tokenizer, " " + f.capital) is not None]
    excluded = sorted(f.country for f in facts if f not in usable)
    rng = random.Random(seed)
    pairs: list[ContrastPair] = []
    dropped = 0
    for template_index, template in enumerate(config.templates):
        # Facts whose capital is multi-token are candidates this template could not use.
        dropped += len(excluded)
        by_length: dict[int, list[CapitalPair]] = defaultdict(list)
        for fact in usable:
            by_length[len(encode(tokenizer, template.format(country=fact.country)))].append(fact)
        for fact in usable:
            length = len(encode(tokenizer, template.format(country=fact.country)))
            partners = [p for p in by_length[length] if p.capital != fact.capital]
            if not partners:
                dropped += 1
                continue
            partner = rng.choice(partners)
            pairs.append(
                ContrastPair(
                    clean=template.format(country=fact.country),
                    corrupt=template.format(country=partner.country),
                    answer=" " + fact.capital,
                    wrong_answer=" " + partner.capital,
                    group=f"t{template_index:02d}",
                )
            )
    if config.n is not None:
        if config.n > len(pairs):
            raise ValueError(f"asked for {config.n} factual pairs but only {len(pairs)} align")
        pairs = sorted(rng.sample(pairs, config.n), key=pairs.index)
    params = {
        "templates": list(config.templates),
        "n": config.n,
        "excluded_countries": excluded,
        "n_facts": len(facts),
    }
    return PairDataset("factual-capitals", tuple(pairs), seed, params, dropped)
