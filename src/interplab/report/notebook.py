"""The write-up of a project: findings first, each with its evidence, then what could be wrong.

`build` reads the store (never torch) and returns a `Notebook`, which `notebook_page` renders as
one self-contained HTML page and a Markdown file:

1. Findings, in the order they were written: the claim, confidence, what would change my mind,
   and for each evidence run its figures (drawn from the stored result JSON by
   `interplab.viz`, or the figure files the run stored; when neither exists the page says so),
   captioned with what the figure shows, the run, its strongest cell named by Site, position
   and token (`notebook_cells`), its mean, CI and n; a statistics row (n, that cell's mean and
   CI, adjusted p-values within the run and the family), whether it was pre-registered or post
   hoc for each hypothesis it is linked to, and the number of tests the finding's p-values
   were corrected over (its family, `store.family`).
2. Limitations: the user's own (``interplab log --limitation``), then those the store can see:
   post hoc or unlinked evidence, cells that do not survive the family correction, design
   notes of the summaries, runs from uncommitted code, failed and interrupted runs, a broken
   hypothesis chain.
3. Hypotheses, sprints with their post-mortems and counts, and highlights.
4. Appendix: examples drawn at random (seeded) from each evidence run's stored examples or
   inputs, not chosen by hand.
5. Reproducibility: per evidence run the ``interplab rerun`` command (or why it cannot be
   re-run), the function it calls again, the recorded command, model and weights sha256, data
   sha256, git commit, library versions and the artifacts' sha256.

Extra sections (`interplab.report.html.Section`, e.g. the demo's worked analyses) can be
passed to `build`; they follow the findings.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from interplab.errors import UserError
from interplab.report.html import Section
from interplab.report.notebook_cells import cell_label, describe
from interplab.store import FamilyCorrection, Finding, Hypothesis, Link, Note, Project, RunRecord
from interplab.store import rerun as reruns
from interplab.store.findings import SprintStats
from interplab.store.summaries import Headline, headline, summary_from_dict

EXAMPLES_PER_RUN = 5
_IMAGE_TYPES = {".png": "image/png", ".svg": "image/svg+xml", ".jpg": "image/jpeg"}


@dataclass(frozen=True)
class FigureBlock:
    """One figure of a run: the image bytes and type, or why there is none, and its caption."""

    caption: str
    data: bytes | None
    mime: str
    missing: str | None = None


@dataclass(frozen=True)
class Evidence:
    """One evidence run as the report shows it."""

    run: RunRecord
    figures: tuple[FigureBlock, ...]
    headline: Headline | None
    cell: str  # the headline cell named by Site (and position, token), or "scalar"
    text: str  # the summary's sentences, or why there is no summary
    links: tuple[Link, ...]
    p_family: float | None
    significant_family: int | None


@dataclass(frozen=True)
class Claim:
    """A finding with its evidence and the family its tests were corrected over."""

    finding: Finding
    evidence: tuple[Evidence, ...]
    correction: FamilyCorrection


@dataclass(frozen=True)
class Examples:
    """Examples drawn at random from one run's data."""

    run_id: int
    source: str
    total: int
    seed: int
    items: tuple[str, ...]


@dataclass(frozen=True)
class Repro:
    """What a reader needs to repeat one evidence run."""

    run: int
    rerun: str  # the command, or "cannot be re-run: why"
    calls: str  # the function the re-run calls again ('' when none)
    command: str
    model: str
    data: str
    seed: str
    git: str
    versions: str
    artifacts: tuple[tuple[str, str], ...]  # (name, sha256)


@dataclass(frozen=True)
class Notebook:
    """Everything the report shows, read from one project."""

    title: str
    root: Path
    created: float
    claims: tuple[Claim, ...]
    limitations: tuple[str, ...]
    hypotheses: tuple[tuple[Hypothesis, int, int], ...]  # with pre-registered, post hoc links
    sprints: tuple[SprintStats, ...]
    highlights: tuple[Note, ...]
    examples: tuple[Examples, ...]
    n_runs: int
    schema_version: int
    repro: tuple[Repro, ...] = ()
    intro: str = ""
    sections: tuple[Section, ...] = ()


def _load(project: Project, run: RunRecord) -> Any:
    """Returns the run's stored result read back into its class, or None."""
    from interplab.results import ResultError, load

    art = run.artifact("result")
    if art is None:
        return None
    try:
        return load(project.artifact_path(art.sha256))
    except ResultError:
        return None  # a result type this process does not know: figures say so


def _caption(run: RunRecord, what: str, head: Headline | None, cell: str) -> str:
    model = f" on {run.model_name}" if run.model_name else ""
    text = f"{what}. Run {run.id}: {run.technique}{model}"
    if head is not None:
        text += (
            f"; strongest: {cell}, mean {head.mean:.3g} ({head.confidence:.0%} CI "
            f"[{head.ci_low:.3g}, {head.ci_high:.3g}], n={head.n})"
        )
    return text


