"""Figures of auditing games (the leaderboard: top-1 and top-5 accuracy per contestant with CIs
and chance) and of organism checks (leak rate and the guesser's ranks)."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from interplab.results.audit import AuditResult, OrganismCheckResult
from interplab.viz.render import renders


@renders(AuditResult, title=lambda r: f"auditing game: {len(r.organisms)} organism(s)")
def leaderboard_figure(result: AuditResult) -> Figure:
    """Returns top-1 and top-5 accuracy per contestant (best top-5 first) with 95% CIs, chance
    as dashed lines; skipped contestants are listed, not drawn."""
    rows = [r for r in result.leaderboard() if not r["skipped"]]
    names = [str(r["contestant"]) for r in rows]
    fig = Figure(figsize=(7.5, 1.4 + 0.4 * max(1, len(rows))), layout="constrained")
    ax = fig.subplots()
    y = np.arange(len(rows))[::-1]
    for offset, key, colour in ((0.2, "top1", "#4c72b0"), (-0.2, "top5", "#dd8452")):
        mean = np.array([float(r[key]) for r in rows])  # type: ignore[arg-type]
        ci = np.array([r[f"{key}_ci"] for r in rows], dtype=float).reshape(-1, 2)
        err = np.abs(np.vstack([mean - ci[:, 0], ci[:, 1] - mean]))
        ax.barh(y + offset, mean, height=0.38, xerr=err, color=colour, label=key, capsize=2)
    ax.axvline(result.chance5, color="#dd8452", ls="--", lw=0.8, label="chance (top-5)")
    ax.set_yticks(y, [f"{n} ({r['kind']})" for n, r in zip(names, rows, strict=True)], fontsize=7)
    ax.set_xlim(0, 1.05)
    ax.set_xlabel("accuracy over organism × trial (95% CI)")
    skipped = [c for c, s in zip(result.contestants, result.skipped, strict=True) if s]
    title = f"auditing game: {len(result.organisms)} organism(s), {result.hit1.shape[2]} trials"
    ax.set_title(title + (f"; skipped: {', '.join(skipped)}" if skipped else ""), fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    return fig


@renders(OrganismCheckResult, title=lambda r: f"organism check: {r.organism}")
def organism_check_figure(result: OrganismCheckResult) -> Figure:
    """Returns the leak rate per prompt and the histogram of the guesser's rank of the secret."""
    fig = Figure(figsize=(8, 3.2), layout="constrained")
    left, right = fig.subplots(1, 2)
    rates = [
        float(result.leaked[result.prompt_index == i].mean()) for i in range(len(result.prompts))
    ]
    left.bar(range(len(rates)), rates, color="#c44e52")
    left.set_xticks(
        range(len(rates)), [p[:18] for p in result.prompts], rotation=60, ha="right", fontsize=6
    )
    left.set_ylim(0, 1)
    left.set_title(
        f"leak rate {result.leak_rate:.3f} [{result.leak_low:.3f}, {result.leak_high:.3f}] "
        f"(n={result.leaked.size})",
        fontsize=8,
    )
    ranks = np.minimum(result.guess_rank, 50)
    right.hist(ranks, bins=np.arange(0, 52, 1), color="#4c72b0")
    right.axvline(4.5, color="black", ls="--", lw=0.8)
    right.set_xlabel(
        f"guesser's rank of the secret among {len(result.vocabulary)} words (cut at 50)"
    )
    right.set_title(
        f"top-5 hits {(result.guess_rank < 5).mean():.2f} (chance {result.chance_top5:.3f})",
        fontsize=8,
    )
    return fig


__all__ = ["leaderboard_figure", "organism_check_figure"]
