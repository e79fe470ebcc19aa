"""Figures of logit-lens results: a site × position heatmap of one prompt (colour = the target's
probability, or the top-1 probability without a target; text = the top-1 token), and the same
grids as interactive heatmaps, one per prompt, whose hover names the top-k tokens."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from interplab.results.lens import LensResult
from interplab.viz.figures import clean_token
from interplab.viz.interactive import Heatmap
from interplab.viz.render import renders


def _values(result: LensResult, example: int) -> tuple[np.ndarray, str]:
    """Returns the drawn grid ``[site, pos]`` of one prompt and what its colour means."""
    length = int(result.lengths[example])
    if result.target_id is not None:
        return result.target_prob[example, :, :length], f"p({result.target!r})"
    return result.top_probs[example, :, :length, 0], "top-1 probability"


def lens_title(result: LensResult) -> str:
    what = f"p({result.target!r})" if result.target is not None else "top-1 probability"
    return f"logit lens: {what} by layer and position"


def lens_heatmaps(result: LensResult, example: int | None = None) -> list[Heatmap]:
    """Returns one interactive heatmap per prompt (or of prompt ``example``); hover gives the
    site, the top tokens with their probabilities, and the target's rank."""
    out = []
    for e in range(result.n) if example is None else [example]:
        values, label = _values(result, e)
        length = values.shape[1]
        hover = [
            [
                f"{result.sites[r]}: "
                + ", ".join(
                    f"{t!r} {p:.3f}"
                    for t, p in zip(
                        result.top_tokens[e][r][pos], result.top_probs[e, r, pos], strict=True
                    )
                )
                + (
                    f"; rank of {result.target!r}: {int(result.target_rank[e, r, pos])}"
                    if result.target_id is not None
                    else ""
                )
                for pos in range(length)
            ]
            for r in range(len(result.sites))
        ]
        out.append(
            Heatmap(
                values=np.nan_to_num(np.asarray(values, dtype=float)),
                row_labels=[str(s) for s in result.sites],
                col_labels=[f"{p} {t}" for p, t in enumerate(result.tokens[e])],
                title=f"prompt {e}: {result.prompts[e]!r}",
                value_label=label,
                hover=hover,
                diverging=False,
            )
        )
    return out


@renders(LensResult, heatmaps=lens_heatmaps, title=lens_title)
def lens_figure(result: LensResult, example: int | None = None) -> Figure:
    """Returns a site × position heatmap of prompt ``example`` (default the first): colour = the
    target's probability (or the top-1 probability without a target), text = the top-1 token."""
    e = 0 if example is None else example
    values, label = _values(result, e)
    n_rows, length = values.shape
    tokens = [clean_token(t) for t in result.tokens[e]]
    fig = Figure(figsize=(1.0 + 0.85 * length, 1.0 + 0.28 * n_rows))
    ax = fig.subplots()
    im = ax.imshow(values, aspect="auto", cmap="Blues", vmin=0.0, vmax=1.0, origin="lower")
    for r in range(n_rows):
        for p in range(length):
            top = clean_token(result.top_tokens[e][r][p][0])[:8]
            colour = "white" if values[r, p] > 0.6 else "black"
            ax.text(p, r, top, ha="center", va="center", fontsize=6, color=colour)
    ax.set_xticks(range(length), tokens, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(n_rows), [str(s) for s in result.sites], fontsize=6)
    ax.set_xlabel("position (input token)")
    ax.set_ylabel("residual stream read")
    ax.set_title(lens_title(result), fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.03, label=label)
    return fig


__all__ = ["lens_figure", "lens_heatmaps", "lens_title"]
