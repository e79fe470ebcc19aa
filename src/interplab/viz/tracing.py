"""Figures of causal-tracing results: one layer × position panel per component (``resid_post``,
``attn_out``, ``mlp_out``) of the mean Δ p(answer) over prompts (or of one prompt's), subject
tokens starred, cells that do not survive Holm hatched; and the same grids as interactive
heatmaps whose hover names each cell's site, CI and adjusted p."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from interplab.results.tracing import SITE_OF, TracingResult
from interplab.viz.figures import heatmaps_figure
from interplab.viz.interactive import Heatmap
from interplab.viz.render import renders


def tracing_title(result: TracingResult, example: int | None = None) -> str:
    who = f"prompt {example}" if example is not None else f"mean over n={result.n} prompts"
    return (
        f"causal tracing, {who}: p(answer) clean {result.clean.mean():.3f}, corrupted "
        f"{result.corrupted.mean():.3f} (noise {result.noise:g}σ, σ={result.sigma:.3g}, "
        f"{result.samples} samples); * subject token"
    )


def tracing_heatmaps(result: TracingResult, example: int | None = None) -> list[Heatmap]:
    """Returns one heatmap per component: the mean effect over prompts (or prompt ``example``'s),
    with CI and Holm-adjusted p on hover when there are 2+ prompts."""
    maps = []
    for c in result.components:
        if example is not None:
            values = result.effect(c)[example, :, : result.lengths[example]]
            tokens, span = result.tokens[example], [example]
        else:
            values = result.aligned(c, "the averaged heatmap").mean(0)
            tokens, span = result.tokens[0], list(range(result.n))
        faded, evidence = None, None
        if example is None and result.n >= 2:
            s = result.summary(c)
            faded = ~np.asarray(s.significant)
            evidence = [
                [
                    f"95% CI [{s.ci_low[li, p]:+.3f}, {s.ci_high[li, p]:+.3f}], "
                    f"p (Holm) {s.p_adjusted[li, p]:.3g}"
                    for p in range(values.shape[1])
                ]
                for li in range(values.shape[0])
            ]
        hover = [
            [
                f"{result.site(c, li)} @ {p} {tokens[p]!r}"
                + (f": {evidence[li][p]}" if evidence is not None else "")
                for p in range(values.shape[1])
            ]
            for li in range(values.shape[0])
        ]
        subject = {p for e in span for p in range(*result.subject_spans[e])}
        labels = [
            t.replace("\n", "\\n") + ("*" if p in subject else "") for p, t in enumerate(tokens)
        ]
        extra = "" if c == "resid" else f", window {result.window}"
        maps.append(
            Heatmap(
                values=np.nan_to_num(np.asarray(values, dtype=float)),
                row_labels=[str(li) for li in range(values.shape[0])],
                col_labels=labels,
                title=f"restore {SITE_OF[c]}{extra}",
                value_label="Δ p(answer)",
                hover=hover,
                faded=faded,
                diverging=True,
            )
        )
    return maps


@renders(TracingResult, heatmaps=tracing_heatmaps, title=tracing_title)
def tracing_figure(result: TracingResult, example: int | None = None) -> Figure:
    """Returns one layer × position heatmap per component of the mean effect over prompts (or of
    one prompt's with ``example``); subject tokens are starred on the x axis."""
    return heatmaps_figure(
        tracing_heatmaps(result, example),
        tracing_title(result, example),
        "position (token; * subject)",
    )


__all__ = ["tracing_figure", "tracing_heatmaps", "tracing_title"]
