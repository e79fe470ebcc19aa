"""What activation and attribution patching share: their inputs, grids of cells, and results.

Axis names, used unchanged in arrays, JSON and figures:

    example   one contrast pair
    layer     the block the patched component belongs to
    head      a query head (``attn.z`` only)
    pos       the patched token position (``per="position"``; absent with ``per="all"``)

A grid for one component is ``[example, layer, pos]``, ``[example, layer]``,
``[example, layer, head, pos]`` or ``[example, layer, head]``. Every value is an *effect*: the
metric of the patched run minus the metric of the unpatched run (exact for activation patching,
the first-order estimate for attribution patching).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

import numpy as np
import torch
from torch import Tensor

from interplab.core.model import Model
from interplab.data.alignment import check_aligned
from interplab.data.pairs import ContrastPair, PairDataset
from interplab.errors import UserError
from interplab.provenance import Provenance, write_json
from interplab.sites import Component, Dimensions
from interplab.stats import Summary, summarize
from interplab.stats.summary import SummaryCorrection

if TYPE_CHECKING:
    from interplab.techniques.controls import ControlComparison

Direction = Literal["denoise", "noise"]
Per = Literal["position", "all"]
DIRECTIONS: tuple[str, ...] = get_args(Direction)
PERS: tuple[str, ...] = get_args(Per)
GRID_COMPONENTS: tuple[Component, ...] = (
    "resid_pre",
    "resid_mid",
    "resid_post",
    "attn_out",
    "mlp_out",
    "attn.z",
)


class PatchingError(UserError):
    """Inputs or options that a patching experiment cannot run with."""


@dataclass(frozen=True)
class TokenPairs:
    """Aligned clean/corrupt token ids ``[n, pos]`` with answer and wrong-answer ids ``[n]``.

    Use it for models without a tokenizer, or to fix the exact tokens; ``mask`` (``[n, pos]``,
    1 for real tokens, right-padded) is shared by both sides because pairs align token by token.
    """

    clean: Tensor
    corrupt: Tensor
    answer: Tensor
    wrong: Tensor
    mask: Tensor | None = None

    def __post_init__(self) -> None:
        if self.clean.ndim != 2 or self.clean.shape != self.corrupt.shape:
            raise PatchingError(
                f"clean and corrupt ids must both be [n, pos] of one shape, got "
                f"{tuple(self.clean.shape)} and {tuple(self.corrupt.shape)}"
            )
        n = self.clean.shape[0]
        if self.answer.shape != (n,) or self.wrong.shape != (n,):
            raise PatchingError(f"answer and wrong must be [{n}] token ids, one per pair")
        same = (self.answer == self.wrong).nonzero()
        if len(same):
            raise PatchingError(f"pair {int(same[0, 0])}: answer and wrong answer are one token")
        if self.mask is not None and self.mask.shape != self.clean.shape:
            raise PatchingError(
                f"mask must be {tuple(self.clean.shape)}, got {tuple(self.mask.shape)}"
            )

    @property
    def n(self) -> int:
        return int(self.clean.shape[0])

    @property
    def lengths(self) -> Tensor:
        if self.mask is None:
            return torch.full((self.n,), self.clean.shape[1], dtype=torch.long)
        return self.mask.sum(1).long()


PairsLike = PairDataset | Sequence[ContrastPair] | TokenPairs


@dataclass(frozen=True)
class Inputs:
    """Prepared inputs: token pairs plus what a result records about them."""

    pairs: TokenPairs
    clean_prompts: list[str] | None
    corrupt_prompts: list[str] | None
    answers: list[str]
    wrong_answers: list[str]
    tokens: list[list[str]]  # clean tokens per example, for labels
    data_sha256: str


def prepare(model: Model, pairs: PairsLike, per: str = "all") -> Inputs:
    """Returns tokenised, checked inputs; raises naming the first misaligned pair, or, with
    ``per="position"``, when prompts differ in length (a position must mean one token)."""
    inputs = _prepare(model, pairs)
    lengths = sorted(set(inputs.pairs.lengths.tolist()))
    if per == "position" and len(lengths) > 1:
        raise PatchingError(
            f"per='position' needs every prompt to have the same token length so that a position "
            f"means the same token in every example; these have lengths {lengths}. Use pairs "
            "from one template, or per='all'"
        )
    return inputs


def _prepare(model: Model, pairs: PairsLike) -> Inputs:
    from interplab.provenance import data_hash

    if isinstance(pairs, TokenPairs):
        tp = pairs
        ids = tp.clean.tolist()
        tokens = [
            [_decode(model, t) for t in row[: int(n)]]
            for row, n in zip(ids, tp.lengths, strict=True)
        ]
        answers = [_decode(model, int(t)) for t in tp.answer]
        wrongs = [_decode(model, int(t)) for t in tp.wrong]
        digest = data_hash(
            {"clean": tp.clean, "corrupt": tp.corrupt, "answer": tp.answer, "wrong": tp.wrong}
        )
        return Inputs(tp, None, None, answers, wrongs, tokens, digest)
    pair_list = list(pairs)
    if not pair_list:
        raise PatchingError("no pairs given")
    if model.tokenizer is None:
        raise PatchingError("this model has no tokenizer; pass TokenPairs of token ids instead")
    check_aligned(pair_list, model.tokenizer)
    clean = model.tokenize([p.clean for p in pair_list])
    corrupt = model.tokenize([p.corrupt for p in pair_list])
    if not torch.equal(clean.mask, corrupt.mask):  # special tokens could still differ
        bad = int((clean.mask != corrupt.mask).any(1).nonzero()[0, 0])
        raise PatchingError(f"pair {bad}: clean and corrupt tokenise to different lengths")
    answer = torch.tensor([model.token_id(p.answer) for p in pair_list])
    wrong = torch.tensor([model.token_id(p.wrong_answer) for p in pair_list])
    padded = bool((clean.mask == 0).any())
    tp = TokenPairs(clean.ids, corrupt.ids, answer, wrong, clean.mask if padded else None)
    tokens = [
        model.to_str_tokens(row[: int(n)]) for row, n in zip(clean.ids, tp.lengths, strict=True)
    ]
    return Inputs(
        tp,
        [p.clean for p in pair_list],
        [p.corrupt for p in pair_list],
        [p.answer for p in pair_list],
        [p.wrong_answer for p in pair_list],
        tokens,
        data_hash([p.to_dict() for p in pair_list]),
    )


def _decode(model: Model, token: int) -> str:
    return model.tokenizer.decode([token]) if model.tokenizer is not None else f"<{token}>"


def check_options(
    components: Sequence[str], direction: str, per: str, dims: Dimensions
) -> tuple[Component, ...]:
    """Returns the components, or raises listing the valid choices."""
    if direction not in DIRECTIONS:
        raise PatchingError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    if per not in PERS:
        raise PatchingError(f"per must be one of {PERS}, got {per!r}")
    comps = (components,) if isinstance(components, str) else tuple(components)
    if not comps:
        raise PatchingError(f"no components given; choose from {', '.join(GRID_COMPONENTS)}")
    for c in comps:
        if c not in GRID_COMPONENTS:
            raise PatchingError(
                f"cannot patch {c!r} as a grid; components: {', '.join(GRID_COMPONENTS)}"
            )
    if len(set(comps)) != len(comps):
        raise PatchingError(f"components repeat: {comps}")
    return comps  # type: ignore[return-value]


def grid_shape(component: str, per: str, n: int, dims: Dimensions, length: int) -> tuple[int, ...]:
    """Returns the grid's shape ``[n, layer, (head), (pos)]``."""
    shape: tuple[int, ...] = (n, dims.n_layers)
    if component == "attn.z":
        shape += (dims.n_heads,)
    if per == "position":
        shape += (length,)
    return shape


