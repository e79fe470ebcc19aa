"""The main job: look inside the embedded model and write a report a person can open.

1. Load the embedded model (converted once, cached).
2. Logit lens on factual prompts whose answer is " Paris": where does the answer appear?
3. Direct logit attribution on indirect-object prompts: which layers and heads write the
   indirect object's name over the subject's? Every number with n and a 95% CI.
4. Activation patching on the same task (residual stream by layer × position, heads), and
   attribution patching compared against it cell by cell.
5. A truth probe at every layer, beside its shuffled-label control task.
6. A happiness steering vector, beside norm-matched random vectors and a prompt baseline.
7. Write ``index.html`` (self-contained), the figures as PNG, and every result as JSON.

Every run is recorded in a research project beside the page (``project/``): the hypotheses are
written before the runs that test them (so those runs are marked pre-registered), findings cite
their evidence runs, and the project's own report (``notebook/index.html``) is built from the
store, with the exact commands and hashes to re-run each number.
"""

from __future__ import annotations

import importlib
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from interplab import store, viz
from interplab.core.model import Model, load
from interplab.report import Report, Section
from interplab.sites import Site
from interplab.techniques import direct_logit_attribution, logit_lens

PARIS_PROMPTS = [
    "The Eiffel Tower is located in the city of",
    "The capital of France is",
    "The Louvre museum is in the city of",
    "Notre-Dame cathedral stands in the heart of",
    "The French government sits in its capital,",
    "The Arc de Triomphe is a monument in",
]

# Indirect-object identification (Wang et al. 2022): the answer is the name said once (IO), the
# baseline the name said twice (S). Both name orders, so position cannot stand in for the name.
IOI_TEMPLATES = [
    "When {A} and {B} went to the store, {S} gave a drink to",
    "When {A} and {B} went to the park, {S} handed a ball to",
    "After {A} and {B} went to the market, {S} gave a bag to",
    "While {A} and {B} were working at the office, {S} passed a note to",
]
IOI_NAMES = [("Mary", "John"), ("Alice", "Tom"), ("Sarah", "James"), ("Anna", "David")]


def ioi_prompts() -> tuple[list[str], list[str], list[str]]:
    """Returns (prompts, indirect objects, subjects) over templates × name pairs × both orders."""
    prompts, io, s = [], [], []
    for template in IOI_TEMPLATES:
        for a, b in IOI_NAMES:
            for first, second in ((a, b), (b, a)):
                # The subject (repeated name) is `second`; the answer is `first`.
                prompts.append(template.format(A=first, B=second, S=second))
                io.append(" " + first)
                s.append(" " + second)
    return prompts, io, s


def _findings(project: store.Project, lens: Any, dla: Any, h_late: int, h_ioi: int) -> None:
    """Writes what the demo believes, each finding with its evidence run and what would change
    the mind, its tests corrected over the runs linked to the hypothesis it answers."""
    first = [f for f in lens.first_layer_top1() if f is not None]
    if first:
        project.finding(
            f"' Paris' first becomes the lens's top-1 token between {_earliest(first)} and "
            f"{_latest(first)} on {len(first)} of {lens.n} factual prompts.",
            evidence=[_latest_run(project, "logit_lens")],
            confidence=0.7,
            change_my_mind="a tuned lens (trained per layer) showing the answer decodable much "
            "earlier, or other answers than Paris appearing at different depths",
            family=f"H{h_late}",
        )
    top = dla.top_components(1)[0]
    project.finding(
        f"On {dla.n} IOI prompts the largest direct writer of logit(IO) - logit(S) is "
        f"{top.site} ({top.mean:+.2f}, 95% CI {top.ci_low:+.2f} to {top.ci_high:+.2f}).",
        evidence=[_latest_run(project, "direct_logit_attribution")],
        confidence=0.8,
        change_my_mind="patching that component on new templates failing to move the logit "
        "difference, or the ranking changing on other name sets",
        family=f"H{h_ioi}",
    )


def _earliest(sites: list[Site]) -> Site:
    return min(sites, key=lambda x: x.sort_key)


