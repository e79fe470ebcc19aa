"""CLI commands of the research notebook: ``init``, ``runs``, ``rerun``, ``report``, ``export``,
and (from `store_log`) ``log``, ``hypothesis``, ``finding``, ``sprint``."""

from __future__ import annotations

import importlib
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from interplab.commands._options import console, err
from interplab.commands.store_log import ProjectOpt, hypothesis_id, open_project, run_id

if TYPE_CHECKING:
    from interplab.store import Project, RunRecord
    from interplab.store.summaries import Headline


def _short(value: object, width: int = 60) -> str:
    s = json.dumps(value, sort_keys=True) if isinstance(value, dict | list) else str(value)
    return s if len(s) <= width else s[: width - 1] + "…"


def _headline(h: Headline | None) -> str:
    if h is None:
        return ""
    return f"{h.mean:.3g} [{h.ci_low:.3g}, {h.ci_high:.3g}] n={h.n}, {h.n_tests} tests"


def _rerunnable(p: Project, r: RunRecord) -> str:
    """Returns whether and how a run can be re-run."""
    from interplab.store import rerun as reruns

    call = p.stored_call(r.id)
    if r.technique in reruns.registered():
        return f"interplab rerun {r.id} (through the function registered for {r.technique})"
    if call is None:
        return "no: it stored no call (recorded with store.recording) and nothing is registered"
    if call.not_stored:
        return f"no: {call.not_stored}"
    return f"interplab rerun {r.id} (calls {call.function} again)"


