"""Attaching dictionaries to a model, so their features are sites every technique accepts.

    feature = dl.attach(model, "res15", sae)          # -> FeatureSite L15.resid_pre.sae[res15]
    top_examples(model, corpus, site="L15.resid_pre.sae[res15]", neurons=[3, 7])
    feature_patching(model, pairs, ["L15.resid_pre.sae[res15].f3"])
    dl.capture(model, prompts, ["L15.resid_pre.sae[res15]", "L15.resid_pre.sae[res15].error"])

1. `attach` checks the dictionary fits the model (its sites exist and have its widths) and keeps
   it in ``model.attached`` under its name; a `FeatureSite` names it by that name.
2. `resolve` turns a FeatureSite into the attached dictionary, the site it reads (an SAE's own
   site; a transcoder's MLP input) and the site it writes, or says what is attached.
3. Reading a feature needs no splicing: the features are the dictionary's encoding of the
   activation at its read site; the error term is the write site's activation minus the
   reconstruction (`capture`). Editing a feature with the error term kept changes the write site
   by ``(new - old) * W_dec[f]`` (`decoder_rows`), which is how patching and steering act on one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from interplab.core.model import Inputs, Model, Tokens
from interplab.dictionaries.base import Dictionary
from interplab.dictionaries.config import DictionaryError
from interplab.dictionaries.splice import check_fits
from interplab.sites import FeatureSite, Site, SiteLike, is_feature_site, parse_any


def attach(model: Model, name: str, dictionary: Dictionary) -> FeatureSite:
    """Attaches ``dictionary`` to ``model`` as ``name`` (replacing one of that name) and returns
    the FeatureSite naming all its features."""
    if not isinstance(dictionary, Dictionary):
        raise DictionaryError(
            f"attach({name!r}, ...) needs a Dictionary (load one with "
            f"interplab.dictionaries.load_dictionary), not {type(dictionary).__name__}"
        )
    FeatureSite(Site(0, "resid_post"), name)  # checks the name
    write = check_fits(model, dictionary, name)
    model.attached[name] = dictionary
    return FeatureSite(write, name)


def detach(model: Model, name: str) -> None:
    """Removes the dictionary attached as ``name`` (no error if none is)."""
    model.attached.pop(name, None)


def attached(model: Model) -> dict[str, Dictionary]:
    """Returns the dictionaries attached to ``model`` by name."""
    return {k: v for k, v in model.attached.items() if isinstance(v, Dictionary)}


@dataclass(frozen=True)
class Resolved:
    """A feature site with its dictionary and the sites that dictionary reads and writes."""

    site: FeatureSite
    dictionary: Dictionary
    read: Site
    write: Site

    @property
    def features(self) -> list[int]:
        """The feature indices the site names (one, or all of them)."""
        if self.site.feature is not None:
            return [self.site.feature]
        return list(range(self.dictionary.d_sae))


def resolve(model: Model, site: FeatureSite | str) -> Resolved:
    """Returns the attached dictionary a feature site names, checked against it."""
    fs = FeatureSite.parse(site)
    found = attached(model)
    d = found.get(fs.dictionary)
    if d is None:
        have = ", ".join(sorted(found)) or "none"
        raise DictionaryError(
            f"{fs}: no dictionary {fs.dictionary!r} is attached to {model.info.name} (attached: "
            f"{have}); attach one with interplab.dictionaries.attach(model, "
            f"{fs.dictionary!r}, dictionary) or --sae {fs.dictionary}=DIR on the command line"
        )
    assert d.config.site is not None and d.config.write_site is not None  # checked by attach
    read, write = model.sites([d.config.site, d.config.write_site])
    if fs.site != write:
        raise DictionaryError(
            f"{fs}: dictionary {fs.dictionary!r} writes {write}, so its features are "
            f"{write}.sae[{fs.dictionary}].f<i>"
        )
    if fs.feature is not None and fs.feature >= d.d_sae:
        raise DictionaryError(f"{fs}: dictionary {fs.dictionary!r} has features 0..{d.d_sae - 1}")
    return Resolved(fs, d, read, write)


def encode_at(
    resolved: Resolved, read_acts: Tensor, features: Sequence[int] | None = None
) -> Tensor:
    """Returns the feature activations ``[..., n_features]`` (float32) of the read site's
    activations, for ``features`` (default: those the site names)."""
    d = resolved.dictionary
    f = d.encode(read_acts.to(d.W_enc.dtype)).float()
    chosen = resolved.features if features is None else list(features)
    if len(chosen) == f.shape[-1]:
        return f
    return f[..., torch.tensor(chosen, device=f.device)]


def decoder_rows(resolved: Resolved, features: Sequence[int] | None = None) -> Tensor:
    """Returns the decoder rows ``[n_features, d_out]`` (float32) of the chosen features: the
    change of the write site per unit of each feature."""
    chosen = resolved.features if features is None else list(features)
    return resolved.dictionary.W_dec.detach().float()[torch.tensor(chosen)]


def capture(
    model: Model, inputs: Inputs | Tokens, sites: Sequence[FeatureSite | SiteLike]
) -> dict[Site | FeatureSite, Tensor]:
    """Returns ordinary sites' activations and attached dictionaries' features (``[batch, pos,
    n_features]``, or ``[batch, pos]`` for one feature) and error terms (``[batch, pos, d]``)
    from one forward of the unmodified model."""
    parsed = [parse_any(s) for s in sites]
    resolved = [resolve(model, s) for s in parsed if isinstance(s, FeatureSite)]
    plain = [s for s in parsed if isinstance(s, Site)]
    needed = plain + [r.read for r in resolved] + [r.write for r in resolved if r.site.error]
    with torch.no_grad():
        cache = model.run(inputs, capture=list(dict.fromkeys(needed))).cache
        return _read(cache, plain, resolved)


def _read(
    cache: Any, plain: list[Site], resolved: list[Resolved]
) -> dict[Site | FeatureSite, Tensor]:
    out: dict[Site | FeatureSite, Tensor] = {s: cache[s] for s in plain}
    for r in resolved:
        x_in = cache[r.read]
        d = r.dictionary
        if r.site.error:
            recon = d(x_in.to(d.W_enc.dtype))
            out[r.site] = cache[r.write] - recon.to(cache[r.write].dtype)
        else:
            f = encode_at(r, x_in)
            out[r.site] = f[..., 0] if r.site.feature is not None else f
    return out


def split_sites(
    sites: Sequence[FeatureSite | SiteLike],
) -> tuple[list[Site], list[FeatureSite]]:
    """Returns the ordinary sites and the feature sites of a mixed list."""
    plain: list[Site] = []
    features: list[FeatureSite] = []
    for s in sites:
        if is_feature_site(s):
            features.append(FeatureSite.parse(s))  # type: ignore[arg-type]
        else:
            plain.append(Site.parse(s))  # type: ignore[arg-type]
    return plain, features


__all__ = [
    "Resolved",
    "attach",
    "attached",
    "capture",
    "decoder_rows",
    "detach",
    "encode_at",
    "resolve",
    "split_sites",
]
