"""Feature splitting and first-letter absorption of a dictionary, as plain data.

Splitting (Bricken et al. 2023; Chanin et al. 2024): pairs of features whose decoder directions
nearly coincide (cosine above a threshold) read one direction twice. Whether they fire on the
same tokens tells the two readings apart: *split* pairs almost never fire together (Jaccard of
their firing sets below ``exclusive``: one concept divided by context), *redundant* pairs mostly
do (Jaccard above ``redundant``: a duplicate latent).

Absorption (Chanin et al. 2024, "A is for Absorption"): for each first letter with enough words,
a logistic probe on the dictionary's input says whether a word token starts with that letter;
the letter's *main feature* is the live feature whose decoder is closest to the probe direction.
On held-out words the probe gets right, a *miss* is a token where the main feature is silent,
and an *absorbed* miss is one where another active feature carries the probe direction instead
(its decoder cosine with the probe above ``aligned``): the letter was absorbed into a more
specific feature. The miss rate bounds absorption from above.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from interplab.provenance import Provenance
from interplab.results.base import Result
from interplab.stats import Summary, summarize


@dataclass(frozen=True)
class SplitPair:
    """Two features with nearly the same decoder direction and how often they fire together."""

    a: int
    b: int
    cosine: float
    jaccard: float
    fires_a: int
    fires_b: int
    together: int


@dataclass(frozen=True)
class LetterAbsorption:
    """One first letter: its probe, main feature, and what happens on the probe's hits."""

    letter: str
    n_words: int
    probe_f1: float  # held-out F1 of the letter probe
    main_feature: int
    main_cosine: float  # decoder cosine of the main feature with the probe direction
    hits: int  # held-out words of the letter the probe gets right
    misses: int  # ... where the main feature is silent
    absorbed: int  # ... silent while another active feature carries the probe direction


@dataclass(frozen=True)
class DictionaryDiagnostics(Result):
    """Splitting and absorption of one dictionary (see the module docstring)."""

    technique = "dictionary_diagnostics"

    name: str
    d_sae: int
    n_tokens: int
    cosine_threshold: float
    exclusive: float
    redundant: float
    pairs: tuple[SplitPair, ...]
    letters: tuple[LetterAbsorption, ...]
    aligned: float
    provenance: Provenance

    @property
    def split_fraction(self) -> float:
        """Fraction of high-cosine pairs that almost never fire together."""
        if not self.pairs:
            return float("nan")
        return float(np.mean([p.jaccard < self.exclusive for p in self.pairs]))

    @property
    def redundant_fraction(self) -> float:
        if not self.pairs:
            return float("nan")
        return float(np.mean([p.jaccard > self.redundant for p in self.pairs]))

    def absorption_rates(self) -> np.ndarray:
        """Per letter, absorbed misses over hits (NaN without hits)."""
        return np.array(
            [x.absorbed / x.hits if x.hits else np.nan for x in self.letters], dtype=np.float64
        )

    def miss_rates(self) -> np.ndarray:
        return np.array(
            [x.misses / x.hits if x.hits else np.nan for x in self.letters], dtype=np.float64
        )

    def summary(self) -> Summary:
        """Mean absorption rate over letters, with its bootstrap CI (letters are the units)."""
        rates = self.absorption_rates()
        return summarize(rates[np.isfinite(rates)])

    def describe(self) -> str:
        rates = self.absorption_rates()
        ok = rates[np.isfinite(rates)]
        s = self.summary() if ok.size >= 2 else None
        absorbed = (
            f"mean first-letter absorption {s.mean.item():.3f} (95% CI {s.ci_low.item():.3f} to "
            f"{s.ci_high.item():.3f}) over {ok.size} letters, miss rate "
            f"{np.nanmean(self.miss_rates()):.3f}"
            if s is not None
            else "too few letters for an absorption estimate"
        )
        if self.pairs:
            pairs = (
                f"{len(self.pairs)} feature pairs with decoder cosine > {self.cosine_threshold:g}; "
                f"{self.split_fraction:.0%} split (Jaccard < {self.exclusive:g}), "
                f"{self.redundant_fraction:.0%} redundant (> {self.redundant:g})"
            )
        else:
            pairs = f"no pair of live features with decoder cosine > {self.cosine_threshold:g}"
        return f"{self.name}: {pairs} on {self.n_tokens:,} tokens; {absorbed}"


__all__ = ["DictionaryDiagnostics", "LetterAbsorption", "SplitPair"]