def register(app: typer.Typer) -> None:
    """Adds the notebook's commands to ``app``."""
    from interplab.commands import store_log

    store_log.register(app)  # log, hypothesis, finding, sprint

    @app.callback()
    def choose_project(
        project: Annotated[
            Path | None,
            typer.Option(
                "--project",
                help="record every run of this command in this project folder (default: "
                "$INTERPLAB_PROJECT, the enclosing project, or the per-user default)",
            ),
        ] = None,
    ) -> None:
        if project is not None:
            from interplab.store import resolve

            os.environ["INTERPLAB_PROJECT"] = str(resolve(project).root)  # checked: it exists

    @app.command()
    def init(
        folder: Annotated[Path, typer.Argument(help="the project folder")] = Path("."),
    ) -> None:
        """Make a project folder: a SQLite store and an artifacts folder; runs started below it
        are recorded there."""
        from interplab.store import Project

        with Project.init(folder) as p:
            console.print(f"project at {p.root} ({p.count_runs()} runs recorded)")

    runs_app = typer.Typer(help="List, show and compare recorded runs.", no_args_is_help=False)
    app.add_typer(runs_app, name="runs")

    @runs_app.callback(invoke_without_command=True)
    def runs(
        ctx: typer.Context,
        technique: Annotated[str | None, typer.Option(help="only this technique")] = None,
        status: Annotated[
            str | None, typer.Option(help="running, done, failed or interrupted")
        ] = None,
        model: Annotated[str | None, typer.Option(help="only runs on this model")] = None,
        sprint: Annotated[int | None, typer.Option(help="only runs of this sprint")] = None,
        hypothesis: Annotated[
            str | None, typer.Option(help="only runs linked to this hypothesis (H3)")
        ] = None,
        limit: Annotated[int, typer.Option(help="newest N runs; 0 for all")] = 30,
        plain: Annotated[bool, typer.Option(help="tab-separated lines, no table")] = False,
        project: ProjectOpt = None,
    ) -> None:
        """List recorded runs, newest first (``runs show``, ``runs diff``, ``runs check``)."""
        if ctx.invoked_subcommand is not None:
            return
        p = open_project(project)
        found = p.runs(
            technique=technique,
            status=status,
            model=model,
            sprint=sprint,
            hypothesis=None if hypothesis is None else hypothesis_id(hypothesis),
            limit=limit or None,
        )
        from interplab.store.records import iso

        if plain:
            lines = (
                f"{r.id}\t{r.technique}\t{r.status}\t{iso(r.started)}\t{r.model_name or ''}\t"
                f"{r.label or ''}"
                for r in found
            )
            sys.stdout.write("".join(line + "\n" for line in lines))
            return
        table = Table(title=f"{len(found)} of {p.count_runs()} runs in {p.root}")
        for col in ("run", "technique", "status", "started", "s", "model", "headline", "label"):
            table.add_column(col)
        for r in found:
            secs = "" if r.duration is None else f"{r.duration:.1f}"
            table.add_row(str(r.id), r.technique, r.status, iso(r.started), secs,
                          r.model_name or "", _headline(r.headline), r.label or "")  # fmt: skip
        console.print(table)

    @runs_app.command("show")
    def show(
        run: Annotated[str, typer.Argument(help="run id")], project: ProjectOpt = None
    ) -> None:
        """Show one run: setup, config, summary, artifacts, hypotheses."""
        from interplab.store.records import iso
        from interplab.store.summaries import summary_from_dict

        p = open_project(project)
        rid = run_id(run)
        summary = p.summary(rid)
        r = p.run(rid)
        git = (
            "not a git repository"
            if r.git_commit is None
            else r.git_commit + (" (dirty)" if r.git_dirty else "")
        )
        rows = [
            ("technique", r.technique), ("status", r.status + (f": {r.error}" if r.error else "")),
            ("started", iso(r.started)), ("ended", iso(r.ended)),
            ("model", f"{r.model_name} (weights sha256 {r.model_sha256})"),
            ("seed", r.seed), ("data sha256", r.data_sha256), ("git", git),
            ("command", r.command), ("cwd", r.cwd), ("host, pid", f"{r.host}, {r.pid}"),
            ("sprint", r.sprint_id), ("rerun of", r.rerun_of), ("label", r.label),
            ("versions", ", ".join(f"{k} {v}" for k, v in sorted(r.versions.items()))),
            ("config", json.dumps(r.config, sort_keys=True)),
        ]  # fmt: skip
        table = Table(title=f"run {r.id}", show_header=False)
        for k, v in rows:
            if v is not None:
                table.add_row(k, str(v))
        for link in p.links(run=rid):
            table.add_row(
                f"H{link.hypothesis_id}", "pre-registered" if link.preregistered else "post hoc"
            )
        table.add_row("re-run", _rerunnable(p, r))
        for a in r.artifacts:
            table.add_row(f"artifact {a.name}", f"{a.kind}, {a.bytes} bytes, sha256 {a.sha256}")
        console.print(table)
        if summary is not None:
            console.print(summary_from_dict(summary).describe())
        elif r.summary_error:
            console.print(f"no summary: {r.summary_error}")

    @runs_app.command("diff")
    def diff(
        a: Annotated[str, typer.Argument(help="first run")],
        b: Annotated[str, typer.Argument(help="second run")],
        project: ProjectOpt = None,
    ) -> None:
        """Compare two runs: setup, config, and summary numbers."""
        p = open_project(project)
        d = p.diff(run_id(a), run_id(b))
        for title, comp in (("setup", d.setup), ("config", d.config), ("numbers", d.numbers)):
            if comp is None:
                console.print(f"{title}: not compared (a run has no summary)")
                continue
            if comp.matches:
                console.print(
                    f"{title}: identical"
                    + (f" ({comp.n_numbers} numbers)" if comp.n_numbers else "")
                )
                continue
            table = Table(title=f"{title}: {comp.n_differences} differences")
            for col in ("where", f"run {d.a}", f"run {d.b}", "|diff|"):
                table.add_column(col)
            for x in comp.differences:
                table.add_row(
                    x.path,
                    _short(x.stored),
                    _short(x.new),
                    "" if x.abs_diff is None else f"{x.abs_diff:.3g}",
                )
            console.print(table)

    @runs_app.command("check")
    def check(project: ProjectOpt = None) -> None:
        """Check the store: SQLite integrity, every artifact's hash, the hypothesis chain."""
        p = open_project(project)
        problems = p.check()
        for line in problems:
            err.print(f"[bold red]problem:[/] {line}")
        if problems:
            raise typer.Exit(1)
        console.print(f"ok: {p.root} ({p.count_runs()} runs)")

    @app.command()
    def rerun(
        run: Annotated[str, typer.Argument(help="the run to repeat")],
        rtol: Annotated[
            float, typer.Option(help="relative tolerance when not an exact repeat")
        ] = 1e-5,
        atol: Annotated[
            float, typer.Option(help="absolute tolerance when not an exact repeat")
        ] = 1e-8,
        modules: Annotated[
            list[str] | None,
            typer.Option(
                "--import",
                help="a module outside interplab whose function the run called, or that "
                "registers a technique's re-run (repeatable)",
            ),
        ] = None,
        record: Annotated[bool, typer.Option(help="record the re-run as a new run")] = True,
        project: ProjectOpt = None,
    ) -> None:
        """Re-execute a recorded run and report, number by number, whether it matches."""
        from interplab.store import rerun as reruns

        p = open_project(project)
        importlib.import_module("interplab.techniques")  # techniques register their re-runs
        for name in modules or []:
            importlib.import_module(name)
        report = reruns.rerun(
            p, run_id(run), rtol=rtol, atol=atol, record=record, modules=modules or []
        )
        console.print(report.describe(), markup=False, highlight=False)
        if not report.matches:
            raise typer.Exit(1)

    @app.command()
    def report(
        out: Annotated[
            Path | None, typer.Option(help="folder for index.html and report.md")
        ] = None,
        title: Annotated[str | None, typer.Option(help="the report's title")] = None,
        seed: Annotated[int, typer.Option(help="seed for the random-examples appendix")] = 0,
        project: ProjectOpt = None,
    ) -> None:
        """Write the project's report: findings with evidence, limitations, random examples,
        reproducibility (a self-contained HTML page and a Markdown file)."""
        from interplab.report.notebook_page import write_project_report

        p = open_project(project)
        page, md = write_project_report(p, out, title=title, seed=seed)
        console.print(f"wrote {page}\nwrote {md}")

    @app.command()
    def export(
        to: Annotated[Path, typer.Option(help="MLflow SQLite database to write (made if missing)")],
        experiment: Annotated[str, typer.Option(help="MLflow experiment name")] = "interplab",
        project: ProjectOpt = None,
    ) -> None:
        """Export finished runs to MLflow's SQLite backend (needs `pip install
        'interplab[notebook]'` or mlflow)."""
        from interplab.store.export_mlflow import export_mlflow

        p = open_project(project)
        n = export_mlflow(p, to, experiment=experiment)
        console.print(f"exported {n} runs to {to} (experiment {experiment!r})")


__all__ = ["register"]
