"""The frozen config of each patching technique: what a result's provenance records.

Each technique keeps its keyword arguments and builds one of these from them (or takes
``config=``); `Config` checks the ``Literal`` choices on construction and ``check`` the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from interplab.configs import Config, ConfigError, budget
from interplab.results.patching import GRID_COMPONENTS, Direction, GridComponent, Per, Source
from interplab.sites import Site
from interplab.techniques.metrics import MetricName

Method = Literal["auto", "fast", "hooks", "loop", "verified"]
PathMethod = Literal["auto", "fast", "hooks"]
SenderSet = Literal["heads", "mlps", "all", "sites"]
LOGITS = Site(None, "logits")


def _check_components(comps: tuple[str, ...]) -> None:
    if isinstance(comps, str) or not isinstance(comps, tuple):
        raise ConfigError(f"components must be a tuple of names, got {comps!r}")
    if not comps:
        raise ConfigError(f"no components given; choose from {', '.join(GRID_COMPONENTS)}")
    for c in comps:
        if c not in GRID_COMPONENTS:
            raise ConfigError(
                f"cannot patch {c!r} as a grid; components: {', '.join(GRID_COMPONENTS)}"
            )
    if len(set(comps)) != len(comps):
        raise ConfigError(f"components repeat: {comps}")


@dataclass(frozen=True)
class PatchingConfig(Config):
    """Activation patching: which grids, which way, what replaces a cell, how it runs."""

    components: tuple[GridComponent, ...] = ("resid_pre",)
    direction: Direction = "denoise"
    per: Per = "position"
    metric: MetricName = "logit_diff"
    source: Source = "contrast"
    method: Method = "auto"
    seed: int = 0
    batch_budget_mb: float | Literal["auto"] = 512.0
    control: bool = True

    def check(self) -> None:
        _check_components(self.components)
        if self.source != "contrast" and self.direction != "noise":
            raise ConfigError(
                f"{self.source} ablation replaces activations of the clean run; pass "
                "direction='noise'"
            )
        budget("batch_budget_mb", self.batch_budget_mb)


@dataclass(frozen=True)
class AttributionConfig(Config):
    """Attribution patching: which grids, which way, the metric, the control's seed."""

    components: tuple[GridComponent, ...] = ("resid_pre",)
    direction: Direction = "denoise"
    per: Per = "position"
    metric: MetricName = "logit_diff"
    control: bool = True
    seed: int = 0

    def check(self) -> None:
        _check_components(self.components)


@dataclass(frozen=True)
class PathPatchingConfig(Config):
    """Path patching: the senders (a set, or ``"sites"`` with ``sender_sites``), the receivers
    (the logits, or heads' q/k/v inputs), whether MLPs are frozen too, how it runs."""

    senders: SenderSet = "heads"
    sender_sites: tuple[Site, ...] = ()
    receivers: tuple[Site, ...] = (LOGITS,)
    freeze_mlps: bool = False
    metric: MetricName = "logit_diff"
    method: PathMethod = "auto"
    batch_budget_mb: float | Literal["auto"] = 512.0

    def check(self) -> None:
        if (self.senders == "sites") != bool(self.sender_sites):
            raise ConfigError(
                "senders='sites' goes with a non-empty sender_sites (and only then); got "
                f"senders={self.senders!r} with {len(self.sender_sites)} sender sites"
            )
        if not self.receivers:
            raise ConfigError("no receivers given; pass 'logits' or sites like 'L20.attn.q.h3'")
        if LOGITS in self.receivers and len(self.receivers) > 1:
            raise ConfigError("receivers are 'logits' alone, or head inputs such as L9.attn.q.h6")
        budget("batch_budget_mb", self.batch_budget_mb)


__all__ = [
    "LOGITS",
    "AttributionConfig",
    "Method",
    "PatchingConfig",
    "PathMethod",
    "PathPatchingConfig",
    "SenderSet",
]