def _figures(
    project: Project, run: RunRecord, result: Any, head: Headline | None, cell: str
) -> tuple[FigureBlock, ...]:
    out: list[FigureBlock] = []
    art = run.artifact("result")
    if art is not None:
        from interplab import viz
        from interplab.viz.render import renderer

        try:
            if result is None:
                raise UserError(f"its result type {run.technique!r} is not known here")
            title = renderer(result).title
            what = title(result) if title is not None else run.technique.replace("_", " ")
            caption = _caption(run, what, head, cell)
            fig = viz.figure(result)
            source = f" (drawn by interplab.viz from its stored result, sha256 {art.sha256[:12]})"
            out.append(FigureBlock(caption + source, viz.png_bytes(fig), "image/png"))
        except UserError as e:
            caption = _caption(run, run.technique.replace("_", " "), head, cell)
            out.append(FigureBlock(caption, None, "", f"no figure drawn: {e}"))
    for a in run.artifacts:
        suffix = Path(a.name).suffix.lower()
        if a.kind == "figure" and suffix in _IMAGE_TYPES:
            data = project.artifact_path(a.sha256).read_bytes()
            caption = _caption(run, a.name, head, cell) + " (a figure the run stored)"
            out.append(FigureBlock(caption, data, _IMAGE_TYPES[suffix]))
    if not out:
        caption = _caption(run, run.technique.replace("_", " "), head, cell)
        out.append(
            FigureBlock(caption, None, "", "no figure: the run stored no result and no figure")
        )
    return tuple(out)


def _evidence(project: Project, run_id: int, correction: FamilyCorrection) -> Evidence:
    summary = project.summary(run_id)  # computed and kept on first use
    run = project.run(run_id)
    result = _load(project, run)
    if summary is not None:
        head = headline(summary)
        cell = cell_label(result, head.cell)
        text = describe(summary_from_dict(summary), result)
    else:
        head, cell = None, "–"
        text = f"no summary: {run.summary_error or 'the run stored no result'}"
    tests = correction.for_run(run_id)
    return Evidence(
        run=run,
        figures=_figures(project, run, result, head, cell),
        headline=head,
        cell=cell,
        text=text,
        links=tuple(project.links(run=run_id)),
        p_family=None if tests is None else tests.smallest_p_family,
        significant_family=None if tests is None else tests.significant_family,
    )


_PER_EXAMPLE = ("clean_prompts", "prompts", "texts", "tokens")
"""Result fields that hold one entry per example, in the order the appendix prefers them."""


def _items(value: Any) -> list[str] | None:
    """Returns one readable line per example of a stored list, or None if it is not one."""
    if not isinstance(value, list) or not value:
        return None
    if all(isinstance(x, str) for x in value):
        return value
    if all(isinstance(x, dict) and {"clean", "corrupt"} <= set(x) for x in value):
        return [  # contrast pairs, as `ContrastPair` stores them
            f"{x['clean']!r} -> {x.get('answer')!r}; corrupt {x['corrupt']!r} -> "
            f"{x.get('wrong_answer')!r}"
            for x in value
        ]
    if all(isinstance(x, list) and all(isinstance(t, str) for t in x) for x in value):
        return ["".join(x) for x in value]  # tokens of each example
    return None


def _examples(project: Project, run: RunRecord, seed: int) -> Examples | None:
    stored = project.stored_json(run.id, "examples")
    if (items := _items(stored)) is not None:
        return _draw(run.id, "the examples it stored", items, seed)
    inputs = project.stored_json(run.id, "inputs")
    if (items := _items(inputs)) is not None:
        return _draw(run.id, "its inputs", items, seed)
    result = project.stored_json(run.id, "result")
    if isinstance(result, dict):
        for key in _PER_EXAMPLE:
            if (items := _items(result.get(key))) is not None:
                return _draw(run.id, f"the {key.replace('_', ' ')} of its result", items, seed)
    if isinstance(inputs, dict):  # a dataset stored field by field
        for key, value in inputs.items():
            if (items := _items(value)) is not None:
                return _draw(run.id, f"the {key} of its inputs", items, seed)
    return None


def _draw(run_id: int, source: str, items: list[str], seed: int) -> Examples:
    rng = random.Random(seed * 1_000_003 + run_id)
    k = min(EXAMPLES_PER_RUN, len(items))
    picked = sorted(rng.sample(range(len(items)), k))
    return Examples(run_id, source, len(items), seed, tuple(items[i] for i in picked))


