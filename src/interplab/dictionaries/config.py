"""The frozen config of one dictionary (SAE or transcoder) and the errors dictionaries raise.

A dictionary reads activations at ``site`` and reconstructs the activations at ``target``:

    kind="sae"               target == site: a sparse autoencoder (the decoder bias is subtracted
                             from the input before encoding, as SAELens and sparsify do)
    kind="transcoder"        target != site, e.g. ``L6.mlp.in`` -> ``L6.mlp_out`` (Dunefsky et al.
                             2024): the MLP replaced by a sparse, wider one
    kind="skip_transcoder"   a transcoder plus a linear skip ``x @ W_skip.T`` (Paulo et al. 2025)

``architecture`` chooses the sparsity (one module each, `interplab.dictionaries.registry`):
``standard`` (ReLU + L1), ``topk``, ``batchtopk`` (saved with a JumpReLU threshold for
inference), ``jumprelu`` (straight-through threshold, L0 penalty), ``matryoshka_batchtopk``.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass
from typing import Any, Literal, get_args

from interplab.configs import Config, ConfigError, positive
from interplab.errors import UserError, UserFileError
from interplab.sites import Site

Architecture = Literal["standard", "topk", "batchtopk", "jumprelu", "matryoshka_batchtopk"]
Kind = Literal["sae", "transcoder", "skip_transcoder"]
ARCHITECTURES: tuple[str, ...] = get_args(Architecture)
KINDS: tuple[str, ...] = get_args(Kind)


class DictionaryError(UserError):
    """A dictionary that cannot be built, loaded, trained or applied; the message says why."""


class DictionaryFileError(DictionaryError, UserFileError):
    """A dictionary file that is missing, truncated or not in the format it claims."""


@dataclass(frozen=True)
class DictionaryConfig(Config):
    """What a dictionary is: its architecture, widths, sites and sparsity settings."""

    architecture: Architecture = "topk"
    d_in: int = 576
    d_sae: int = 4608
    kind: Kind = "sae"
    d_out: int | None = None  # None: d_in (always for SAEs)
    site: Site | None = None  # where it reads; None for a dictionary not tied to a model
    target: Site | None = None  # where it writes (transcoders); None: site
    k: int = 32  # active latents per token (topk) or on average (batch variants)
    l1_coefficient: float = 5.0  # standard
    l0_coefficient: float = 1.0  # jumprelu
    jumprelu_bandwidth: float = 0.05
    jumprelu_init_threshold: float = 0.01
    matryoshka_widths: tuple[int, ...] = ()  # nested prefix sizes; d_sae is added as the last
    aux_k: int | None = None  # latents the AuxK loss revives per token (None: d_out // 2)
    aux_coefficient: float = 1 / 32  # Gao et al. 2024
    threshold_lr: float = 0.01  # batch variants: EMA rate of the inference threshold

    def __post_init__(self) -> None:
        for name in ("site", "target"):  # a site given as a string, e.g. "L6.resid_pre"
            value = getattr(self, name)
            if value is not None and not isinstance(value, Site):
                object.__setattr__(self, name, Site.parse(value))
        object.__setattr__(self, "matryoshka_widths", tuple(self.matryoshka_widths))
        super().__post_init__()

    def check(self) -> None:
        for name in ("d_in", "d_sae", "k"):
            positive(name, getattr(self, name))
        positive("l1_coefficient", self.l1_coefficient, allow_zero=True)
        positive("l0_coefficient", self.l0_coefficient, allow_zero=True)
        positive("jumprelu_bandwidth", self.jumprelu_bandwidth)
        positive("jumprelu_init_threshold", self.jumprelu_init_threshold, allow_zero=True)
        positive("aux_coefficient", self.aux_coefficient, allow_zero=True)
        if not 0 < self.threshold_lr <= 1:
            raise ConfigError(f"threshold_lr must be in (0, 1], got {self.threshold_lr}")
        if self.kind == "sae" and self.d_out not in (None, self.d_in):
            raise ConfigError(f"an SAE reconstructs its input: d_out must equal d_in ({self.d_in})")
        if self.d_out is not None:
            positive("d_out", self.d_out)
        if self.k > self.d_sae:
            raise ConfigError(f"k={self.k} exceeds the number of latents d_sae={self.d_sae}")
        if self.aux_k is not None:
            positive("aux_k", self.aux_k)
        if self.kind == "sae" and self.target not in (None, self.site):
            raise ConfigError("an SAE writes where it reads: leave target unset or equal to site")
        widths = self.matryoshka_widths
        if widths:
            if self.architecture != "matryoshka_batchtopk":
                raise ConfigError("matryoshka_widths only applies to matryoshka_batchtopk")
            if any(b <= a for a, b in itertools.pairwise(widths)) or widths[0] < 1:
                raise ConfigError(f"matryoshka_widths must increase strictly, got {widths}")
            if widths[-1] > self.d_sae:
                raise ConfigError(f"matryoshka_widths end at {widths[-1]} > d_sae={self.d_sae}")

    @property
    def width_out(self) -> int:
        """The width of what the dictionary writes (d_out, or d_in for an SAE)."""
        return self.d_in if self.d_out is None else self.d_out

    @property
    def write_site(self) -> Site | None:
        """The site the dictionary reconstructs (target, or site for an SAE)."""
        return self.site if self.target is None else self.target

    @property
    def levels(self) -> tuple[int, ...]:
        """Matryoshka prefix sizes ending at d_sae (just ``(d_sae,)`` for other architectures)."""
        widths = tuple(w for w in self.matryoshka_widths if w < self.d_sae)
        return (*widths, self.d_sae)

    @property
    def skip(self) -> bool:
        return self.kind == "skip_transcoder"

    def replace(self, **changes: Any) -> DictionaryConfig:
        """Returns a copy with ``changes`` applied (and checked)."""
        return dataclasses.replace(self, **changes)


def config_from_dict(data: dict[str, Any]) -> DictionaryConfig:
    """Returns the config a ``to_dict`` wrote (unknown keys are refused, so typos show)."""
    if not isinstance(data, dict):
        raise DictionaryError(f"a dictionary config is a JSON object, got {type(data).__name__}")
    names = {f.name for f in dataclasses.fields(DictionaryConfig)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise DictionaryError(
            f"unknown dictionary config keys {unknown}; valid keys: {', '.join(sorted(names))}"
        )
    values = dict(data)
    for key in ("site", "target"):
        if values.get(key) is not None:
            values[key] = Site.parse(values[key])
    if "matryoshka_widths" in values:
        values["matryoshka_widths"] = tuple(int(w) for w in values["matryoshka_widths"])
    return DictionaryConfig(**values)


__all__ = [
    "ARCHITECTURES",
    "KINDS",
    "Architecture",
    "DictionaryConfig",
    "DictionaryError",
    "DictionaryFileError",
    "Kind",
    "config_from_dict",
]