def _latest(sites: list[Site]) -> Site:
    return max(sites, key=lambda x: x.sort_key)


@contextmanager
def _project(folder: Path) -> Iterator[store.Project]:
    """Opens a fresh project at ``folder`` and makes it the one every run records into."""
    shutil.rmtree(folder, ignore_errors=True)
    project = store.Project.init(folder)
    old = os.environ.get("INTERPLAB_PROJECT")
    os.environ["INTERPLAB_PROJECT"] = str(project.root)
    try:
        yield project
    finally:
        if old is None:
            os.environ.pop("INTERPLAB_PROJECT", None)
        else:
            os.environ["INTERPLAB_PROJECT"] = old
        project.close()


def _latest_run(project: store.Project, technique: str) -> int:
    runs = project.runs(technique=technique, status="done", limit=1)
    if not runs:
        raise RuntimeError(f"the demo expected a recorded {technique} run")
    return runs[0].id


SECTIONS = ("sae", "das", "graph", "audit")
"""The sections in their own modules (``interplab/demo/<name>.py``, ``section(model, out_dir,
console) -> Section``), in page order; what they train is cached, so a second run is fast. The
SAE and DAS sections train in minutes on first use; the graph and audit sections need a model
trained for much longer (transcoders for every layer; a Taboo organism), so they run only once
that is cached, and the page says how to make it."""


def _not_cached(name: str, model: Model) -> str:
    """Returns why a section cannot run on this machine yet ('' when it can)."""
    if name == "graph":
        from interplab.techniques.graphs import recipe

        if recipe.cached(model, "quick") is None:
            return (
                "the attribution graph needs per-layer transcoders; train the quick set once "
                "with `python -m interplab.techniques.graphs.recipe quick` (tens of minutes on "
                "two cores) and run the demo again"
            )
    if name == "audit":
        from interplab.demo.audit import ORGANISM
        from interplab.techniques.organisms import registry

        if not registry.get(ORGANISM).ready:
            return (
                f"the auditing game needs the Taboo organism {ORGANISM}; train it once with "
                "`make organisms` (about 2 minutes per organism on two quiet cores) and run the demo again"
            )
    return ""


def run_demo(
    out: str | Path = "reports/demo", *, model: Model | None = None, console: Console | None = None
) -> Path:
    """Runs the demo and returns the path of the written ``index.html``."""
    console = console or Console()
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    with _project(out_dir / "project") as project:
        return _run_demo(out_dir, project, model, console)


