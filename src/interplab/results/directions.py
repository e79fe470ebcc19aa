"""Directions as data: saved probe directions, and what ablating one direction did.

`ProbeDirections` holds one direction per layer in raw activation coordinates
(``score = x · direction + bias``) and reads and writes ``.safetensors`` or ``.npz`` files with a
JSON sidecar. `AblationResult` holds, per prompt, the next tokens, continuations and KL divergence
of ablating a direction, beside a distribution of norm-matched random directions (the baseline),
and says where the real direction falls in that distribution.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from interplab.configs import Config, positive
from interplab.errors import UserError
from interplab.provenance import Provenance, write_json
from interplab.results.base import Result
from interplab.stats import Summary, summarize


class DirectionError(UserError):
    """A direction, file or model that directional ablation cannot use."""


@dataclass(frozen=True)
class ProbeDirections:
    """Per-layer directions in raw activation coordinates: ``score = x · direction + bias``."""

    directions: np.ndarray  # [layer, d_model]
    biases: np.ndarray  # [layer]
    layers: tuple[int, ...]
    probe: str
    component: str
    position: str

    def direction(self, layer: int, *, unit: bool = True) -> np.ndarray:
        """Returns layer ``layer``'s direction ``[d_model]``, unit-normalised unless ``unit=False``."""
        if layer not in self.layers:
            raise DirectionError(f"no direction for layer {layer}; layers: {list(self.layers)}")
        d = self.directions[self.layers.index(layer)]
        return d / np.linalg.norm(d) if unit else d

    def save(self, path: str | Path, provenance: Provenance | None = None) -> Path:
        """Writes ``.safetensors`` (or ``.npz``) atomically and ``<stem>.json`` (config and
        provenance) beside it; returns the tensor file's path."""
        from safetensors.numpy import save as st_save

        target = Path(path)
        arrays = {
            "directions": np.ascontiguousarray(self.directions, dtype=np.float32),
            "biases": np.ascontiguousarray(self.biases, dtype=np.float32),
            "layers": np.asarray(self.layers, dtype=np.int64),
        }
        meta = {"probe": self.probe, "component": self.component, "position": self.position}
        if target.suffix == ".safetensors":
            blob = st_save(arrays, metadata=meta)
        elif target.suffix == ".npz":
            buffer = io.BytesIO()
            np.savez(buffer, **arrays, meta=np.asarray(json.dumps(meta)))
            blob = buffer.getvalue()
        else:
            raise DirectionError(f"save directions as .safetensors or .npz, not {target.name!r}")
        _write_bytes(target, blob)
        sidecar: dict[str, Any] = {**meta, "layers": list(self.layers), "file": target.name}
        if provenance is not None:
            sidecar["provenance"] = provenance.to_dict()
        write_json(target.with_suffix(".json"), sidecar)
        return target

    @classmethod
    def load(cls, path: str | Path) -> ProbeDirections:
        """Returns the directions `save` wrote (``.safetensors`` or ``.npz``)."""
        target = Path(path)
        if not target.is_file():
            raise DirectionError(
                f"{target}: no such file; save one with `interplab probe --save-directions`"
            )
        if target.suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(target), framework="numpy") as f:
                arrays = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (not a dict)
                meta = dict(f.metadata() or {})
        elif target.suffix == ".npz":
            with np.load(target) as f:
                arrays = {k: f[k] for k in f.files}
            meta = json.loads(str(arrays.pop("meta", "{}")))
        else:
            raise DirectionError(f"expected a .safetensors or .npz file, got {target.name!r}")
        missing = {"directions", "biases", "layers"} - set(arrays)
        if missing:
            raise DirectionError(f"{target} holds no probe directions: missing {sorted(missing)}")
        return cls(
            directions=arrays["directions"].astype(np.float32),
            biases=arrays["biases"].astype(np.float32),
            layers=tuple(int(x) for x in arrays["layers"]),
            probe=meta.get("probe", "unknown"),
            component=meta.get("component", "unknown"),
            position=meta.get("position", "unknown"),
        )


def load_directions(path: str | Path) -> ProbeDirections:
    """Returns the directions `ProbeDirections.save` wrote (``.safetensors`` or ``.npz``)."""
    return ProbeDirections.load(path)


