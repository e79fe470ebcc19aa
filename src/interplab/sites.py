"""Sites: typed names for every hookable activation of a decoder-only transformer.

A `Site` is a frozen value ``(layer, component, head)``. Its one string form is parsed and printed
here and nowhere else:

    embed                   the token (and position) embedding: the input to block 0
    L12.resid_pre           the residual stream entering block 12
    L12.resid_mid           after block 12's attention has been added, before its MLP
    L12.resid_post          leaving block 12
    L3.attn.q / .k / .v     per-head queries, keys, values (before rotary embeddings)
    L3.attn.pattern         attention probabilities [batch head pos key_pos]
    L3.attn.z               per-head mixed values, before the output projection
    L3.attn_out             what attention adds to the residual stream
    L3.mlp.in               the MLP's input: the residual after the pre-MLP norm (what
                            transcoders read)
    L3.mlp.pre / .post      MLP pre-activations / neurons (the input to the down projection)
    L3.mlp_out              what the MLP adds to the residual stream
    final_norm              the final normalisation's output
    logits                  the unembedding's output
    L3.attn.z.h5            head 5 only (any of q, k, v, pattern, z)

For ``attn.k`` and ``attn.v`` under grouped-query attention, ``.hN`` names a *query* head and
selects the key/value head that query head reads, so head indices mean the same thing on every
attention site.

A dictionary's features and its error term are sites too (`FeatureSite`), named after the site
the dictionary reconstructs (an SAE's own site; a transcoder's output):

    L12.resid_post.sae[res12]           every feature of dictionary ``res12``
    L12.resid_post.sae[res12].f123      feature 123
    L12.resid_post.sae[res12].error     the error term: what the dictionary fails to reconstruct
    L6.mlp_out.sae[tc6].f7              a transcoder's feature, named at the site it writes

The dictionary itself is attached to the model under its name
(`interplab.dictionaries.attach(model, "res12", sae)`); `parse_any` reads either kind of name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, get_args

from interplab.errors import UserError

Component = Literal[
    "embed",
    "resid_pre",
    "resid_mid",
    "resid_post",
    "attn.q",
    "attn.k",
    "attn.v",
    "attn.pattern",
    "attn.z",
    "attn_out",
    "mlp.in",
    "mlp.pre",
    "mlp.post",
    "mlp_out",
    "final_norm",
    "logits",
]

COMPONENTS: tuple[Component, ...] = get_args(Component)
MODEL_WIDE: frozenset[Component] = frozenset({"embed", "final_norm", "logits"})
PER_HEAD: frozenset[Component] = frozenset({"attn.q", "attn.k", "attn.v", "attn.pattern", "attn.z"})
LAYER_COMPONENTS: tuple[Component, ...] = tuple(c for c in COMPONENTS if c not in MODEL_WIDE)

_SITE_RE = re.compile(r"^L(?P<layer>-?\d+)\.(?P<component>[a-z_.]+?)(?:\.h(?P<head>-?\d+))?$")


class SiteError(UserError):
    """A site string or value that does not name an activation of this model."""


@dataclass(frozen=True, order=True)
class Dimensions:
    """The sizes a site is checked against."""

    n_layers: int
    d_model: int
    n_heads: int
    n_kv_heads: int
    d_head: int
    d_mlp: int
    d_vocab: int

    @property
    def group_size(self) -> int:
        """Query heads per key/value head (1 without grouped-query attention)."""
        return self.n_heads // self.n_kv_heads


@dataclass(frozen=True)
class Site:
    """One hookable activation: ``Site(12, "resid_post")``, ``Site(3, "attn.z", head=5)``."""

    layer: int | None
    component: Component
    head: int | None = None

    def __post_init__(self) -> None:
        if self.component not in COMPONENTS:
            raise SiteError(
                f"unknown component {self.component!r}; valid components: {', '.join(COMPONENTS)}"
            )
        if self.component in MODEL_WIDE:
            if self.layer is not None:
                raise SiteError(f"{self.component!r} is model-wide and takes no layer")
        elif self.layer is None:
            raise SiteError(f"{self.component!r} needs a layer, e.g. 'L0.{self.component}'")
        if self.head is not None and self.component not in PER_HEAD:
            raise SiteError(
                f"{self.component!r} has no heads; per-head components: {', '.join(sorted(PER_HEAD))}"
            )

    @classmethod
    def parse(cls, text: str | Site) -> Site:
        """Returns the Site a string such as ``'L3.attn.z.h5'`` names (a Site passes through)."""
        if isinstance(text, Site):
            return text
        if not isinstance(text, str):
            raise SiteError(f"a site is a Site or a string like 'L3.resid_post', not {text!r}")
        s = text.strip()
        if s in MODEL_WIDE:
            return cls(None, s)  # type: ignore[arg-type]
        m = _SITE_RE.match(s)
        if m is None or m["component"] not in COMPONENTS:
            raise SiteError(
                f"cannot parse site {text!r}; write 'embed', 'final_norm', 'logits', or "
                f"'L<layer>.<component>[.h<head>]' with a component among: "
                f"{', '.join(LAYER_COMPONENTS)}"
            )
        head = int(m["head"]) if m["head"] is not None else None
        return cls(int(m["layer"]), m["component"], head)  # type: ignore[arg-type]

    def __str__(self) -> str:
        if self.layer is None:
            return self.component
        head = f".h{self.head}" if self.head is not None else ""
        return f"L{self.layer}.{self.component}{head}"

    def with_head(self, head: int | None) -> Site:
        """Returns this site restricted to one head (or widened to all heads with None)."""
        return Site(self.layer, self.component, head)

    @property
    def sort_key(self) -> tuple[int, int, int]:
        """Orders sites by depth in the forward pass, then component order, then head."""
        layer = (
            -1 if self.component == "embed" else (self.layer if self.layer is not None else 1 << 30)
        )
        return (layer, COMPONENTS.index(self.component), -1 if self.head is None else self.head)


SiteLike = Site | str


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


AnySite = Site | FeatureSite


def parse_any(text: str | Site | FeatureSite) -> Site | FeatureSite:
    """Returns the Site or FeatureSite a string names (values pass through)."""
    if isinstance(text, Site | FeatureSite):
        return text
    return FeatureSite.parse(text) if is_feature_site(text) else Site.parse(text)


def check_site(site: SiteLike, dims: Dimensions) -> Site:
    """Returns the parsed site, or raises SiteError listing what is valid for these dimensions."""
    s = Site.parse(site)
    if s.layer is not None and not 0 <= s.layer < dims.n_layers:
        raise SiteError(
            f"layer {s.layer} is out of range in {str(site)!r}: this model has {dims.n_layers} "
            f"layers, valid layers are 0..{dims.n_layers - 1}"
        )
    if s.head is not None and not 0 <= s.head < dims.n_heads:
        raise SiteError(
            f"head {s.head} is out of range in {str(site)!r}: this model has {dims.n_heads} query "
            f"heads per layer, valid heads are 0..{dims.n_heads - 1}"
        )
    return s


def all_sites(dims: Dimensions, components: tuple[Component, ...] = COMPONENTS) -> list[Site]:
    """Returns every site of a model with these dimensions, in forward-pass order (no per-head)."""
    out: list[Site] = []
    if "embed" in components:
        out.append(Site(None, "embed"))
    for layer in range(dims.n_layers):
        out.extend(Site(layer, c) for c in LAYER_COMPONENTS if c in components)
    out.extend(Site(None, c) for c in ("final_norm", "logits") if c in components)
    return out


def sites_for(component: Component, dims: Dimensions) -> list[Site]:
    """Returns the site of one component at every layer (``resid_post`` → L0..L{n-1})."""
    if component in MODEL_WIDE:
        return [Site(None, component)]
    return [Site(layer, component) for layer in range(dims.n_layers)]


__all__ = [
    "COMPONENTS",
    "LAYER_COMPONENTS",
    "MODEL_WIDE",
    "PER_HEAD",
    "AnySite",
    "Component",
    "Dimensions",
    "FeatureSite",
    "Site",
    "SiteError",
    "SiteLike",
    "all_sites",
    "check_site",
    "is_feature_site",
    "parse_any",
    "sites_for",
]