def _run_demo(out_dir: Path, project: store.Project, model: Model | None, console: Console) -> Path:
    started = time.perf_counter()
    with console.status("loading the embedded model (the first run converts it, ~1 min)"):
        model = model or load()
    console.print(f"[bold]model[/] {model}")
    report = Report(
        title="interplab demo: looking inside SmolLM2-135M-Instruct",
        intro=(
            f"Model <b>{model.info.name}</b> ({model.info.hf_id}, {model.info.n_params:,} parameters, "
            f"weights sha256 {model.info.weights_sha256[:16]}…), {model.info.dtype} on {model.info.device}. "
            "Every number below is computed on this run; per-example values and provenance are in "
            "the JSON files beside this page."
        ),
    )

    project.sprint_start("demo: where does SmolLM2 put the answer?")
    h_late = project.hypothesis(
        "The answer to a factual prompt becomes the lens's top-1 token only in the last third of "
        "the network (layers 20-29)."
    )
    h_ioi = project.hypothesis(
        "On IOI prompts, attention in layer 23 (head L23.attn.z.h3) writes the indirect object's "
        "name directly toward the logits, more than any other component."
    )
    with store.evidence_for(h_late.id), console.status("logit lens on factual prompts"):
        lens = logit_lens(model, PARIS_PROMPTS, target=" Paris")
    lens.to_json(out_dir / "lens.json")
    viz.save(lens, out_dir / "lens.png")
    first = lens.first_layer_top1()
    final_p = lens.at_last(lens.target_prob)[:, -1]
    ls = lens.summary()
    rows = [
        [
            p,
            f"{final_p[i]:.3f}",
            int(lens.at_last(lens.target_rank)[i, -1]),
            "never" if first[i] is None else str(first[i]),
        ]
        for i, p in enumerate(lens.prompts)
    ]
    hit = [f for f in first if f is not None]
    claims = [
        f"' Paris' is the final top-1 prediction on {sum(lens.at_last(lens.target_rank)[:, -1] == 0)} of {lens.n} prompts; "
        f"mean final probability {float(np.asarray(ls.mean)[-1]):.3f} "
        f"(95% CI {float(np.asarray(ls.ci_low)[-1]):.3f} to {float(np.asarray(ls.ci_high)[-1]):.3f}, n={ls.n})."
    ]
    if hit:
        claims.append(
            f"It first becomes the lens's top-1 token at {_earliest(hit)} at the earliest and "
            f"{_latest(hit)} at the latest: the answer is assembled in the last third of the network."
        )
    report.add(
        Section(
            title="1. Logit lens: when does the model know the answer?",
            text=(
                "Each layer's residual stream at each position is decoded with the model's own final norm "
                "and unembedding. The heatmap shows the first prompt; the table shows every prompt, not "
                "a selection."
            ),
            claims=claims,
            caveats=[
                "The logit lens reads early layers through the final decoder, which they were not trained for "
                "(Belrose et al. 2023): late appearance of the answer is evidence about the decoder's basis, "
                "not proof that early layers lack the information. With n="
                f"{ls.n} prompts the CIs are wide; {lens.describe(summary=ls)}"
            ],
            figures=[
                (
                    "logit lens, prompt 1: p(' Paris') by layer and position; text = top-1 token",
                    (out_dir / "lens.png").read_bytes(),
                )
            ],
            tables=[(["prompt", "final p(' Paris')", "final rank", "first layer top-1"], rows)],
            provenance=lens.provenance.to_dict(),
        )
    )

    prompts, io, s = ioi_prompts()
    with (
        store.evidence_for(h_ioi.id),
        console.status(f"direct logit attribution on {len(prompts)} IOI prompts"),
    ):
        dla = direct_logit_attribution(model, prompts, target=io, baseline=s)
    dla.to_json(out_dir / "dla.json")
    viz.save(dla, out_dir / "dla.png")
    summ = dla.summary()
    order = np.argsort(-np.abs(np.asarray(summ.mean)))[:10]
    comp_rows = [
        [
            str(dla.sites[i]),
            float(summ.mean[i]),
            float(summ.ci_low[i]),
            float(summ.ci_high[i]),
            float(summ.p_adjusted[i]),
            "yes" if bool(summ.significant[i]) else "no",
        ]
        for i in order
    ]
    hs = dla.head_summary()
    head_mean = np.asarray(hs.mean)
    top_heads = np.dstack(np.unravel_index(np.argsort(-head_mean.ravel())[:5], head_mean.shape))[0]
    head_rows = [
        [
            str(dla.head_site(int(la), int(h))),
            float(hs.mean[la, h]),
            float(hs.ci_low[la, h]),
            float(hs.ci_high[la, h]),
            "yes" if bool(hs.significant[la, h]) else "no",
        ]
        for la, h in top_heads
    ]
    positive = float((dla.actual > 0).mean())
    report.add(
        Section(
            title="2. Direct logit attribution: who writes the indirect object's name?",
            text=(
                f"{len(prompts)} indirect-object prompts ({len(IOI_TEMPLATES)} templates × {len(IOI_NAMES)} name pairs "
                "× both orders). The direction is logit(indirect object) − logit(subject) at the last token. "
                "The final norm's scale is frozen at its value on each run, so the parts add up to the "
                f"logit difference (largest error {dla.error.max():.1e})."
            ),
            claims=[
                f"The model prefers the indirect object on {positive:.0%} of prompts; mean logit difference "
                f"{dla.actual.mean():.2f} (n={dla.n}).",
                f"Largest direct contributor: {dla.sites[order[0]]} "
                f"({float(summ.mean[order[0]]):+.2f}, 95% CI {float(summ.ci_low[order[0]]):+.2f} to "
                f"{float(summ.ci_high[order[0]]):+.2f}); strongest head {head_rows[0][0]} ({head_rows[0][1]:+.2f}).",
            ],
            caveats=[
                "Direct effects only: a component can matter through later layers without writing to the "
                "logits itself, and templates are few. Causal tests (activation patching) are the next step. "
                + dla.describe(summary=summ)
            ],
            figures=[
                (
                    "direct logit attribution: per-layer attention / MLP (95% CI) and per-head grid",
                    (out_dir / "dla.png").read_bytes(),
                )
            ],
            tables=[
                (["component", "mean", "CI low", "CI high", "p (Holm)", "survives"], comp_rows),
                (["head", "mean", "CI low", "CI high", "survives"], head_rows),
            ],
            provenance=dla.provenance.to_dict(),
        )
    )
    report.add(_patching_section(model, out_dir, console))
    report.add(_path_patching_section(model, out_dir, console))
    report.add(_tracing_section(model, out_dir, console))
    report.add(_probe_section(model, out_dir, console))
    report.add(_steering_section(model, out_dir, console))
    for name in SECTIONS:
        missing = _not_cached(name, model)
        if missing:
            console.print(f"[yellow]{name} section left out: {missing}[/]")
            report.add(Section(title=f"({name}: left out of this run)", text=missing))
            continue
        began = time.perf_counter()
        module = importlib.import_module(f"interplab.demo.{name}")
        report.add(module.section(model, out_dir, console))
        console.print(f"[dim]{name} section: {time.perf_counter() - began:.0f} s[/]")
    _findings(project, lens, dla, h_late.id, h_ioi.id)
    project.sprint_end(
        tried="logit lens, DLA, activation/attribution/path patching, tracing, a probe, steering",
        worked="every section's numbers come with n, a CI and the control that rules out the "
        "commonest misreading",
        differently="patch more templates before generalising beyond one IOI template",
        decision="continue",
    )
    from interplab.report.notebook_page import write_project_report

    # The page is the project's report: findings first (with the runs behind them), the
    # analyses below, then limitations, examples and the commands that re-run every number.
    report.intro += (
        f" Every run is recorded in the research project <code>project/</code> "
        f"({project.count_runs()} runs): the hypotheses were written before the runs that test "
        "them, and <code>interplab rerun</code> repeats any of them."
    )
    path, _ = write_project_report(
        project, out_dir, title=report.title, intro=report.intro, sections=report.sections
    )
    console.print(f"[bold green]wrote[/] {path} ({time.perf_counter() - started:.0f} s)")
    return path