def _write_bytes(target: Path, blob: bytes) -> None:
    """Writes ``blob`` atomically (temp file + rename), readable by others like any output."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(blob)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class AblationConfig(Config):
    """Options of `compare_ablation`: ``k`` next tokens shown, the greedy continuation length,
    ``n_random`` norm-matched random directions for the baseline distribution, their seed."""

    k: int = 5
    max_new_tokens: int = 20
    n_random: int = 20
    seed: int = 0

    def check(self) -> None:
        positive("k", self.k)
        positive("max_new_tokens", self.max_new_tokens)
        positive("n_random", self.n_random)


TopTokens = list[list[tuple[str, float]]]
"""Per prompt, the top-k next tokens and their probabilities."""


@dataclass(frozen=True)
class RandomStanding:
    """Where the real direction's effect falls among norm-matched random directions' effects.

    Effects are mean KL over the prompts. ``rank`` is 1 when the real direction's effect is the
    largest of the ``n_random + 1``; ``percentile`` is the share (0-100) of random directions whose
    effect is below it; ``p_value`` is the permutation-style ``(1 + #random ≥ real) / (1 + n)``,
    the smallest it can be is ``1 / (n_random + 1)``.
    """

    effect: float
    random_effects: np.ndarray  # [n_random]
    rank: int
    percentile: float
    p_value: float
    n_random: int
    prompt_percentiles: np.ndarray  # [prompt]: the same percentile, prompt by prompt

    def describe(self) -> str:
        """Returns one sentence: the real effect, its rank and percentile among n random."""
        q = np.quantile(self.random_effects, [0.05, 0.5, 0.95])
        return (
            f"mean KL {self.effect:.4g} nats ranks {self.rank} of {self.n_random + 1} among "
            f"{self.n_random} norm-matched random directions (percentile {self.percentile:.0f}, "
            f"p={self.p_value:.2g}; random median {q[1]:.3g}, 5-95% {q[0]:.3g} to {q[2]:.3g})"
        )


@dataclass(frozen=True)
class AblationResult(Result):
    """Per prompt: top next tokens and greedy continuations with and without the direction, the
    KL divergence the ablation causes at the last token, and the same KL for ``n_random``
    norm-matched random directions (the baseline distribution; texts and top tokens are shown
    for the first random direction)."""

    technique = "directional_ablation"

    prompts: list[str]
    direction: str
    direction_sha256: str
    baseline_top: TopTokens
    ablated_top: TopTokens
    random_top: TopTokens
    baseline_text: list[str]
    ablated_text: list[str]
    random_text: list[str]
    kl: np.ndarray  # [prompt]: KL(baseline || ablated) of the next-token distribution, nats
    random_kl: np.ndarray  # [prompt, random direction]: KL(baseline || random-ablated)
    provenance: Provenance

    @property
    def n(self) -> int:
        return len(self.prompts)

    @property
    def n_random(self) -> int:
        return int(self.random_kl.shape[1])

    def summary(self, *, seed: int = 0) -> Summary:
        """Returns the mean KL of the direction's ablation minus the mean over random directions,
        paired over prompts, with CI, n and a sign-flip test against 0 (needs 2+ prompts)."""
        return summarize(self.kl, baseline=self.random_kl.mean(1), seed=seed)

    def standing(self) -> RandomStanding:
        """Returns where the real direction's mean KL falls among the random directions'."""
        effect = float(self.kl.mean())
        random_effects = self.random_kl.mean(0)
        above = int((random_effects >= effect).sum())
        per_prompt = (self.random_kl < self.kl[:, None]).mean(1) * 100
        return RandomStanding(
            effect=effect,
            random_effects=random_effects,
            rank=1 + int((random_effects > effect).sum()),
            percentile=float((random_effects < effect).mean() * 100),
            p_value=(1 + above) / (1 + self.n_random),
            n_random=self.n_random,
            prompt_percentiles=per_prompt,
        )

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        s = self.standing()
        d["standing"] = {
            "effect": s.effect,
            "rank": s.rank,
            "percentile": s.percentile,
            "p_value": s.p_value,
            "n_random": s.n_random,
        }
        if self.n >= 2:
            d["summary"] = self.summary().to_dict()
        return d


__all__ = [
    "AblationConfig",
    "AblationResult",
    "DirectionError",
    "ProbeDirections",
    "RandomStanding",
    "TopTokens",
    "load_directions",
]
