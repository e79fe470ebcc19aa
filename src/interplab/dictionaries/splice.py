"""Splicing: the model runs with a dictionary in place of the site it reconstructs.

    with spliced(model, {"res6": sae}) as sp:              # error term kept: outputs unchanged
        run = sp.run(prompts, capture=["L6.resid_post.sae[res6]"])
        run.features["L6.resid_post.sae[res6]"]            # [batch, pos, d_sae]
        ablated = sp.run(prompts, edits=[sp.ablate("L6.resid_post.sae[res6].f123")])
        steered = sp.run(prompts, edits=[sp.steer("L6.resid_post.sae[res6].f123", 8.0)])

1. Each dictionary replaces its write site (an SAE's own site; a transcoder's output, e.g.
   ``L6.mlp_out``, computed from its input site, e.g. ``L6.mlp.in``, read earlier in the same
   forward) through core's `Apply` intervention, for every forward inside the block.
2. With ``error=True`` (the default) the error term ``x - recon`` is added back, so the model
   computes exactly what it computed before: with no edits the site is left untouched (bit-equal
   logits), and an edit adds only its own change, ``(f' - f) @ W_dec``.
3. With ``error=False`` the site becomes the reconstruction itself (what "CE loss recovered"
   measures); the first ``skip_first`` positions (the attention sink the dictionary was not
   trained on) keep their original values, and so do mid-sequence sinks whose norm exceeds
   ``outlier_ratio`` times the median (`harvest.outliers`; harvesting drops them too).
4. Features and error terms are `FeatureSite`s (``L6.resid_post.sae[res6].f123``,
   ``....error``): `Spliced.run` captures them beside ordinary sites, and `FeatureEdit`s ablate,
   scale, set or steer (add to) a feature, or scale or ablate the error term.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from interplab.core.cache import Cache
from interplab.core.interventions import Apply, Intervention
from interplab.core.model import Inputs, Model, Tokens
from interplab.dictionaries.base import Dictionary
from interplab.dictionaries.config import DictionaryError
from interplab.dictionaries.feature_sites import FeatureSite, is_feature_site
from interplab.dictionaries.harvest import outliers, site_width
from interplab.sites import Site, SiteLike

EditOp = Literal["ablate", "scale", "set", "add"]


@dataclass(frozen=True)
class FeatureEdit:
    """An edit of one feature (or the error term): ablate (set to 0), scale by ``value``, set to
    ``value``, or add ``value`` (steering), at ``positions`` (None: all)."""

    site: FeatureSite
    op: EditOp
    value: float = 0.0
    positions: tuple[int, ...] | None = None

    def apply(self, x: Tensor) -> Tensor:
        """Returns ``x`` ``[batch, pos]`` edited at the chosen positions."""
        new = {
            "ablate": lambda v: torch.zeros_like(v),
            "scale": lambda v: v * self.value,
            "set": lambda v: torch.full_like(v, self.value),
            "add": lambda v: v + self.value,
        }[self.op]
        if self.positions is None:
            return new(x)
        out = x.clone()
        index = torch.tensor(self.positions)
        out[:, index] = new(x[:, index])
        return out


@dataclass(frozen=True)
class SplicedRun:
    """Logits, ordinary captures, and feature captures of one spliced forward."""

    logits: Tensor
    cache: Cache
    features: dict[FeatureSite, Tensor]
    tokens: Tokens

    def __getitem__(self, site: FeatureSite | str) -> Tensor:
        return self.features[FeatureSite.parse(site)]


class Spliced:
    """A model with dictionaries spliced in; build it with `spliced`."""

    def __init__(
        self,
        model: Model,
        dictionaries: Mapping[str, Dictionary],
        *,
        error: bool = True,
        skip_first: int = 1,
        outlier_ratio: float | None = 10.0,
    ) -> None:
        self.model, self.error, self.skip_first = model, error, skip_first
        self.outlier_ratio = outlier_ratio
        self.dictionaries = dict(dictionaries)
        self.sites: dict[str, Site] = {}
        for name, d in self.dictionaries.items():
            FeatureSite(Site(0, "resid_post"), name)  # checks the name
            self.sites[name] = check_fits(model, d, name)
        self._edits: list[FeatureEdit] = []
        self._record: dict[FeatureSite, list[Tensor]] = {}
        self._inputs: dict[str, Tensor] = {}

    # -- the interventions ----------------------------------------------------------------------

    def interventions(self) -> list[Intervention]:
        """Returns the `Apply` interventions that splice every dictionary in."""
        out: list[Intervention] = []
        for name, d in self.dictionaries.items():
            if d.config.kind != "sae":
                assert d.site is not None
                out.append(Apply(d.site, self._stasher(name)))
            out.append(Apply(self.sites[name], self._replacer(name)))
        return out

    def _stasher(self, name: str):
        def stash(x: Tensor) -> Tensor:
            self._inputs[name] = x
            return x

        return stash

    def _replacer(self, name: str):
        d = self.dictionaries[name]

        def replace(x: Tensor) -> Tensor:
            x_in = x if d.config.kind == "sae" else self._inputs.pop(name)
            with torch.no_grad():
                return self._replace(name, d, x, x_in)

        return replace

    def _replace(self, name: str, d: Dictionary, x: Tensor, x_in: Tensor) -> Tensor:
        features = d.encode(x_in.to(d.W_enc.dtype))
        edited = features
        edits = [e for e in self._edits if e.site.dictionary == name]
        for e in edits:
            if e.site.feature is not None:
                edited = edited.clone() if edited is features else edited
                edited[..., e.site.feature] = e.apply(edited[..., e.site.feature])
        site = self.sites[name]
        recon = None
        error_edits = [e for e in edits if e.site.error]
        wants_error = any(fs.error and fs.dictionary == name for fs in self._record)
        if not self.error or error_edits or wants_error:
            recon = d.decode(features)
            skip = d.skip_term(x_in)
            recon = recon if skip is None else recon + skip
        error = None if recon is None else x - recon.to(x.dtype)
        for fs, values in self._record.items():
            if fs.dictionary == name:
                if fs.error:
                    assert error is not None  # computed whenever an error term is recorded
                    values.append(error)
                else:
                    values.append(edited if fs.feature is None else edited[..., fs.feature])
        if self.error:
            if edited is features and not error_edits:
                return x  # nothing changed: the site keeps its exact values
            delta = (edited - features) @ d.W_dec
            if error_edits:
                assert error is not None
                new_error = error
                for e in error_edits:
                    new_error = _apply_vector(e, new_error)
                delta = delta + (new_error - error)
            return x + delta.to(x.dtype)
        if error_edits:
            raise DictionaryError(
                f"{site}.sae[{name}].error is not in the model when splicing without the error "
                "term (error=False); splice with error=True to edit it"
            )
        out = d.decode(edited) if edited is not features else recon
        assert out is not None
        if edited is not features:
            skip = d.skip_term(x_in)
            out = out if skip is None else out + skip
        out = out.to(x.dtype).clone()
        s = self.skip_first
        out[:, :s] = x[:, :s]
        sinks = outliers([x_in[:, s:], x[:, s:]], self.outlier_ratio)
        out[:, s:][sinks] = x[:, s:][sinks]
        return out

    # -- what users call ------------------------------------------------------------------------

    def run(
        self,
        inputs: Inputs | Tokens,
        *,
        capture: Sequence[FeatureSite | SiteLike] = (),
        edits: Sequence[FeatureEdit] = (),
        interventions: Sequence[Intervention] = (),
    ) -> SplicedRun:
        """Returns one spliced forward: logits, captured sites and features, with ``edits``."""
        features = [FeatureSite.parse(s) for s in capture if is_feature_site(s)]  # type: ignore[arg-type]
        plain = [s for s in capture if not is_feature_site(s)]
        for fs in features:
            self._check(fs)
        with self.editing(edits):
            self._record = {fs: [] for fs in features}
            try:
                run = self.model.run(inputs, capture=plain, interventions=interventions)  # type: ignore[arg-type]
                recorded = self._record
            finally:
                self._record = {}
        out = {fs: torch.cat(v, dim=1) if len(v) > 1 else v[0] for fs, v in recorded.items() if v}
        return SplicedRun(run.logits, run.cache, out, run.tokens)

    def capture(
        self, inputs: Inputs | Tokens, sites: Sequence[FeatureSite | SiteLike]
    ) -> dict[FeatureSite, Tensor]:
        """Returns the features (or error terms) at ``sites`` on one forward."""
        return self.run(inputs, capture=sites).features

    @contextlib.contextmanager
    def editing(self, edits: Sequence[FeatureEdit]) -> Iterator[None]:
        """Applies ``edits`` to every forward inside the block (any technique's forwards too)."""
        for e in edits:
            self._check(e.site)
        before = self._edits
        self._edits = [*before, *edits]
        try:
            yield
        finally:
            self._edits = before

    def ablate(
        self, site: FeatureSite | str, positions: Sequence[int] | None = None
    ) -> FeatureEdit:
        """Returns an edit setting a feature (or the error term) to zero."""
        return self._edit(site, "ablate", 0.0, positions)

    def scale(
        self, site: FeatureSite | str, factor: float, positions: Sequence[int] | None = None
    ) -> FeatureEdit:
        return self._edit(site, "scale", factor, positions)

    def set(
        self, site: FeatureSite | str, value: float, positions: Sequence[int] | None = None
    ) -> FeatureEdit:
        """Returns an edit clamping a feature to ``value`` (patching a feature)."""
        return self._edit(site, "set", value, positions)

    def steer(
        self, site: FeatureSite | str, amount: float, positions: Sequence[int] | None = None
    ) -> FeatureEdit:
        """Returns an edit adding ``amount`` to a feature (its decoder row times ``amount``)."""
        return self._edit(site, "add", amount, positions)

    def _edit(
        self, site: FeatureSite | str, op: EditOp, value: float, positions: Sequence[int] | None
    ) -> FeatureEdit:
        fs = FeatureSite.parse(site)
        self._check(fs)
        if fs.feature is None and not fs.error:
            raise DictionaryError(f"{fs} names every feature; edit one feature (.f<i>) or .error")
        if fs.error and op in ("set", "add"):
            raise DictionaryError(f"the error term can be ablated or scaled, not {op}")
        return FeatureEdit(fs, op, float(value), None if positions is None else tuple(positions))

    def _check(self, fs: FeatureSite) -> None:
        if fs.dictionary not in self.dictionaries:
            raise DictionaryError(
                f"no dictionary {fs.dictionary!r} is spliced; spliced: {', '.join(self.dictionaries)}"
            )
        if fs.site != self.sites[fs.dictionary]:
            raise DictionaryError(
                f"dictionary {fs.dictionary!r} is spliced at {self.sites[fs.dictionary]}, not {fs.site}"
            )
        d_sae = self.dictionaries[fs.dictionary].d_sae
        if fs.feature is not None and fs.feature >= d_sae:
            raise DictionaryError(f"{fs}: dictionary {fs.dictionary!r} has features 0..{d_sae - 1}")

    def feature_site(
        self, name: str, feature: int | None = None, *, error: bool = False
    ) -> FeatureSite:
        """Returns the FeatureSite of a spliced dictionary's feature (or its error term)."""
        return FeatureSite(self.sites[name], name, feature, error)


def _apply_vector(edit: FeatureEdit, error: Tensor) -> Tensor:
    """Applies an ablate/scale edit to the error vectors ``[batch, pos, d]``."""
    factor = 0.0 if edit.op == "ablate" else edit.value
    if edit.positions is None:
        return error * factor
    out = error.clone()
    index = torch.tensor(edit.positions)
    out[:, index] = error[:, index] * factor
    return out


def check_fits(model: Model, dictionary: Dictionary, name: str = "dictionary") -> Site:
    """Returns the site ``dictionary`` writes, checked against the model's widths."""
    c = dictionary.config
    if c.site is None or c.write_site is None:
        raise DictionaryError(
            f"{name!r} is not tied to a site; set its config's site (e.g. config.replace(site="
            "Site(6, 'resid_post')))"
        )
    read, write = model.sites([c.site, c.write_site])
    for site, width, what in ((read, c.d_in, "d_in"), (write, c.width_out, "d_out")):
        actual = site_width(model, site)
        if actual != width:
            raise DictionaryError(
                f"dictionary {name!r} has {what}={width}, but {site} of {model.info.name} has "
                f"width {actual}: it was made for another model or site"
            )
    return write


@contextlib.contextmanager
def spliced(
    model: Model,
    dictionaries: Mapping[str, Dictionary],
    *,
    error: bool = True,
    skip_first: int = 1,
    outlier_ratio: float | None = 10.0,
) -> Iterator[Spliced]:
    """Splices ``dictionaries`` (name -> dictionary) into every forward of ``model`` inside the
    block and yields the `Spliced` handle for captures and edits."""
    sp = Spliced(
        model, dictionaries, error=error, skip_first=skip_first, outlier_ratio=outlier_ratio
    )
    with model.intervene(sp.interventions()):
        yield sp


__all__ = ["FeatureEdit", "Spliced", "SplicedRun", "check_fits", "spliced"]