def _limitations(project: Project, claims: list[Claim]) -> list[str]:
    out = [n.text for n in project.notes(kind="limitation")]
    for c in claims:
        f = c.finding
        for e in c.evidence:
            if not e.links:
                out.append(
                    f"F{f.id}: run {e.run.id} is linked to no hypothesis: exploratory evidence."
                )
            elif not any(link.preregistered for link in e.links):
                out.append(
                    f"F{f.id}: run {e.run.id} is post hoc: every hypothesis it supports was written after it ran."
                )
            if e.headline is not None and e.significant_family == 0:
                out.append(
                    f"F{f.id}: no cell of run {e.run.id} survives correction over the family "
                    f"({c.correction.n_tests} tests)."
                )
            if e.run.git_dirty:
                out.append(
                    f"F{f.id}: run {e.run.id} ran from uncommitted code (git work tree dirty)."
                )
            if e.run.status != "done":
                out.append(f"F{f.id}: run {e.run.id} did not finish ({e.run.status}).")
            summary = project.summary(e.run.id) or {}
            out.extend(f"F{f.id}, run {e.run.id}: {note}" for note in summary.get("notes") or ())
    bad = [r for r in project.runs() if r.status in ("failed", "interrupted")]
    if bad:
        out.append(
            f"{len(bad)} run(s) failed or were interrupted and are not evidence: "
            + ", ".join(str(r.id) for r in bad[:20])
            + (" ..." if len(bad) > 20 else "")
        )
    out.extend(f"Hypothesis chain: {p}" for p in project.verify())
    return list(dict.fromkeys(out))


def build(
    project: Project,
    *,
    title: str | None = None,
    seed: int = 0,
    intro: str = "",
    sections: Sequence[Section] = (),
) -> Notebook:
    """Returns the report's content read from ``project`` (figures drawn, summaries computed);
    ``intro`` (HTML) opens the page and ``sections`` follow the findings."""
    from interplab.store.schema import SCHEMA_VERSION

    project.mark_stale()
    claims = []
    for f in project.findings():
        correction = project.correct(f.id)
        evidence = tuple(_evidence(project, r, correction) for r in f.evidence)
        claims.append(Claim(f, evidence, correction))
    links = project.links()
    hyps = tuple(
        (
            h,
            sum(lk.preregistered for lk in links if lk.hypothesis_id == h.id),
            sum(not lk.preregistered for lk in links if lk.hypothesis_id == h.id),
        )
        for h in project.hypotheses()
    )
    runs = {r: project.run(r) for c in claims for r in c.finding.evidence}
    examples = tuple(e for e in (_examples(project, r, seed) for r in runs.values()) if e)
    repro = tuple(_repro(project, r, project.root) for r in runs.values())
    limitations = _limitations(project, claims)
    limitations += [f"Run {r.run} {r.rerun}." for r in repro if r.rerun.startswith("cannot")]
    return Notebook(
        title=title or f"Research notebook: {project.root.name}",
        root=project.root,
        created=time.time(),
        claims=tuple(claims),
        limitations=tuple(limitations),
        hypotheses=hyps,
        sprints=tuple(project.sprint_stats(s.id, compute=False) for s in project.sprints()),
        highlights=tuple(project.notes(kind="highlight")),
        examples=examples,
        n_runs=project.count_runs(),
        schema_version=SCHEMA_VERSION,
        repro=repro,
        intro=intro,
        sections=tuple(sections),
    )


def evidence_runs(nb: Notebook) -> list[RunRecord]:
    """Returns each evidence run once, in the order the findings cite them."""
    seen: dict[int, RunRecord] = {}
    for c in nb.claims:
        for e in c.evidence:
            seen.setdefault(e.run.id, e.run)
    return list(seen.values())


def describe_links(links: tuple[Link, ...]) -> str:
    """Returns 'pre-registered (H1), post hoc (H2)' or 'not linked to a hypothesis'."""
    if not links:
        return "not linked to a hypothesis (exploratory)"
    return ", ".join(
        f"{'pre-registered' if lk.preregistered else 'post hoc'} (H{lk.hypothesis_id})"
        for lk in links
    )


def _rerun_line(project: Project, run: RunRecord, root: Path) -> tuple[str, str]:
    """Returns the command that re-runs ``run`` (or why none can) and what it calls."""
    command = f"interplab rerun {run.id} --project {root}"
    if run.technique in reruns.registered():
        return command, f"the function registered for {run.technique}"
    call = project.stored_call(run.id)
    if call is None:
        return "cannot be re-run: it stored no call and nothing is registered for it", ""
    if call.not_stored:
        return f"cannot be re-run: {call.not_stored}", call.function
    module = call.function.partition(":")[0]
    if module.split(".")[0] != "interplab":
        command += f" --import {module}"
    return command, call.function


def _repro(project: Project, run: RunRecord, root: Path) -> Repro:
    command, calls = _rerun_line(project, run, root)
    git = (
        "not in a git repository"
        if run.git_commit is None
        else f"{run.git_commit}{' (dirty work tree)' if run.git_dirty else ''}"
    )
    return Repro(
        run=run.id,
        rerun=command,
        calls=calls,
        command=run.command or "",
        model=f"{run.model_name or '?'} (weights sha256 {run.model_sha256 or 'not recorded'})",
        data=run.data_sha256 or "not recorded",
        seed="not recorded" if run.seed is None else str(run.seed),
        git=git,
        versions=", ".join(f"{k} {v}" for k, v in sorted(run.versions.items())),
        artifacts=tuple((a.name, a.sha256) for a in run.artifacts),
    )


__all__ = [
    "Claim",
    "Evidence",
    "Examples",
    "FigureBlock",
    "Notebook",
    "Repro",
    "build",
    "describe_links",
    "evidence_runs",
]
