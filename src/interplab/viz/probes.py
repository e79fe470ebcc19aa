"""Figures of probe results and of directional ablation.

- `probe_figure`: held-out accuracy by layer with its 95% CI band, the shuffled-label control
  task's, and the majority-class line.
- `ablation_figure`: the KL divergence of ablating the real direction against the distribution
  of norm-matched random directions' (mean over prompts), and per prompt.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from interplab.results.directions import AblationResult
from interplab.results.probes import ProbeResult
from interplab.viz.render import renders


def probe_title(result: ProbeResult) -> str:
    source = f"train {result.train_dataset} → test " if result.train_dataset else ""
    return f"{result.probe} probe, {source}{result.dataset} (n={result.n})"


@renders(ProbeResult, title=probe_title)
def probe_figure(result: ProbeResult) -> Figure:
    """Returns accuracy by layer with 95% CI bands, the control task's, and chance."""
    fig = Figure(figsize=(7.0, 3.6))
    ax = fig.subplots()
    x = np.asarray(result.layers)
    ax.plot(x, result.accuracy, color="C0", label=f"{result.probe} probe")
    ax.fill_between(x, *result.accuracy_ci, color="C0", alpha=0.25)
    ax.plot(x, result.control_accuracy, color="C7", ls="--", label="control (shuffled labels)")
    ax.fill_between(x, *result.control_ci, color="C7", alpha=0.2)
    ax.axhline(result.chance, color="k", lw=0.8, ls=":", label="majority class")
    ax.set_xlabel(f"layer ({result.component}, {result.position})")
    ax.set_ylabel("held-out accuracy")
    ax.set_ylim(min(0.3, float(np.nanmin(result.control_ci))), 1.02)
    source = f"train {result.train_dataset} → test " if result.train_dataset else ""
    ax.set_title(f"{source}{result.dataset} (n={result.n}, 95% CI)", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    return fig


def ablation_title(result: AblationResult) -> str:
    return f"ablating {result.direction} vs {result.n_random} random directions"


@renders(AblationResult, title=ablation_title)
def ablation_figure(result: AblationResult) -> Figure:
    """Returns the real direction's mean KL among the random directions' (left) and, per prompt,
    the real KL beside the spread of random KLs (right)."""
    standing = result.standing()
    fig = Figure(figsize=(10.0, 3.6))
    left, right = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 1.4]})
    left.hist(standing.random_effects, bins=min(20, max(5, result.n_random // 2)), color="C7")
    left.axvline(standing.effect, color="C3", lw=2, label=f"{result.direction}")
    left.set_xlabel("mean KL over prompts (nats)")
    left.set_ylabel("random directions")
    left.set_title(
        f"rank {standing.rank} of {standing.n_random + 1}, percentile {standing.percentile:.0f}",
        fontsize=9,
    )
    left.legend(fontsize=7)
    x = np.arange(result.n)
    right.boxplot(list(result.random_kl), positions=x, widths=0.5, showfliers=True)
    right.scatter(x, result.kl, color="C3", zorder=3, label="real direction")
    right.set_xticks(x, [_short(p) for p in result.prompts], rotation=30, ha="right", fontsize=7)
    right.set_ylabel("KL(baseline || ablated), nats")
    right.set_title(f"per prompt: {result.n_random} random directions (box) vs real", fontsize=9)
    right.legend(fontsize=7)
    fig.tight_layout()
    return fig


def _short(text: str, width: int = 24) -> str:
    text = text.replace("\n", " ").replace("$", r"\$")
    return text if len(text) <= width else text[: width - 1] + "…"


__all__ = ["ablation_figure", "ablation_title", "probe_figure", "probe_title"]
