"""Views of sparse dictionaries: training curves, evaluations, feature pages and their index.

- `training_figure`: FVE (live, and evaluated with CE loss recovered when measured), L0, dead
  fraction and MSE against training tokens: the curve a user reads to judge a run.
- `eval_figure`: the headline metrics with bootstrap CIs over evaluation batches, and the
  distribution of latent densities (dead latents at the left edge).
- `feature_figure` / `index_figure`: a feature's activation histogram and output tokens; the
  density of every feature against its maximum activation.
- `write_feature_pages`: one self-contained HTML page per feature (contexts with every token
  coloured by the feature's activation, the boxed token the example) and an index page.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from interplab.provenance import write_text
from interplab.results.dictionaries import (
    DictionaryEval,
    EncodedPrompts,
    Example,
    FeatureIndex,
    FeaturePage,
    TrainingCurve,
)
from interplab.results.dictionary_diagnostics import DictionaryDiagnostics
from interplab.viz.render import png_bytes, renders

_CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}
.ex{font-family:ui-monospace,monospace;font-size:.85em;margin:.15em 0;white-space:pre-wrap}
.ex .s{display:inline-block;width:5.5em;color:#555;text-align:right;margin-right:.6em}
.t{border-radius:2px} .f{outline:1.5px solid #000} .muted{color:#555}
table{border-collapse:collapse} td,th{padding:.2em .6em;border-bottom:1px solid #ddd;text-align:left}"""


@renders(TrainingCurve, title=lambda r: f"training {r.name}")
def training_figure(result: TrainingCurve) -> Figure:
    """Returns FVE, L0, dead fraction and MSE against training tokens (evaluations as points)."""
    fig = Figure(figsize=(10, 6.5), layout="constrained")
    axes = fig.subplots(2, 2, sharex=True)
    t = result.tokens
    ax = axes[0, 0]
    ax.plot(t, result.fve, color="C0", alpha=0.6, label="FVE (training batches)")
    if len(result.eval_tokens):
        for key, colour, label in (
            ("fve", "C1", "FVE (held out)"),
            ("ce_recovered", "C3", "CE loss recovered"),
        ):
            if key in result.eval_metrics:
                ax.plot(
                    result.eval_tokens,
                    result.eval_metrics[key],
                    "o-",
                    color=colour,
                    label=label,
                    ms=4,
                )
    ax.set_ylabel("fraction")
    ax.legend(fontsize=8)
    for a, values, label in (
        (axes[0, 1], result.l0, "L0 (active latents per token)"),
        (axes[1, 0], result.dead_fraction, "dead fraction (no firing in the dead window)"),
        (axes[1, 1], result.mse, "MSE (|x - x̂|², raw units)"),
    ):
        a.plot(t, values, color="C2")
        a.set_ylabel(label)
        # No offset notation: a TopK L0 of 64 +- 1e-3 is 64, not "+6.3999e1".
        a.ticklabel_format(axis="y", useOffset=False)
    if len(result.l0) and float(np.ptp(result.l0)) < 1e-2 * max(1.0, float(np.max(result.l0))):
        axes[0, 1].set_ylim(0, float(np.max(result.l0)) * 1.2)
    if len(result.mse) and np.all(result.mse > 0):
        axes[1, 1].set_yscale("log")
    for a in axes[1]:
        a.set_xlabel("training tokens")
    arch = result.config.get("architecture", "")
    fig.suptitle(
        f"{result.name}: {arch}, {result.config.get('d_sae')} latents at {result.config.get('site')}"
    )
    return fig


@renders(DictionaryEval, title=lambda r: f"evaluation of {r.name}")
def eval_figure(result: DictionaryEval) -> Figure:
    """Returns the headline metrics with 95% CIs over batches, and the latent densities."""
    fig = Figure(figsize=(10, 3.8), layout="constrained")
    left, right = fig.subplots(1, 2)
    summaries = result.summaries()
    names = [n for n in ("fve", "ce_recovered") if n in summaries]
    means = [float(summaries[n].mean) for n in names]
    low = [m - float(summaries[n].ci_low) for m, n in zip(means, names, strict=True)]
    high = [float(summaries[n].ci_high) - m for m, n in zip(means, names, strict=True)]
    left.bar(names, means, yerr=[low, high], color=["C0", "C3"][: len(names)], capsize=4)
    left.set_ylim(min(0.0, *means) if means else 0, 1.05)
    left.set_title(
        f"L0 {result.l0:.1f}, silent on these tokens {result.dead_fraction:.1%}, "
        f"KL {result.kl:.3g}",
        fontsize=9,
    )
    alive = result.density[result.density > 0]
    if alive.size:
        right.hist(np.log10(alive), bins=40, color="C2")
    right.set_xlabel("log10 latent density (latents silent on these tokens left out)")
    right.set_ylabel("latents")
    fig.suptitle(f"{result.name} at {result.site}: {result.n_tokens:,} held-out tokens")
    return fig


