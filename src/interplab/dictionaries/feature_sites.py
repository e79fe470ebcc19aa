"""Feature sites: a dictionary's features and its error term, named like any other site.

A `FeatureSite` is a frozen value ``(site, dictionary, feature, error)``. Its one string form is
parsed and printed here and nowhere else (the lead moves it into `interplab.sites` later):

    L12.resid_post.sae[res12]           every feature of dictionary ``res12`` at L12.resid_post
    L12.resid_post.sae[res12].f123      feature 123
    L12.resid_post.sae[res12].error     the error term: what the dictionary fails to reconstruct
    L6.mlp_out.sae[tc6].f7              a transcoder's feature, named at the site it writes

``site`` is the site the dictionary reconstructs (an SAE's own site; a transcoder's output).
Dictionary names are letters, digits and ``_ - . :``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from interplab.sites import Site, SiteError

_NAME = re.compile(r"^[A-Za-z0-9_.:\-]+$")
_TAIL = re.compile(r"^(?:\.f(?P<feature>\d+)|\.(?P<error>error))?$")
_MARK = ".sae["


@dataclass(frozen=True)
class FeatureSite:
    """One feature (``feature``), the error term (``error``), or all features (neither) of the
    dictionary ``dictionary`` spliced at ``site``."""

    site: Site
    dictionary: str
    feature: int | None = None
    error: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.site, Site):
            object.__setattr__(self, "site", Site.parse(self.site))
        if not isinstance(self.dictionary, str) or not _NAME.match(self.dictionary):
            raise SiteError(
                f"dictionary name {self.dictionary!r} must be letters, digits and _ - . : only"
            )
        if self.error and self.feature is not None:
            raise SiteError("a feature site names one feature or the error term, not both")
        if self.feature is not None and (not isinstance(self.feature, int) or self.feature < 0):
            raise SiteError(f"feature index must be a non-negative int, got {self.feature!r}")

    @classmethod
    def parse(cls, text: str | FeatureSite) -> FeatureSite:
        """Returns the FeatureSite ``'L12.resid_post.sae[res].f123'`` names (values pass through)."""
        if isinstance(text, FeatureSite):
            return text
        if not isinstance(text, str):
            raise SiteError(
                f"a feature site is a string like 'L3.resid_post.sae[name].f7', not {text!r}"
            )
        s = text.strip()
        at = s.find(_MARK)
        close = s.find("]", at + len(_MARK)) if at >= 0 else -1
        tail = _TAIL.match(s[close + 1 :]) if close >= 0 else None
        if at < 0 or close < 0 or tail is None:
            raise SiteError(
                f"cannot parse feature site {text!r}; write '<site>.sae[<name>]', "
                "'<site>.sae[<name>].f<index>' or '<site>.sae[<name>].error', e.g. "
                "'L12.resid_post.sae[res12].f123'"
            )
        feature = tail["feature"]
        return cls(
            Site.parse(s[:at]),
            s[at + len(_MARK) : close],
            None if feature is None else int(feature),
            tail["error"] is not None,
        )

    def __str__(self) -> str:
        tail = ".error" if self.error else "" if self.feature is None else f".f{self.feature}"
        return f"{self.site}{_MARK}{self.dictionary}]{tail}"

    def with_feature(self, feature: int | None) -> FeatureSite:
        """Returns the site of one feature of the same dictionary (None: all features)."""
        return FeatureSite(self.site, self.dictionary, feature)

    @property
    def features(self) -> FeatureSite:
        """Returns the site naming all features of this dictionary."""
        return FeatureSite(self.site, self.dictionary)


def is_feature_site(text: object) -> bool:
    """Returns whether ``text`` is a FeatureSite or a string in its form."""
    return isinstance(text, FeatureSite) or (isinstance(text, str) and _MARK in text)


__all__ = ["FeatureSite", "is_feature_site"]
