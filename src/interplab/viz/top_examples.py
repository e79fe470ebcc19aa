"""Views of max-activating examples: a figure of where each direction's examples lie, and one
self-contained HTML page of contexts with every token coloured by its activation.

- `top_examples_figure`: per direction (a row), the activations of its random tokens (grey), its
  quantile-bin samples (blue) and its top-k (red) on one axis, with the mean ± std over every
  token of the pass: the top examples read against the distribution they come from.
- `page` / `save_page`: per direction its top, quantile-bin and random examples; each context
  token's background is proportional to its activation over the direction's largest
  |activation| (red +, blue −); the boxed token is the example. No script, nothing fetched.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from interplab.provenance import write_text
from interplab.results.top_examples import Example, TopExamplesResult
from interplab.viz.render import renders

_CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}
.ex{font-family:ui-monospace,monospace;font-size:.85em;margin:.15em 0;white-space:pre-wrap}
.ex .s{display:inline-block;width:5.5em;color:#555;text-align:right;margin-right:.6em}
.t{border-radius:2px} .f{outline:1.5px solid #000} .facts{color:#555}"""


def top_examples_title(result: TopExamplesResult) -> str:
    return f"max-activating examples: {result.n_directions} directions, {result.n_tokens:,} tokens"


@renders(TopExamplesResult, title=top_examples_title)
def top_examples_figure(
    result: TopExamplesResult, *, directions: Sequence[str | int] | None = None, limit: int = 12
) -> Figure:
    """Returns one row per direction (the first ``limit``, or ``directions``): random tokens,
    quantile samples and the top-k on the activation axis, with mean ± std of the whole pass."""
    chosen = [result.index(d) for d in directions] if directions else range(result.n_directions)
    rows = list(chosen)[:limit]
    fig = Figure(figsize=(8.0, 1.0 + 0.45 * len(rows)))
    ax = fig.subplots()
    for y, d in enumerate(rows):
        for kind, colour, size in (
            ("random", "0.55", 14),
            ("quantiles", "C0", 14),
            ("top", "C3", 18),
        ):
            scores = [ex.score for ex in result.contexts(d, kind)]  # type: ignore[arg-type]
            ax.scatter(scores, np.full(len(scores), y), s=size, color=colour, alpha=0.8,
                       label=kind if y == 0 else None)  # fmt: skip
        ax.errorbar(result.mean[d], y + 0.3, xerr=result.std[d], fmt="|", color="k", capsize=3,
                    label="mean ± std (all tokens)" if y == 0 else None)  # fmt: skip
    ax.set_yticks(range(len(rows)), [result.labels[d] for d in rows], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("activation")
    ax.set_title(f"{result.n_tokens:,} tokens of {result.corpus or 'the corpus'}", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


def page(
    result: TopExamplesResult, *, directions: Sequence[str | int] | None = None, limit: int = 50
) -> str:
    """Returns one self-contained HTML page: per direction (the first ``limit``, or
    ``directions``), its top, quantile-bin and random examples with coloured contexts."""
    chosen = [result.index(d) for d in directions] if directions else range(result.n_directions)
    model = html.escape(str(result.provenance.model.get("name", "")))
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>max-activating examples"
        f"</title><style>{_CSS}</style></head><body><h1>Max-activating dataset examples</h1>",
        f"<p>{result.n_tokens:,} tokens in {result.n_windows:,} windows of "
        f"{html.escape(result.corpus)}; model {model}. Colour ∝ activation / the direction's "
        "largest |activation|; the boxed token is the example.</p>",
    ]
    for d in list(chosen)[:limit]:
        scale = float(max(abs(result.max[d]), abs(result.min[d]), 1e-12))
        parts.append(
            f"<h2>{html.escape(result.labels[d])}</h2><p class='facts'>mean "
            f"{result.mean[d]:.3g}, std {result.std[d]:.3g}, min {result.min[d]:.3g}, max "
            f"{result.max[d]:.3g} over {result.n_tokens:,} tokens</p>"
            f"<h3>top {result.top.score.shape[1]}</h3>"
        )
        parts += [_row(ex, scale) for ex in result.contexts(d, "top")]
        parts.append("<h3>quantile bins (approximate), low to high</h3>")
        by_bin: dict[int, list[Example]] = {}
        for ex in result.contexts(d, "quantiles"):
            by_bin.setdefault(ex.slot[0], []).append(ex)
        for b in sorted(by_bin):
            lo, hi = result.bin_ranges[d, b]
            flo, fhi = result.bin_fractions[d, b]
            parts.append(
                f"<h4>bin {b + 1}: activations {lo:.3g} to {hi:.3g} (tokens {flo:.0%}–"
                f"{fhi:.0%})</h4>"
            )
            parts += [_row(ex, scale) for ex in by_bin[b]]
        parts.append("<h3>random tokens (uniform over the corpus)</h3>")
        parts += [_row(ex, scale) for ex in result.contexts(d, "random")]
    parts.append("</body></html>")
    return "\n".join(parts)


def save_page(
    result: TopExamplesResult,
    path: str | Path,
    *,
    directions: Sequence[str | int] | None = None,
    limit: int = 50,
) -> Path:
    """Writes `page` atomically at ``path`` and returns the path."""
    return write_text(path, page(result, directions=directions, limit=limit))


def _row(ex: Example, scale: float) -> str:
    spans = []
    for i, (tok, act) in enumerate(zip(ex.tokens, ex.acts, strict=True)):
        a = 0.0 if act != act else max(-1.0, min(1.0, act / scale))  # NaN-safe
        colour = f"rgba(220,40,40,{a:.2f})" if a >= 0 else f"rgba(40,90,220,{-a:.2f})"
        cls = "t f" if i == ex.focus else "t"
        text = html.escape(tok).replace("\n", "⏎")
        spans.append(
            f"<span class='{cls}' style='background:{colour}' title='{act:.4g}'>{text}</span>"
        )
    return (
        f"<div class='ex'><span class='s'>{ex.score:.3g}</span>{''.join(spans)}"
        f"<span class='s'>w{ex.window}:{ex.position}</span></div>"
    )


__all__ = ["page", "save_page", "top_examples_figure", "top_examples_title"]
