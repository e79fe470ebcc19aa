"""CLI commands of the research log: ``log``, ``hypothesis``, ``finding``, ``sprint``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from interplab.commands._options import console

if TYPE_CHECKING:
    from interplab.store import Project

ProjectOpt = Annotated[
    Path | None,
    typer.Option(
        "--project",
        help="project folder (default: $INTERPLAB_PROJECT, the enclosing project, or the "
        "per-user default)",
    ),
]


def open_project(project: Path | None) -> Project:
    """Returns the chosen project, opened."""
    from interplab.store import Project

    return Project.open(project)


def _id(text: str, letter: str, what: str) -> int:
    from interplab.store import StoreError

    raw = text.strip()
    if raw[:1].upper() == letter:
        raw = raw[1:]
    if not raw.isdigit():
        raise StoreError(f"{text!r} is not a {what} id ({letter}3 or 3)")
    return int(raw)


def run_id(text: str) -> int:
    """Returns the run id in ``12`` or ``r12``."""
    from interplab.store import StoreError

    raw = text.strip().lstrip("rR#")
    if not raw.isdigit():
        raise StoreError(f"{text!r} is not a run id (a number, as `interplab runs` lists)")
    return int(raw)


def hypothesis_id(text: str) -> int:
    """Returns the hypothesis id in ``H3`` or ``3``."""
    return _id(text, "H", "hypothesis")


def _answer(value: str | None, question: str) -> str:
    """Returns ``value``, or asks ``question`` on a terminal; '' when neither."""
    if value is not None:
        return value
    if sys.stdin.isatty():
        return typer.prompt(question)
    return ""


def register(app: typer.Typer) -> None:
    """Adds ``log``, ``hypothesis``, ``finding`` and ``sprint`` to ``app``."""

    @app.command()
    def log(
        text: Annotated[str | None, typer.Argument(help="a note; without it, show the log")] = None,
        limitation: Annotated[bool, typer.Option(help="a limitation the report lists")] = False,
        star: Annotated[str | None, typer.Option(help="highlight this run with the text")] = None,
        artifact: Annotated[
            str | None, typer.Option(help="with --star: the artifact (name or sha256)")
        ] = None,
        limit: Annotated[int, typer.Option(help="entries shown; 0 for all")] = 40,
        project: ProjectOpt = None,
    ) -> None:
        """Write a timestamped note (or a limitation, or star a run); without text, show the
        log: notes, hypotheses, findings, sprints and runs in time order."""
        from interplab.store.records import iso

        p = open_project(project)
        if text is not None:
            if star is not None:
                n = p.highlight(run_id(star), text, artifact=artifact)
            else:
                n = p.note(text, kind="limitation" if limitation else "note")
            console.print(f"N{n.id} {n.kind} at {iso(n.created)}")
            return
        entries: list[tuple[float, str, str]] = []
        for n in p.notes():
            what = n.kind + (f" on run {n.run_id}" if n.run_id else "")
            entries.append((n.created, f"N{n.id} {what}", n.text))
        for h in p.hypotheses():
            entries.append((h.created, f"H{h.id} hypothesis", f"{h.text} [{h.status}]"))
        for f in p.findings():
            entries.append((f.created, f"F{f.id} finding", f"{f.claim} ({f.confidence:.0%})"))
        for s in p.sprints():
            entries.append((s.started, f"S{s.id} sprint start", f"{s.name}: {s.goal}"))
            if s.ended is not None:
                entries.append((s.ended, f"S{s.id} sprint end", f"decision: {s.decision}"))
        for r in p.runs(limit=limit or None):
            entries.append((r.started, f"run {r.id}", f"{r.technique} ({r.status})"))
        entries.sort()
        table = Table(title=f"log of {p.root}")
        for col in ("time", "entry", "text"):
            table.add_column(col)
        for t, entry, body in entries[-limit:] if limit else entries:
            table.add_row(iso(t), entry, body)
        console.print(table)

    hyp = typer.Typer(help="Hypotheses, written before the evidence.", no_args_is_help=True)
    app.add_typer(hyp, name="hypothesis")

    @hyp.command("add")
    def hyp_add(
        text: Annotated[str, typer.Argument(help="the hypothesis")], project: ProjectOpt = None
    ) -> None:
        """Write down a hypothesis now (hashed with its time, chained to the one before)."""
        from interplab.store.records import iso

        h = open_project(project).hypothesis(text)
        console.print(f"H{h.id} written {iso(h.created)}; sha256 {h.sha256}")

    @hyp.command("list")
    def hyp_list(project: ProjectOpt = None) -> None:
        """List hypotheses with their status and pre-registered / post hoc evidence."""
        from interplab.store.records import iso

        p = open_project(project)
        links = p.links()
        table = Table(title="hypotheses")
        for col in ("id", "written", "status", "pre-reg.", "post hoc", "hypothesis"):
            table.add_column(col)
        for h in p.hypotheses():
            pre = sum(lk.preregistered for lk in links if lk.hypothesis_id == h.id)
            post = sum(not lk.preregistered for lk in links if lk.hypothesis_id == h.id)
            table.add_row(f"H{h.id}", iso(h.created), h.status, str(pre), str(post), h.text)
        console.print(table)

    @hyp.command("link")
    def hyp_link(
        hypothesis: Annotated[str, typer.Argument(help="H3")],
        runs: Annotated[list[str], typer.Argument(help="run ids")],
        project: ProjectOpt = None,
    ) -> None:
        """Count runs as evidence on a hypothesis (marked pre-registered or post hoc by time)."""
        p = open_project(project)
        for r in runs:
            link = p.link(hypothesis_id(hypothesis), run_id(r))
            mark = "pre-registered" if link.preregistered else "post hoc (the hypothesis is newer)"
            console.print(f"run {link.run_id} -> H{link.hypothesis_id}: {mark}")

    @hyp.command("status")
    def hyp_status(
        hypothesis: Annotated[str, typer.Argument(help="H3")],
        status: Annotated[str, typer.Argument(help="open, supported, refuted or abandoned")],
        note: Annotated[str, typer.Option(help="why")] = "",
        project: ProjectOpt = None,
    ) -> None:
        """Mark a hypothesis supported, refuted, abandoned (or open again)."""
        h = open_project(project).set_status(hypothesis_id(hypothesis), status, note)  # type: ignore[arg-type]
        console.print(f"H{h.id}: {h.status}")

    @hyp.command("verify")
    def hyp_verify(project: ProjectOpt = None) -> None:
        """Check the hypotheses' hash chain (no text or time edited since it was written)."""
        problems = open_project(project).verify()
        for line in problems:
            console.print(line)
        if problems:
            raise typer.Exit(1)
        console.print("hypothesis chain intact")

    fnd = typer.Typer(help="Findings: claims with evidence runs.", no_args_is_help=True)
    app.add_typer(fnd, name="finding")

    @fnd.command("add")
    def fnd_add(
        claim: Annotated[str, typer.Argument(help="what I believe is true")],
        run: Annotated[list[str], typer.Option("--run", help="an evidence run (repeatable)")],
        confidence: Annotated[float, typer.Option(help="probability it is true, 0 to 1")],
        change_my_mind: Annotated[str, typer.Option(help="what result would change my mind")],
        family: Annotated[
            str | None, typer.Option(help="correct over: H3, S2, runs:1,2, technique:NAME, all")
        ] = None,
        correction: Annotated[str, typer.Option(help="holm or bh")] = "holm",
        project: ProjectOpt = None,
    ) -> None:
        """Record a finding with its evidence runs, confidence and what would change my mind."""
        f = open_project(project).finding(
            claim,
            evidence=[run_id(r) for r in run],
            confidence=confidence,
            change_my_mind=change_my_mind,
            family=family,
            correction=correction,  # type: ignore[arg-type]
        )
        console.print(f"F{f.id} recorded with evidence runs {', '.join(map(str, f.evidence))}")

    @fnd.command("list")
    def fnd_list(project: ProjectOpt = None) -> None:
        """List findings."""
        table = Table(title="findings")
        for col in ("id", "confidence", "evidence", "family", "claim"):
            table.add_column(col)
        for f in open_project(project).findings():
            table.add_row(
                f"F{f.id}",
                f"{f.confidence:.0%}",
                ", ".join(map(str, f.evidence)),
                f.family or "its runs",
                f.claim,
            )
        console.print(table)

    @fnd.command("show")
    def fnd_show(
        finding: Annotated[str, typer.Argument(help="F2")],
        alpha: Annotated[float, typer.Option(help="family-wise level")] = 0.05,
        project: ProjectOpt = None,
    ) -> None:
        """Show a finding and its evidence corrected over its family (how many tests stand
        behind it)."""
        p = open_project(project)
        f = p.get_finding(_id(finding, "F", "finding"))
        c = p.correct(f.id, alpha=alpha)
        console.print(
            f"F{f.id}. {f.claim}\nconfidence {f.confidence:.0%}; would change my mind: {f.change_my_mind}"
        )
        console.print(c.describe())
        table = Table()
        for col in ("run", "cells", "smallest p", "within run", "in family", "survive"):
            table.add_column(col)
        for r in c.runs:
            table.add_row(
                str(r.run_id),
                str(r.n_cells),
                f"{r.smallest_p:.2g}",
                f"{r.smallest_p_within_run:.2g}",
                f"{r.smallest_p_family:.2g}",
                str(r.significant_family),
            )
        console.print(table)

    @fnd.command("evidence")
    def fnd_evidence(
        finding: Annotated[str, typer.Argument(help="F2")],
        runs: Annotated[list[str], typer.Argument(help="run ids to add")],
        project: ProjectOpt = None,
    ) -> None:
        """Add evidence runs to a finding."""
        f = open_project(project).add_evidence(
            _id(finding, "F", "finding"), [run_id(r) for r in runs]
        )
        console.print(f"F{f.id} evidence: {', '.join(map(str, f.evidence))}")

    spr = typer.Typer(help="Sprints and their post-mortems.", no_args_is_help=True)
    app.add_typer(spr, name="sprint")

    @spr.command("start")
    def spr_start(
        name: Annotated[str, typer.Argument(help="the sprint's name")],
        goal: Annotated[str, typer.Option(help="what this sprint should find out")] = "",
        project: ProjectOpt = None,
    ) -> None:
        """Open a sprint: runs, notes, hypotheses and findings from now on belong to it."""
        s = open_project(project).sprint_start(name, goal)
        console.print(f"S{s.id} {s.name} started")

    @spr.command("end")
    def spr_end(
        tried: Annotated[str | None, typer.Option(help="What did I try?")] = None,
        worked: Annotated[str | None, typer.Option(help="What worked?")] = None,
        differently: Annotated[
            str | None, typer.Option(help="What would I do differently?")
        ] = None,
        decision: Annotated[str | None, typer.Option(help="continue or pivot")] = None,
        project: ProjectOpt = None,
    ) -> None:
        """Close the open sprint with its post-mortem (asked on a terminal when not given)."""
        from interplab.store.findings import POSTMORTEM

        given = {"tried": tried, "worked": worked, "differently": differently, "decision": decision}
        answers = {key: _answer(given[key], question) for key, question in POSTMORTEM}
        p = open_project(project)
        s = p.sprint_end(
            tried=answers["tried"],
            worked=answers["worked"],
            differently=answers["differently"],
            decision=answers["decision"].strip().lower(),  # type: ignore[arg-type]
        )
        stats = p.sprint_stats(s.id)
        console.print(
            f"S{s.id} {s.name} ended: {s.decision}. {stats.runs} runs, {stats.hypotheses} "
            f"hypotheses, {stats.cells_tested} cells tested, {stats.findings} findings."
        )

    @spr.command("list")
    def spr_list(project: ProjectOpt = None) -> None:
        """List sprints."""
        from interplab.store.records import iso

        table = Table(title="sprints")
        for col in ("id", "name", "started", "ended", "decision", "goal"):
            table.add_column(col)
        for s in open_project(project).sprints():
            table.add_row(
                f"S{s.id}", s.name, iso(s.started), iso(s.ended), s.decision or "", s.goal
            )
        console.print(table)

    @spr.command("show")
    def spr_show(
        sprint: Annotated[
            str | None, typer.Argument(help="S2 (default: the open or latest)")
        ] = None,
        project: ProjectOpt = None,
    ) -> None:
        """Show a sprint: what it tested (hypotheses, runs, cells) and its post-mortem."""
        from interplab.store.findings import POSTMORTEM

        p = open_project(project)
        stats = p.sprint_stats(None if sprint is None else _id(sprint, "S", "sprint"))
        s = stats.sprint
        console.print(f"S{s.id} {s.name}: {s.goal}")
        console.print(
            f"{stats.runs} runs ({stats.runs_done} done, {stats.runs_failed} failed, "
            f"{stats.runs_interrupted} interrupted); {stats.hypotheses} hypotheses; "
            f"{stats.preregistered_links} pre-registered and {stats.post_hoc_links} post hoc "
            f"links; {stats.cells_tested} cells tested; {stats.findings} findings; "
            f"{stats.notes} notes"
        )
        for key, question in POSTMORTEM:
            console.print(f"{question} {getattr(s, key) or '(open)'}")


__all__ = ["ProjectOpt", "hypothesis_id", "open_project", "register", "run_id"]
