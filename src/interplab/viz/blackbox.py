"""Figures of black-box results: elicitation match rates, thought-anchor importance per
sentence, and prompt-sweep rates per variant, each with its interval."""

from __future__ import annotations

import textwrap

import numpy as np
from matplotlib.figure import Figure

from interplab.results.blackbox import ElicitationResult, ResamplingResult, SweepResult
from interplab.viz.render import renders


@renders(ElicitationResult, title=lambda r: f"elicitation ({r.method})")
def elicitation_figure(result: ElicitationResult) -> Figure:
    """Returns per prompt the rate of samples matching the pattern (or, without one, the mean
    log-probability per token), with the overall mean and CI as a line and band."""
    s = result.summary()
    per_prompt = []
    for i in range(len(result.prompts)):
        rows = result.prompt_index == i
        if result.pattern is not None:
            per_prompt.append(float(result.matches[rows].mean()) if rows.any() else np.nan)
        else:
            per_prompt.append(
                float((result.logprob[rows] / np.maximum(result.n_tokens[rows], 1)).mean())
            )
    fig = Figure(figsize=(1.8 + 0.9 * len(per_prompt), 3.2), layout="constrained")
    ax = fig.subplots()
    labels = [textwrap.shorten(p or "(none)", 28) for p in result.prefills]
    ax.bar(range(len(per_prompt)), per_prompt, color="#4c72b0")
    ax.axhline(float(s.mean), color="black", lw=1)
    ax.axhspan(float(s.ci_low), float(s.ci_high), color="grey", alpha=0.25, lw=0)
    ax.set_xticks(range(len(per_prompt)), labels, rotation=20, ha="right", fontsize=7)
    what = f"rate matching {result.pattern!r}" if result.pattern else "log-prob per token"
    ax.set_ylabel(what, fontsize=8)
    ax.set_title(f"{result.method}: {what} (n={result.n}; band: 95% CI)", fontsize=9)
    return fig


@renders(ResamplingResult, title=lambda r: "thought anchors: counterfactual importance")
def resampling_figure(result: ResamplingResult) -> Figure:
    """Returns each sentence's counterfactual importance with its CI, sentence text as labels."""
    k = len(result.sentences)
    fig = Figure(figsize=(7.5, 1.2 + 0.38 * k), layout="constrained")
    ax = fig.subplots()
    y = np.arange(k)[::-1]
    imp = np.nan_to_num(result.importance)
    err = np.vstack([imp - np.nan_to_num(result.ci_low), np.nan_to_num(result.ci_high) - imp])
    ax.barh(y, imp, xerr=np.abs(err), color=np.where(imp >= 0, "#c44e52", "#4c72b0"))
    ax.axvline(0, color="black", lw=0.8)
    labels = [f"{i}: {textwrap.shorten(s.strip(), 48)}" for i, s in enumerate(result.sentences)]
    ax.set_yticks(y, labels, fontsize=7)
    ax.set_xlabel(f"P(answer {result.answer!r} | kept) − P(answer | replaced)")
    ax.set_title(
        f"thought anchors: {result.same_answer.shape[1]} resamples per sentence", fontsize=9
    )
    return fig


@renders(SweepResult, title=lambda r: f"prompt sweep: rate matching {r.pattern!r}")
def sweep_figure(result: SweepResult) -> Figure:
    """Returns the match rate per prompt variant with its bootstrap CI."""
    s = result.summary()
    fig = Figure(figsize=(1.8 + 0.9 * len(result.labels), 3.2), layout="constrained")
    ax = fig.subplots()
    mean = np.asarray(s.mean, dtype=float)
    err = np.vstack([mean - np.asarray(s.ci_low), np.asarray(s.ci_high) - mean])
    ax.bar(range(len(mean)), mean, yerr=np.abs(err), color="#55a868", capsize=3)
    ax.set_xticks(range(len(mean)), result.labels, rotation=20, ha="right", fontsize=7)
    ax.set_ylabel(f"rate matching {result.pattern!r}", fontsize=8)
    ax.set_title(f"prompt sweep (n={result.matches.shape[0]} per variant; 95% CI)", fontsize=9)
    return fig


__all__ = ["elicitation_figure", "resampling_figure", "sweep_figure"]