def _patching_section(model: Model, out_dir: Path, console: Console) -> Section:
    from interplab.techniques import (
        activation_patching,
        attribution_patching,
        compare_with_activation_patching,
    )

    pairs = patching_pairs(16)
    with console.status(
        "activation patching: resid_pre by layer × position on IOI and on unrelated control "
        "prompts, heads (16 IOI pairs)"
    ):
        act = activation_patching(model, pairs, components=("resid_pre",), progress=False)
        heads = activation_patching(
            model, pairs, components=("attn.z",), per="all", progress=False, control=False
        )
    with console.status("attribution patching and its comparison with activation patching"):
        attr = attribution_patching(model, pairs, components=("resid_pre",))
        comparison = compare_with_activation_patching(attr, act)
    act.to_json(out_dir / "patching_resid_pre.json")
    heads.to_json(out_dir / "patching_heads.json")
    attr.to_json(out_dir / "attribution_resid_pre.json")
    viz.save(act, out_dir / "patching_resid_pre.png")
    viz.save(heads, out_dir / "patching_heads.png")
    control = act.control_comparison()
    figures = [
        (
            "denoising resid_pre: mean logit-difference effect; hatched cells do not survive Holm",
            (out_dir / "patching_resid_pre.png").read_bytes(),
        ),
        (
            "denoising each head's output (all positions); hatched cells do not survive Holm",
            (out_dir / "patching_heads.png").read_bytes(),
        ),
    ]
    from interplab.viz.patching import control_figure

    for name, fig, caption in (
        (
            "patching_control.png",
            control_figure(act),
            "the same sweep on unrelated news text with the same positions changed, each in units "
            "of its own clean-corrupt gap: what lights up on both is not about IOI",
        ),
        (
            "attribution_vs_patching.png",
            viz.figure(comparison),
            "attribution patching (gradient estimate) against exact activation patching, per cell",
        ),
    ):
        (out_dir / name).write_bytes(viz.png_bytes(fig))
        figures.append((caption, (out_dir / name).read_bytes()))

    def cells(result: Any) -> str:
        return "; ".join(
            f"{c.label} {c.mean:+.2f} (95% CI {c.ci_low:+.2f} to {c.ci_high:+.2f})"
            for c in result.top_cells(k=5)
        )

    examples = act.examples(k=3, n_random=3, n_bins=3)
    return Section(
        title="3. Activation patching: which activations carry the answer?",
        text=(
            "Each cell runs the corrupt prompt (names in the other order) with one activation taken from the clean "
            "prompt and measures the logit difference; effects are per example, summarised with 95% CIs and Holm "
            "correction over all cells. The same sweep runs on unrelated control prompts (news text, the same "
            "positions changed, answers the model's own) so that cells which matter on any input are not read as "
            "IOI findings. Attribution patching estimates the same grid from one forward and one backward pass; "
            "the scatter shows where that linear estimate fails."
        ),
        claims=[
            f"Strongest residual cells: {cells(act)}.",
            f"Strongest heads: {cells(heads)}.",
            control.describe(),
            comparison.describe(),
        ],
        caveats=[
            "Sixteen prompts from one template: the sweep shows where information sits for this template, not a "
            "general IOI circuit. " + act.describe()
        ],
        figures=figures,
        tables=[
            (
                [f"prompts for {examples[0].label}", "effect", "clean prompt"],
                [[e.kind, round(e.effect, 3), e.clean] for e in examples],
            )
        ],
        links=[
            ("resid_pre patching, task and control", "patching_resid_pre.html"),
            ("head patching", "patching_heads.html"),
        ],
        provenance=act.provenance.to_dict(),
    )