@renders(FeaturePage, title=lambda r: r.label)
def feature_figure(result: FeaturePage) -> Figure:
    """Returns the activation histogram (log axis) and the output tokens the feature promotes."""
    fig = Figure(figsize=(10, 3.6), layout="constrained")
    left, right = fig.subplots(1, 2)
    edges, counts = result.histogram_edges, result.histogram_counts
    if counts.sum():
        left.stairs(counts, edges, fill=True, color="C0")
        left.set_xscale("log")
        nz = np.flatnonzero(counts)
        left.set_xlim(edges[nz[0]], edges[nz[-1] + 1])
    left.set_xlabel("activation (active tokens)")
    left.set_ylabel("tokens")
    left.set_title(f"density {result.density:.3%}, max {result.max_activation:.3g}", fontsize=9)
    tokens = [*result.boosted[::-1], *result.suppressed]
    if tokens:
        right.barh(
            range(len(tokens)),
            [v for _, v in tokens],
            color=["C3" if v > 0 else "C0" for _, v in tokens],
        )
        right.set_yticks(range(len(tokens)), [ascii(t) for t, _ in tokens], fontsize=7)
        right.set_xlabel("logit per unit of feature activation")
    else:
        right.axis("off")
    fig.suptitle(result.label)
    return fig


@renders(FeatureIndex, title=lambda r: f"features of {r.dictionary}")
def index_figure(result: FeatureIndex) -> Figure:
    """Returns every feature's density against its maximum activation (log-log)."""
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    alive = result.density > 0
    ax.scatter(result.density[alive], result.max_activation[alive], s=4, alpha=0.5)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("density")
    ax.set_ylabel("max activation")
    ax.set_title(
        f"{result.dictionary}: {int(alive.sum())} live of {len(alive)} features", fontsize=9
    )
    return fig


@renders(EncodedPrompts, title=lambda r: f"features of {r.dictionary} at {r.site}")
def encoded_figure(result: EncodedPrompts, *, prompt: int = 0) -> Figure:
    """Returns, for one prompt, each token's strongest feature activation, labelled by feature."""
    tokens = result.tokens[prompt]
    fig = Figure(figsize=(max(6, 0.45 * len(tokens)), 3.5))
    ax = fig.subplots()
    top = [acts[0] if acts else 0.0 for acts in result.activations[prompt]]
    ax.bar(range(len(tokens)), top, color="C0")
    for i, feats in enumerate(result.features[prompt]):
        if feats:
            ax.annotate(f"f{feats[0]}", (i, top[i]), ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(tokens)), [ascii(t) for t in tokens], rotation=60, fontsize=7)
    ax.set_ylabel("strongest feature activation")
    ax.set_title(result.prompts[prompt][:80], fontsize=9)
    return fig


def write_feature_pages(
    index: FeatureIndex, pages: Mapping[int, FeaturePage], folder: str | Path
) -> list[Path]:
    """Writes ``f<i>.html`` (and ``f<i>.json``) per page and ``index.html``; returns the paths."""
    root = Path(folder)
    written = []
    for i, page in pages.items():
        written.append(write_text(root / f"f{i}.html", feature_html(page, set(pages))))
        written.append(page.to_json(root / f"f{i}.json"))
    written.append(index.to_json(root / "index.json"))
    written.append(write_text(root / "index.html", index_html(index, pages)))
    return written


def feature_html(page: FeaturePage, linked: set[int] | None = None) -> str:
    """Returns one self-contained HTML page for a feature."""
    scale = max(page.max_activation, 1e-12)
    sections = [f"<h2>Top {len(page.top)} examples</h2>", *(_example(e, scale) for e in page.top)]
    for q in page.quantiles:
        sections.append(
            f"<h3>Activations {q.low:.3g} to {q.high:.3g} ({q.fraction:.0%} of active tokens)</h3>"
        )
        sections.extend(_example(e, scale) for e in q.examples)
    sections.append(f"<h2>{len(page.random)} random active tokens</h2>")
    sections.extend(_example(e, scale) for e in page.random)
    if page.boosted:
        sections.append("<h2>Output tokens</h2><p>promotes: " + _tokens(page.boosted) + "</p>")
        sections.append("<p>suppresses: " + _tokens(page.suppressed) + "</p>")
    near = ", ".join(
        (f"<a href='f{i}.html'>f{i}</a>" if linked and i in linked else f"f{i}") + f" ({c:.2f})"
        for i, c in page.neighbours
    )
    sections.append(f"<h2>Nearest features (decoder cosine)</h2><p>{near}</p>")
    img = base64.b64encode(png_bytes(feature_figure(page))).decode()
    summary = html.escape(page.summary().describe())
    head = (
        f"<h1>{html.escape(page.label)}</h1><p class='muted'>density {page.density:.4%} of "
        f"{page.n_tokens:,} tokens; mean activation when active {page.mean_activation:.3g}, max "
        f"{page.max_activation:.3g}. <a href='index.html'>index</a></p><p class='muted'>Mean over "
        f"uniformly sampled tokens: {summary}</p><img style='max-width:100%' src='data:image/png;base64,{img}'>"
    )
    return _document(page.label, head + "".join(sections))


