"""Figures of causal abstraction results.

- `das_figure`: held-out IIA with 95% CIs for the learned subspace beside a random rotation of
  the same size, the control task, the whole site and no intervention, with chance marked
  (left); the training curves, loss and batch IIA, of the real and the control task (right).
- `interchange_figure`: IIA with its CI beside the agreement without the interchange, and
  chance.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from interplab.results.causal_abstraction import CONDITION_LABELS, DASResult, InterchangeResult
from interplab.viz.render import renders

_COLOURS = {"learned": "C0", "random": "C7", "control": "C1", "full": "C2", "none": "k"}


def das_title(result: DASResult) -> str:
    return (
        f"{result.method} (k={result.k}) for {'+'.join(result.variables)} at {result.site} "
        f"(held-out n={result.n})"
    )


@renders(DASResult, title=das_title, text=lambda r: r.describe())
def das_figure(result: DASResult) -> Figure:
    """Returns held-out IIA bars with 95% CIs per condition (left) and training curves (right)."""
    fig = Figure(figsize=(10.0, 3.8), layout="constrained")
    left, right = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.1, 1]})
    rows = result.rows() if result.n >= 2 else []
    x = np.arange(len(rows))
    iia = np.array([r.iia for r in rows])
    err = np.array([[r.iia - r.low for r in rows], [r.high - r.iia for r in rows]])
    left.bar(x, iia, color=[_COLOURS.get(r.condition, "C4") for r in rows], alpha=0.85)
    left.errorbar(x, iia, yerr=np.clip(err, 0, None), fmt="none", ecolor="k", capsize=4, lw=1)
    for xi, v in zip(x, iia, strict=True):
        left.text(xi, min(v + 0.03, 1.03), f"{v:.2f}", ha="center", fontsize=7)
    left.axhline(result.chance, color="k", ls=":", lw=0.8, label=f"chance ({result.chance:.2f})")
    left.set_xticks(x, [CONDITION_LABELS.get(r.condition, r.condition) for r in rows])
    left.tick_params(axis="x", labelrotation=25, labelsize=7)
    left.set_ylim(0, 1.08)
    left.set_ylabel("interchange-intervention accuracy")
    left.set_title(
        f"{result.method} k={result.k} at {result.site}, held-out n={result.n} (95% CI)",
        fontsize=9,
    )
    left.legend(fontsize=7, loc="upper right")
    steps = np.arange(1, len(result.train_loss) + 1)
    right.plot(steps, result.train_loss, color="C0", lw=1, label="loss (task)")
    if len(result.control_loss):
        right.plot(steps, result.control_loss, color="C1", lw=1, label="loss (control)")
    right.set_xlabel("training step")
    right.set_ylabel("cross-entropy")
    twin = right.twinx()
    twin.plot(steps, _smooth(result.train_accuracy), color="C0", ls="--", lw=1, label="batch IIA")
    if len(result.control_accuracy):
        twin.plot(steps, _smooth(result.control_accuracy), color="C1", ls="--", lw=1)
    twin.set_ylim(0, 1.05)
    twin.set_ylabel("batch IIA (dashed, smoothed)")
    right.set_title(f"training on {result.n_train} pairs", fontsize=9)
    right.legend(fontsize=7, loc="center right")
    return fig


def interchange_title(result: InterchangeResult) -> str:
    where = ", ".join(str(s) for s in result.sites)
    return f"interchange of {'+'.join(result.variables)} at {where} (n={result.n})"


@renders(InterchangeResult, title=interchange_title, text=lambda r: r.describe())
def interchange_figure(result: InterchangeResult) -> Figure:
    """Returns IIA with its 95% CI beside the agreement without the interchange."""
    fig = Figure(figsize=(5.0, 3.6), layout="constrained")
    ax = fig.subplots()
    none = (result.base_predictions == result.labels).astype(np.float64)
    values = [result.iia, float(none.mean())]
    ax.bar([0, 1], values, color=["C0", "k"], alpha=0.85)
    if result.n >= 2:
        (low, high) = result.interval()
        ax.errorbar(
            [0],
            [result.iia],
            yerr=[[result.iia - low], [high - result.iia]],
            fmt="none",
            ecolor="k",
            capsize=4,
        )
    ax.axhline(result.chance, color="k", ls=":", lw=0.8, label=f"chance ({result.chance:.2f})")
    what = "whole site" if result.k == 0 else f"{result.k}-dim subspace"
    ax.set_xticks([0, 1], [f"interchange ({what})", "no intervention"], fontsize=8)
    ax.set_ylim(0, 1.08)
    ax.set_ylabel("agreement with the counterfactual answer")
    ax.set_title(interchange_title(result), fontsize=9)
    ax.legend(fontsize=7)
    return fig


def _smooth(values: np.ndarray, width: int = 10) -> np.ndarray:
    if len(values) < width:
        return values
    kernel = np.ones(width) / width
    head = np.cumsum(values[: width - 1]) / np.arange(1, width)
    return np.concatenate([head, np.convolve(values, kernel, mode="valid")])


__all__ = ["das_figure", "das_title", "interchange_figure", "interchange_title"]
