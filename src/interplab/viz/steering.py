"""The figure of a steering sweep: behaviour score and perplexity against the coefficient, for
the steered text beside norm-matched random vectors, no steering and the prompt baseline, each
with its 95% CI over prompts."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from interplab.results.steering import SteeringResult
from interplab.viz.render import renders

_COLOURS = {"steered": "C0", "random": "C1", "none": "0.4", "prompt": "C2"}


def steering_title(result: SteeringResult) -> str:
    return f"steering toward {result.behaviour} (layers {result.layers}, n={result.n} prompts)"


@renders(SteeringResult, title=steering_title)
def steering_figure(result: SteeringResult, *, seed: int = 0) -> Figure:
    """Returns score vs coefficient (steered and random with CI bands, the no-steering and prompt
    baselines as bands) and perplexity vs coefficient (log scale). Needs 2+ prompts for CIs."""
    s = result.summaries(seed=seed)
    x = np.asarray(result.coefficients)
    fig = Figure(figsize=(11, 4))
    axes = fig.subplots(1, 2)
    labels = {
        "steered": "steered",
        "random": "norm-matched random",
        "none": "no steering",
        "prompt": f"prompt baseline ({result.instruction.strip()!r})",
    }
    for ax, kind in zip(axes, ("score", "perplexity"), strict=True):
        for c in result.conditions:
            summary = s[f"{c} {kind}"]
            style = "-o" if c in ("steered", "random") else "--"
            ax.plot(x, summary.mean, style, color=_COLOURS[c], label=labels[c])
            ax.fill_between(x, summary.ci_low, summary.ci_high, color=_COLOURS[c], alpha=0.15)
        ax.set_xlabel(f"coefficient (× vector at {result.component}, layers {result.layers})")
    axes[0].set_ylabel(f"{result.behaviour} score (mean, 95% CI over {result.n} prompts)")
    axes[1].set_ylabel("perplexity under the unsteered model")
    axes[1].set_yscale("log")
    axes[0].legend(fontsize=8)
    fig.suptitle(f"steering toward {result.behaviour}")
    fig.tight_layout()
    return fig


__all__ = ["steering_figure", "steering_title"]