def index_html(index: FeatureIndex, pages: Mapping[int, FeaturePage]) -> str:
    """Returns the index page: the dictionary at a glance and a table of the feature pages."""
    img = base64.b64encode(png_bytes(index_figure(index))).decode()
    dead = float((index.density == 0).mean())
    rows = []
    for i in sorted(pages, key=lambda i: -pages[i].density):
        p = pages[i]
        kind = "random" if i in index.random_features else "frequent"
        rows.append(
            f"<tr><td><a href='{index.pages.get(i, f'f{i}.html')}'>f{i}</a></td><td>{kind}</td>"
            f"<td>{p.density:.4%}</td><td>{p.max_activation:.3g}</td>"
            f"<td>{html.escape(repr(index.top_token[i]))}</td></tr>"
        )
    body = (
        f"<h1>Features of {html.escape(index.dictionary)} at {index.site}</h1><p class='muted'>"
        f"{len(index.density)} features over {index.n_tokens:,} tokens; {dead:.1%} never fired. "
        "Pages for the most frequent non-dense features and, marked random, features drawn at "
        f"random from the live ones.</p><img src='data:image/png;base64,{img}'><table><tr><th>feature"
        "</th><th>chosen as</th><th>density</th><th>max</th><th>top token</th></tr>"
        + "".join(rows)
        + "</table>"
    )
    return _document(f"features of {index.dictionary}", body)


def _example(e: Example, scale: float) -> str:
    spans = []
    for k, (tok, act) in enumerate(zip(e.tokens, e.activations, strict=True)):
        if tok == "" and not np.isfinite(act):
            continue
        alpha = 0.0 if not np.isfinite(act) else min(1.0, max(0.0, act / scale))
        cls = "t f" if k == e.center else "t"
        spans.append(
            f"<span class='{cls}' title='{act:.3g}' style='background:rgba(220,50,32,{alpha:.2f})'>"
            f"{html.escape(tok)}</span>"
        )
    return f"<div class='ex'><span class='s'>{e.activation:.3g}</span>{''.join(spans)}</div>"


def _tokens(tokens: list[tuple[str, float]]) -> str:
    return ", ".join(f"<code>{html.escape(repr(t))}</code> {v:+.2f}" for t, v in tokens)


def _document(title: str, body: str) -> str:
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{_CSS}</style></head><body>{body}</body></html>"
    )


__all__ = [
    "encoded_figure",
    "eval_figure",
    "feature_figure",
    "feature_html",
    "index_figure",
    "index_html",
    "training_figure",
    "write_feature_pages",
]


@renders(DictionaryDiagnostics, title=lambda r: f"splitting and absorption of {r.name}")
def diagnostics_figure(result: DictionaryDiagnostics) -> Figure:
    """Returns the Jaccard of high-cosine feature pairs and the per-letter miss/absorption rates."""
    fig = Figure(figsize=(10, 3.6), layout="constrained")
    left, right = fig.subplots(1, 2, width_ratios=(1, 2))
    jac = np.array([p.jaccard for p in result.pairs])
    if jac.size:
        left.hist(jac, bins=np.linspace(0, 1, 21), color="C0")
    for x in (result.exclusive, result.redundant):
        left.axvline(x, color="k", lw=0.6, ls="--")
    left.set_xlabel("Jaccard of firing sets")
    left.set_ylabel("feature pairs")
    left.set_title(
        f"{len(result.pairs)} pairs, decoder cosine > {result.cosine_threshold:g}", fontsize=9
    )
    letters = [x.letter for x in result.letters]
    pos = np.arange(len(letters))
    right.bar(pos - 0.2, result.miss_rates(), 0.4, color="0.6", label="main feature silent")
    right.bar(pos + 0.2, result.absorption_rates(), 0.4, color="C3", label="absorbed")
    right.set_xticks(pos, letters)
    right.set_ylabel("fraction of the probe's hits")
    right.set_title("first-letter absorption (held-out words)", fontsize=9)
    right.legend(fontsize=8)
    return fig