# Position sweeps compare position p across prompts, so they use ONE template in ONE name order
# (the indirect object first): every position means the same thing in every prompt. The corrupt
# prompt swaps the names, which flips the correct answer.
PATCHING_TEMPLATE = IOI_TEMPLATES[0]
PATCHING_NAMES = [
    *IOI_NAMES,
    ("Emma", "Paul"),
    ("Lisa", "Mark"),
    ("Kate", "Peter"),
    ("Lucy", "Adam"),
]


def patching_pairs(n: int) -> list[Any]:
    """Returns ``n`` aligned IOI pairs: one template, IO named first, both names single tokens."""
    from interplab.data import ContrastPair

    pairs = []
    for a, b in PATCHING_NAMES:
        for io, s in ((a, b), (b, a)):
            clean = PATCHING_TEMPLATE.format(A=io, B=s, S=s)
            corrupt = PATCHING_TEMPLATE.format(A=s, B=io, S=io)
            pairs.append(ContrastPair(clean, corrupt, " " + io, " " + s, group="t0-ABBA"))
    return pairs[:n]


def _path_patching_section(model: Model, out_dir: Path, console: Console) -> Section:
    from interplab.techniques import path_patching

    pairs = patching_pairs(16)
    with console.status(
        "path patching: every head -> logits, every MLP -> L23.h3's keys and values"
    ):
        heads = path_patching(model, pairs, progress=False)
        top = heads.top_cells(k=1)[0].site  # e.g. L23.attn.z.h3
        kv = [Site(top.layer, "attn.k", top.head), Site(top.layer, "attn.v", top.head)]
        receiver = str(top)
        mlps = path_patching(model, pairs, senders="mlps", receivers=kv, progress=False)
    heads.to_json(out_dir / "path_heads_to_logits.json")
    mlps.to_json(out_dir / "path_mlps_to_kv.json")
    viz.save(heads, out_dir / "path_heads_to_logits.png")
    viz.save(mlps, out_dir / "path_mlps_to_kv.png")

    def cells(result: Any, k: int) -> str:
        return "; ".join(
            f"{c.label} {c.mean:+.2f} (95% CI {c.ci_low:+.2f} to {c.ci_high:+.2f})"
            for c in result.top_cells(k=k)
        )

    return Section(
        title="4. Path patching: which heads write the answer, and what feeds them?",
        text=(
            "The IOI paper's method (Wang et al. 2022): run the clean prompt with one sender's output taken from "
            "the corrupt prompt and every other head frozen at its clean output (MLPs recomputed), so the effect "
            "reaches the receiver only along paths that end there. First every head to the logits; then every "
            f"MLP to the keys and values of the strongest head, {receiver}."
        ),
        claims=[
            f"Heads to logits (clean logit difference {heads.clean.mean():+.2f}): {cells(heads, 4)}.",
            f"MLPs to {receiver}'s keys and values: {cells(mlps, 3)}.",
        ],
        caveats=[
            "Sixteen prompts from one template. A path effect is a causal effect of this corruption (swapping "
            "the names) along this path, not the head's whole role. " + heads.describe()
        ],
        figures=[
            (
                "path patching, each head to the logits (noising); hatched cells do not survive Holm",
                (out_dir / "path_heads_to_logits.png").read_bytes(),
            ),
            (
                f"path patching, each MLP to {receiver}'s keys and values",
                (out_dir / "path_mlps_to_kv.png").read_bytes(),
            ),
        ],
        links=[
            ("heads to logits", "path_heads_to_logits.html"),
            (f"MLPs to {receiver} k/v", "path_mlps_to_kv.html"),
        ],
        provenance=heads.provenance.to_dict(),
    )


