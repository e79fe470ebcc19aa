"""Figures of direct-logit-attribution results: per-layer attention and MLP contributions (mean,
95% CI over prompts) beside the per-head grid, and the same as interactive heatmaps whose hover
gives each cell's site, CI and Holm-adjusted p."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from interplab.results.dla import DLAResult
from interplab.sites import Site
from interplab.stats import Summary, summarize
from interplab.viz.interactive import Heatmap
from interplab.viz.render import renders

_KINDS = ("attn_out", "mlp_out")


def _direction(result: DLAResult) -> str:
    t = repr(result.target[0]) if len(set(result.target)) == 1 else "target"
    if not result.baseline:
        return f"logit({t})"
    b = repr(result.baseline[0]) if len(set(result.baseline)) == 1 else "baseline"
    return f"logit({t}) − logit({b})"


def dla_title(result: DLAResult) -> str:
    return f"direct logit attribution to {_direction(result)} (n={result.n} prompts)"


def _mean_ci(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if values.shape[0] < 2:
        m = values.mean(0)
        return m, m, m
    s = summarize(values, null=0.0, n_resamples=2000, method="percentile", correction="none")
    return np.asarray(s.mean), np.asarray(s.ci_low), np.asarray(s.ci_high)


def _evidence(s: Summary | None, shape: tuple[int, ...]) -> tuple[np.ndarray | None, list[str]]:
    """Returns which cells do not survive correction and the hover text per cell."""
    if s is None:
        return None, ["one prompt: no CI"] * int(np.prod(shape))
    text = [
        f"95% CI [{lo:+.3f}, {hi:+.3f}], p (Holm) {p:.3g}"
        for lo, hi, p in zip(s.ci_low.ravel(), s.ci_high.ravel(), s.p_adjusted.ravel(), strict=True)
    ]
    return ~np.asarray(s.significant), text


def dla_heatmaps(result: DLAResult) -> list[Heatmap]:
    """Returns two interactive heatmaps: layer × (attn_out, mlp_out) and layer × head, mean
    contribution over prompts, cells that do not survive Holm correction faded."""
    n_layers, n_heads = result.heads.shape[1:]
    layer_values = np.stack([result.by_layer(k) for k in _KINDS], -1)  # [n, layer, 2]
    heads = result.heads
    maps = []
    for values, cols, names, what in (
        (layer_values, [str(k) for k in _KINDS], _layer_sites(result), "per layer"),
        (heads, [f"h{h}" for h in range(n_heads)], _head_sites(result), "per head"),
    ):
        s = summarize(values, null=0.0) if result.n >= 2 else None
        faded, text = _evidence(s, values.shape[1:])
        flat_names = [str(x) for x in names]
        hover = [
            [
                f"{flat_names[r * len(cols) + c]}: {text[r * len(cols) + c]}"
                for c in range(len(cols))
            ]
            for r in range(n_layers)
        ]
        maps.append(
            Heatmap(
                values=values.mean(0),
                row_labels=[str(i) for i in range(n_layers)],
                col_labels=cols,
                title=f"direct contribution {what}",
                value_label=_direction(result),
                hover=hover,
                faded=faded,
                diverging=True,
            )
        )
    return maps


def _layer_sites(result: DLAResult) -> list[Site]:
    """Returns the Sites of the ``[layer, kind]`` grid in row-major order."""
    by_kind = {k: [s for s in result.sites if s.component == k] for k in _KINDS}
    return [by_kind[k][i] for i in range(len(by_kind[_KINDS[0]])) for k in _KINDS]


def _head_sites(result: DLAResult) -> list[Site]:
    n_layers, n_heads = result.heads.shape[1:]
    return [result.head_site(i, h) for i in range(n_layers) for h in range(n_heads)]


@renders(DLAResult, heatmaps=dla_heatmaps, title=dla_title)
def dla_figure(result: DLAResult) -> Figure:
    """Returns two panels: per-layer attention and MLP contributions (mean, 95% CI over prompts),
    and the per-head grid of mean contributions."""
    fig = Figure(figsize=(13, 4.2))
    ax1, ax2 = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.4, 1]})
    n_layers = result.heads.shape[1]
    x = np.arange(n_layers)
    for kind, colour, shift in (("attn_out", "tab:blue", -0.2), ("mlp_out", "tab:orange", 0.2)):
        m, lo, hi = _mean_ci(result.by_layer(kind))
        ax1.bar(x + shift, m, width=0.4, color=colour, label=kind)
        ax1.errorbar(
            x + shift, m, yerr=[m - lo, hi - m], fmt="none", ecolor="black", lw=0.7, capsize=1.5
        )
    ax1.axhline(0, color="grey", lw=0.6)
    ax1.set_xlabel("layer")
    ax1.set_ylabel(f"direct contribution to {_direction(result)}")
    ax1.set_title(f"direct logit attribution (n={result.n} prompts, 95% CI)", fontsize=9)
    ax1.legend(fontsize=8)
    heads = result.heads.mean(0)
    lim = float(np.abs(heads).max()) or 1.0
    im = ax2.imshow(heads, aspect="auto", cmap="RdBu", vmin=-lim, vmax=lim, origin="lower")
    ax2.set_xlabel("head")
    ax2.set_ylabel("layer")
    ax2.set_title("per-head direct contribution (mean over prompts)", fontsize=9)
    fig.colorbar(im, ax=ax2, fraction=0.04)
    fig.tight_layout()
    return fig


__all__ = ["dla_figure", "dla_heatmaps", "dla_title"]