def grid_axes(component: str, per: str) -> tuple[str, ...]:
    axes: tuple[str, ...] = ("example", "layer")
    if component == "attn.z":
        axes += ("head",)
    if per == "position":
        axes += ("pos",)
    return axes


@dataclass(frozen=True)
class GridResult:
    """Per-example effects of every cell of one or more component grids, with their baselines."""

    technique: str
    components: tuple[str, ...]
    direction: Direction
    per: Per
    metric: str
    effects: dict[str, np.ndarray]  # component -> [example, layer, (head), (pos)]
    clean: np.ndarray  # [n] the clean run's metric
    corrupt: np.ndarray  # [n] the corrupt run's metric
    tokens: list[list[str]]
    clean_prompts: list[str] | None
    corrupt_prompts: list[str] | None
    answers: list[str]
    wrong_answers: list[str]
    provenance: Provenance
    control: GridResult | None = None
    """The same sweep on unrelated control prompts (`interplab.techniques.controls`)."""

    @property
    def n(self) -> int:
        return len(self.clean)

    @property
    def base(self) -> np.ndarray:
        """The unpatched run's metric: corrupt when denoising, clean when noising."""
        return self.corrupt if self.direction == "denoise" else self.clean

    def _component(self, component: str | None) -> str:
        if component is None:
            return self.components[0]
        if component not in self.effects:
            raise KeyError(
                f"no grid for {component!r}; this result has {', '.join(self.components)}"
            )
        return component

    def axes(self, component: str | None = None) -> tuple[str, ...]:
        return grid_axes(self._component(component), self.per)

    def effect(self, component: str | None = None) -> np.ndarray:
        """Returns the per-example effects ``[n, layer, (head), (pos)]`` of one component."""
        return self.effects[self._component(component)]

    def summary(
        self,
        component: str | None = None,
        *,
        correction: SummaryCorrection = "holm",
        alpha: float = 0.05,
        seed: int = 0,
        n_resamples: int = 10_000,
    ) -> Summary:
        """Returns per cell the mean effect with its CI over examples, a sign-flip test against 0,
        and Holm (or Benjamini-Hochberg with ``correction="bh"``) correction over all cells."""
        return summarize(
            self.effect(component),
            null=0.0,
            correction=correction,
            alpha=alpha,
            seed=seed,
            n_resamples=n_resamples,
        )

    def cell_label(self, component: str, index: tuple[int, ...]) -> str:
        """Returns a cell's name, e.g. ``'L12.resid_pre @ 5 ' John''`` or ``'L3.attn.z.h5'``."""
        axes = self.axes(component)[1:]
        named = dict(zip(axes, index, strict=True))
        site = f"L{named['layer']}.{component}" + (f".h{named['head']}" if "head" in named else "")
        if "pos" in named:
            p = named["pos"]
            tok = self.tokens[0][p] if p < len(self.tokens[0]) else ""
            return f"{site} @ {p} {tok!r}"
        return site

    def top_cells(
        self, component: str | None = None, k: int = 10, *, summary: Summary | None = None
    ) -> list[dict[str, Any]]:
        """Returns the ``k`` cells with the largest |mean effect|, with CI and adjusted p-value."""
        comp = self._component(component)
        s = summary if summary is not None else self.summary(comp)
        magnitude = np.where(np.isnan(s.mean), -np.inf, np.abs(s.mean)).ravel()
        out = []
        for flat in np.argsort(-magnitude, kind="stable")[:k]:
            idx = tuple(int(i) for i in np.unravel_index(int(flat), s.cell_shape))
            out.append(
                {
                    "cell": self.cell_label(comp, idx),
                    "index": idx,
                    "mean": float(s.mean[idx]),
                    "ci_low": float(s.ci_low[idx]),
                    "ci_high": float(s.ci_high[idx]),
                    "p_adjusted": float(s.p_adjusted[idx]),
                    "significant": bool(s.significant[idx]),
                }
            )
        return out

    def examples(
        self,
        component: str | None = None,
        cell: tuple[int, ...] | None = None,
        *,
        k: int = 3,
        n_random: int = 3,
        n_bins: int = 3,
        seed: int = 0,
    ) -> list[dict[str, Any]]:
        """Returns the prompts most affected by one cell (default: the cell with the largest
        |mean effect|) beside random prompts and one prompt from each quantile bin of that cell's
        effects, each labelled with its kind, so the extremes are read against typical cases."""
        comp = self._component(component)
        e = self.effect(comp)
        if cell is None:
            mean = np.where(np.isnan(e).all(0), -np.inf, np.abs(np.nanmean(e, 0)))
            cell = tuple(int(i) for i in np.unravel_index(int(np.argmax(mean)), mean.shape))
        if len(cell) != e.ndim - 1:
            raise PatchingError(f"a cell of {comp} has axes {self.axes(comp)[1:]}, got {cell}")
        values = e[(slice(None), *cell)]
        rng = np.random.default_rng(seed)
        label = self.cell_label(comp, cell)

        def row(kind: str, i: int) -> dict[str, Any]:
            return {
                "kind": kind,
                "cell": label,
                "example": int(i),
                "effect": float(values[i]),
                "clean": self.clean_prompts[i] if self.clean_prompts else " ".join(self.tokens[i]),
                "corrupt": self.corrupt_prompts[i] if self.corrupt_prompts else None,
                "answer": self.answers[i],
                "wrong_answer": self.wrong_answers[i],
            }

        order = np.argsort(-np.abs(values), kind="stable")
        out = [row("most affected", i) for i in order[:k]]
        out += [row("random", i) for i in rng.choice(self.n, min(n_random, self.n), replace=False)]
        ranked = np.argsort(values, kind="stable")
        for b, chunk in enumerate(np.array_split(ranked, min(n_bins, self.n))):
            lo, hi = float(values[chunk[0]]), float(values[chunk[-1]])
            kind = f"quantile bin {b + 1}/{min(n_bins, self.n)} (effect {lo:+.3f} to {hi:+.3f})"
            out.append(row(kind, int(rng.choice(chunk))))
        return out

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "technique": self.technique,
            "components": list(self.components),
            "direction": self.direction,
            "per": self.per,
            "metric": self.metric,
            "axes": {c: list(self.axes(c)) for c in self.components},
            "effects": self.effects,
            "clean": self.clean,
            "corrupt": self.corrupt,
            "tokens": self.tokens,
            "clean_prompts": self.clean_prompts,
            "corrupt_prompts": self.corrupt_prompts,
            "answers": self.answers,
            "wrong_answers": self.wrong_answers,
            "provenance": self.provenance.to_dict(),
        }
        if self.n >= 2:
            d["summary"] = {c: self.summary(c).to_dict() for c in self.components}
        if self.control is not None:
            d["control"] = self.control.to_dict()
            if self.n >= 2 and self.control.n >= 2:
                d["control_comparison"] = {
                    c: self.control_comparison(c).to_dict() for c in self.components
                }
        return d

    def to_json(self, path: str | Path) -> Path:
        """Writes the result as JSON, atomically (an interrupt never leaves half a file)."""
        return write_json(path, self.to_dict())

    def control_comparison(self, component: str | None = None) -> ControlComparison:
        """Returns this sweep's cells beside the control sweep's, in units of each set's gap,
        marking which task cells are task-specific and which matter on unrelated prompts too."""
        from interplab.techniques.controls import compare_control

        if self.control is None:
            raise PatchingError("this sweep ran without a control; pass control=True")
        return compare_control(self, self.control, self._component(component))

    def control_figure(self, component: str | None = None) -> Any:
        """Returns the task and control heatmaps side by side, each in units of its own gap."""
        from interplab.techniques.controls import gap
        from interplab.viz.patching import side_by_side_figure

        if self.control is None:
            raise PatchingError("this sweep ran without a control; pass control=True")
        return side_by_side_figure(
            {"task prompts": self, "control prompts": self.control},
            self._component(component),
            "task vs unrelated control prompts",
            scale={"task prompts": gap(self), "control prompts": gap(self.control)},
            unit="mean effect / own gap",
        )

    def figure(
        self, component: str | None = None, *, correction: SummaryCorrection = "holm"
    ) -> Any:
        """Returns a heatmap of mean effects (layer × position, or layer × head); cells that do not
        survive the correction are hatched and faded."""
        from interplab.viz.patching import grid_figure

        comp = self._component(component)
        return grid_figure(
            self, comp, self.summary(comp, correction=correction) if self.n >= 2 else None
        )

    def heatmaps(
        self, component: str | None = None, *, correction: SummaryCorrection = "holm"
    ) -> list[Any]:
        """Returns the interactive heatmap of ``component`` (`interplab.viz.interactive.Heatmap`):
        the same cells as `figure`, each naming its mean, CI and adjusted p-value on hover."""
        from interplab.viz.patching import grid_heatmap

        comp = self._component(component)
        maps = [
            grid_heatmap(
                self, comp, self.summary(comp, correction=correction) if self.n >= 2 else None
            )
        ]
        if self.control is not None:
            m = self.control.heatmaps(comp, correction=correction)[0]
            maps.append(replace(m, title=f"control prompts (unrelated text): {m.title}"))
        return maps

    def save_plot(self, path: str | Path, component: str | None = None) -> list[Path]:
        """Writes the heatmap of ``component`` as PNG at ``path`` and as interactive HTML beside
        it; returns both paths."""
        from interplab.viz.interactive import save_plot

        comp = self._component(component)
        title = f"{self.technique}: {self.direction} {comp} on {self.metric} (n={self.n})"
        return save_plot(self.figure(comp), path, self.heatmaps(comp), title)