def _tracing_section(model: Model, out_dir: Path, console: Console) -> Section:
    from interplab.data import factual_pairs
    from interplab.techniques import causal_tracing

    ds = factual_pairs(model.tokenizer, templates=("The capital of {country} is",))
    lengths = [len(model.tokenize(p.clean).ids[0]) for p in ds]
    common = max(set(lengths), key=lengths.count)
    keep = [i for i, n in enumerate(lengths) if n == common][:12]
    with console.status(
        f"causal tracing on {len(keep)} capital-city prompts (5 noise samples each)"
    ):
        trace = causal_tracing(model, ds.subset(keep), samples=5, progress=False)
    trace.to_json(out_dir / "tracing.json")
    viz.save(trace, out_dir / "tracing.png")
    tops = {c: trace.top_cells(c, 2) for c in ("resid", "attn", "mlp")}
    return Section(
        title="5. Causal tracing: where is the fact recalled?",
        text=(
            "ROME's causal tracing (Meng et al. 2022): Gaussian noise of 3 × the embedding standard deviation "
            f"(σ = {trace.sigma:.4f}) on the country's tokens wipes out the answer; then one clean hidden state "
            "(the residual stream, or attention / MLP outputs over a window of 10 layers) is restored at one "
            "layer and position, and the recovered probability of the capital is measured."
        ),
        claims=[
            f"p(answer) falls from {trace.clean.mean():.3f} (clean) to {trace.corrupted.mean():.4f} "
            f"(corrupted), n={trace.n} prompts × 5 noise samples.",
            *[
                f"Strongest {c} cells: "
                + "; ".join(
                    f"{r.label} {r.mean:+.3f} (95% CI {r.ci_low:+.3f} to {r.ci_high:+.3f})"
                    for r in rows
                )
                + "."
                for c, rows in tops.items()
            ],
        ],
        caveats=[
            "Twelve prompts of one template: the minimum for a cell to survive Holm over these cells. "
            "Restoring an early MLP window at the subject restores everything because the window includes "
            "layer 0's MLP, which acts as part of the embedding. " + trace.describe("resid")
        ],
        figures=[
            (
                "causal tracing: restored p(answer) by layer and position for resid, attn and mlp",
                (out_dir / "tracing.png").read_bytes(),
            )
        ],
        links=[("causal tracing", "tracing.html")],
        provenance=trace.provenance.to_dict(),
    )


