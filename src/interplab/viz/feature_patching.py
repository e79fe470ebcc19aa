"""Feature patching drawn: effect per feature and position, with the first-order estimate beside.

- Left: the mean effect of each (feature, position) cell over examples, in units of the
  clean-corrupt gap; cells that do not survive Holm correction are hatched.
- Right: the mean estimate against the mean exact effect per cell (the diagonal is perfect
  agreement), features chosen at random as a baseline in grey, so a reader sees both how the top
  features compare with typical ones and how far the estimate can be trusted.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from interplab.results.feature_patching import FeaturePatchingResult
from interplab.viz.interactive import Heatmap
from interplab.viz.render import renders


def _labels(result: FeaturePatchingResult) -> tuple[list[str], list[str]]:
    rows = [f"{f.dictionary}.f{f.feature}" for f in result.features]
    if result.per == "all":
        return rows, ["all positions"]
    return rows, [f"{p} {t!r}" for p, t in enumerate(result.tokens[0])]


def _grid(result: FeaturePatchingResult) -> tuple[np.ndarray, np.ndarray | None]:
    s = result.summary() if result.n >= 2 else None
    mean = np.nanmean(result.effects, 0)
    sig = None if s is None else np.asarray(s.significant)
    if mean.ndim == 1:
        mean = mean[:, None]
        sig = None if sig is None else sig[:, None]
    return mean, sig


def heatmaps(result: FeaturePatchingResult) -> list[Heatmap]:
    """Returns the interactive grid: each cell's mean effect, CI and Holm-adjusted p."""
    mean, sig = _grid(result)
    rows, cols = _labels(result)
    hover = None
    if result.n >= 2:
        s = result.summary()
        lo, hi, p = (np.asarray(a).reshape(mean.shape) for a in (s.ci_low, s.ci_high, s.p_adjusted))
        est = np.nanmean(result.attribution, 0).reshape(mean.shape)
        hover = [
            [
                f"{result.features[i]}: 95% CI [{lo[i, j]:+.3g}, {hi[i, j]:+.3g}], p (holm) "
                f"{p[i, j]:.3g}, estimate {est[i, j]:+.3g}, n={result.n}"
                for j in range(mean.shape[1])
            ]
            for i in range(mean.shape[0])
        ]
    return [
        Heatmap(
            values=mean,
            row_labels=rows,
            col_labels=cols,
            title=f"feature patching ({result.method}, {result.direction}) on {result.metric}",
            value_label=f"mean Δ {result.metric}",
            hover=hover,
            faded=None if sig is None else ~sig,
        )
    ]


@renders(
    FeaturePatchingResult,
    heatmaps=heatmaps,
    title=lambda r: f"feature patching: {len(r.features)} features, n={r.n}",
)
def feature_patching_figure(result: FeaturePatchingResult) -> Figure:
    """Returns the effect grid and the estimate-against-exact scatter."""
    mean, sig = _grid(result)
    gap = result.gap or 1.0
    rows, cols = _labels(result)
    fig = Figure(figsize=(11, 0.9 + 0.28 * len(rows) + 1.6), layout="constrained")
    left, right = fig.subplots(1, 2, width_ratios=(2.2, 1))
    lim = float(np.nanmax(np.abs(mean / gap))) or 1.0
    im = left.imshow(mean / gap, cmap="RdBu", vmin=-lim, vmax=lim, aspect="auto")
    if sig is not None:
        for i, j in zip(*np.nonzero(~sig), strict=True):
            left.add_patch(
                _hatch(j - 0.5, i - 0.5),
            )
    left.set_yticks(range(len(rows)), rows, fontsize=7)
    left.set_xticks(range(len(cols)), cols, rotation=60, ha="right", fontsize=7)
    left.set_title(f"mean effect / gap ({gap:.3g}); hatched: not significant (Holm)", fontsize=8)
    fig.colorbar(im, ax=left, fraction=0.04, label="fraction of the clean–corrupt gap")
    est = np.nanmean(result.attribution, 0).reshape(mean.shape)
    chosen = result.ranked and len(result.features) > 0
    n_top = len(result.features) - _n_random(result) if chosen else len(result.features)
    for group, colour, label in (
        (slice(0, n_top), "C0", "chosen features" if chosen else "features"),
        (slice(n_top, None), "0.55", "random active features (baseline)"),
    ):
        x, y = mean[group].ravel(), est[group].ravel()
        if x.size:
            right.scatter(x, y, s=10, color=colour, label=label)
    span = float(np.nanmax(np.abs(np.concatenate([mean.ravel(), est.ravel()])))) or 1.0
    right.plot([-span, span], [-span, span], color="k", lw=0.6)
    right.set_xlabel(f"exact mean Δ {result.metric}" if result.method == "exact" else "estimate")
    right.set_ylabel("first-order estimate")
    rho = result.rank_agreement()
    right.set_title(f"estimate vs exact (Spearman {rho:.2f})", fontsize=8)
    right.legend(fontsize=7)
    return fig


def _n_random(result: FeaturePatchingResult) -> int:
    return int(result.provenance.config.get("baseline", 0)) if result.ranked else 0


def _hatch(x: float, y: float):
    from matplotlib.patches import Rectangle

    return Rectangle((x, y), 1, 1, fill=False, hatch="///", lw=0, color="0.4")


__all__ = ["feature_patching_figure", "heatmaps"]