def _probe_section(model: Model, out_dir: Path, console: Console) -> Section:
    from interplab.data import truth_dataset
    from interplab.techniques import linear_probe, subsample

    full = truth_dataset(seed=0)
    # The first two phrasings for every country, then 240 statements in whole country groups.
    data = subsample(full.subset(range(len(full) // 2)), 240, seed=0)
    with console.status(f"truth probe at every layer ({data.name}, n={len(data.texts)})"):
        probe = linear_probe(model, data, seed=0)
    probe.to_json(out_dir / "probe_truth.json")
    viz.save(probe, out_dir / "probe_truth.png")
    best = probe.best_layer
    at = probe.at(best)
    return Section(
        title="6. A truth probe, with its control task",
        text=(
            "Logistic-regression probes on the last token's residual stream, 5-fold cross-validated with the same "
            "country never in both train and test. The control task trains the same probes on shuffled labels; "
            "selectivity (accuracy − control) is what the representation adds beyond the probe's own capacity."
        ),
        claims=[probe.describe()],
        caveats=[
            f"Best layer chosen after looking at all {len(probe.layers)} layers: layer {best}'s accuracy "
            f"{at.accuracy:.3f} is optimistic by selection; the Holm-corrected summary covers that."
        ],
        figures=[
            (
                "truth-probe accuracy by layer with 95% CI, beside the shuffled-label control",
                (out_dir / "probe_truth.png").read_bytes(),
            )
        ],
        provenance=probe.provenance.to_dict(),
    )


def _steering_section(model: Model, out_dir: Path, console: Console) -> Section:
    from interplab.data.sentiment_prompts import NEUTRAL_PROMPTS
    from interplab.techniques import happiness_vector, steer

    with console.status(
        "happiness steering: vector from 32 happy − 32 sad prompts, coefficient sweep"
    ):
        vector = happiness_vector(model, layers=6)
        result = steer(
            model,
            list(NEUTRAL_PROMPTS[:8]),
            vector,
            coefficients=(0.0, 4.0, 8.0),
            n_random=2,
            max_new_tokens=16,
        )
    result.to_json(out_dir / "steering_happiness.json")
    viz.save(result, out_dir / "steering_happiness.png")
    s = result.summaries()
    rows = []
    for j, c in enumerate(result.coefficients):
        rows.append(
            [
                c,
                f"{s['steered score'].mean[j]:+.2f} ({s['steered score'].ci_low[j]:+.2f}, {s['steered score'].ci_high[j]:+.2f})",
                f"{s['random score'].mean[j]:+.2f} ({s['random score'].ci_low[j]:+.2f}, {s['random score'].ci_high[j]:+.2f})",
                float(np.median(result.steered_perplexity[:, j])),
                result.steered_texts[0][j],
            ]
        )
    return Section(
        title="7. Steering: a happiness vector, against random vectors of the same norm",
        text=(
            "Contrastive activation addition at layer 6: the mean residual of 32 happy minus 32 sad sentences, added "
            "at every token while the model continues 8 neutral openings. The score is the unsteered model's log-odds "
            "of happy over sad mood words after the text; perplexity under the unsteered model shows when steering "
            "breaks fluency. Random vectors of the same norm and an instruction prompt are the baselines."
        ),
        claims=[
            f"no steering: {s['none score'].mean[0]:+.2f}; prompt baseline: {s['prompt score'].mean[0]:+.2f} "
            f"(n={s['steered score'].n} prompts)."
        ],
        caveats=[
            "The mood judge is the model itself reading the text, a proxy with its own biases; eight prompts give "
            "wide intervals. Read the texts, not only the scores."
        ],
        figures=[
            (
                "happiness score and perplexity vs coefficient, steered vs norm-matched random (95% CI)",
                (out_dir / "steering_happiness.png").read_bytes(),
            )
        ],
        tables=[
            (
                [
                    "coefficient",
                    "steered score (95% CI)",
                    "random score (95% CI)",
                    "median perplexity",
                    "example text",
                ],
                rows,
            )
        ],
        provenance=result.provenance.to_dict(),
    )


__all__ = [
    "IOI_NAMES",
    "IOI_TEMPLATES",
    "PARIS_PROMPTS",
    "ioi_prompts",
    "run_demo",
]
