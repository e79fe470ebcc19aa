"""The project report as files: one self-contained HTML page and a Markdown file beside it.

1. HTML: figures inlined (base64), no script, no stylesheet fetched: the page opens offline
   anywhere. Every value from the store is escaped; extra sections (`Section`, written by code,
   such as the demo's analyses) keep their HTML, as `interplab.report.html` renders them.
2. Markdown: the same sections; figures are written as files under ``figures/`` beside it.
3. Both are written atomically (temp file + rename).

The demo's page is its project's report: ``write_project_report(project, out_dir, title=...,
intro=report.intro, sections=report.sections)`` puts the findings first, the demo's sections
after them, then limitations, the appendix and reproducibility.
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from interplab.provenance import jsonable, write_text
from interplab.report.html import Section
from interplab.report.notebook import (
    Claim,
    Evidence,
    Notebook,
    build,
    describe_links,
)
from interplab.store import Project
from interplab.store.records import iso

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#1b1b1b;line-height:1.5}
h1{font-size:1.6em} h2{font-size:1.3em;margin-top:2em;border-bottom:1px solid #ddd}
h3{font-size:1.1em} .lede{color:#555} img{max-width:100%;border:1px solid #eee}
table{border-collapse:collapse;font-size:.88em;margin:.8em 0} td,th{border:1px solid #ddd;
padding:.25em .6em;text-align:left;vertical-align:top} th{background:#f5f5f5}
.claim{background:#f3f8ff;border-left:4px solid #2f6fdd;padding:.5em 1em;margin:.8em 0}
.caveat{background:#fff8ec;border-left:4px solid #e0a030;padding:.3em 1em;margin:.4em 0}
.missing{color:#8a5a00;font-style:italic} code{font-size:.85em;word-break:break-all}
figure{margin:1em 0} figcaption{color:#555;font-size:.9em}
"""


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _num(x: float | None, digits: str = ".3g") -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return format(x, digits)


def _stat_cells(e: Evidence) -> list[str]:
    h = e.headline
    if h is None:
        return [str(e.run.id), e.run.technique, "–", "–", "–", "–", "–", describe_links(e.links)]
    ci = f"[{_num(h.ci_low)}, {_num(h.ci_high)}]"
    return [
        str(e.run.id),
        e.run.technique,
        f"{h.n}",
        f"{_num(h.mean)} at {e.cell}",
        f"{h.confidence:.0%} CI {ci}",
        f"{_num(h.p_adjusted, '.2g')} ({h.correction}, {h.n_tests} cells)",
        f"{_num(e.p_family, '.2g')}",
        describe_links(e.links),
    ]


_STAT_HEADER = [
    "run",
    "technique",
    "n",
    "largest |mean|",
    "CI",
    "p adj. within run",
    "p adj. in family",
    "evidence",
]


# -- HTML ---------------------------------------------------------------------------------------


def _h(text: object) -> str:
    return html.escape(str(text))


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{_h(c)}</th>" for c in header)
    body = "".join("<tr>" + "".join(f"<td>{_h(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _value(v: Any) -> str:
    if isinstance(v, float):
        return _num(v, ".4g")
    return str(v)


def _section_html(s: Section, k: int) -> str:
    parts = [f"<section class='analysis' id='A{k}'><h3>{_h(s.title)}</h3>"]
    if s.text:
        parts.append(f"<p>{s.text}</p>")
    parts += [f"<div class='claim'>{c}</div>" for c in s.claims]
    parts += [f"<div class='caveat'>{c}</div>" for c in s.caveats]
    for caption, png in s.figures:
        data = base64.b64encode(png).decode()
        parts.append(
            f"<figure><img alt='{_h(caption)}' src='data:image/png;base64,{data}'>"
            f"<figcaption>{_h(caption)}</figcaption></figure>"
        )
    parts += [_table(header, [[_value(v) for v in r] for r in rows]) for header, rows in s.tables]
    if s.links:
        items = "".join(f"<li><a href='{_h(href)}'>{_h(label)}</a></li>" for label, href in s.links)
        parts.append(f"<ul>{items}</ul>")
    if s.provenance:
        text = _h(json.dumps(jsonable(s.provenance), indent=1))
        parts.append(f"<details><summary>provenance</summary><pre>{text}</pre></details>")
    parts.append("</section>")
    return "\n".join(parts)


def _claim_html(c: Claim) -> str:
    f = c.finding
    parts = [
        f"<section class='finding' id='F{f.id}'><h3>F{f.id}. {_h(f.claim)}</h3>",
        f"<div class='claim'>Confidence {f.confidence:.0%}. What would change my mind: "
        f"{_h(f.change_my_mind)}</div>",
        f"<p class='tests'>{_h(c.correction.describe())}</p>",
        _table(_STAT_HEADER, [_stat_cells(e) for e in c.evidence]),
    ]
    for e in c.evidence:
        parts.append(f"<p><b>Run {e.run.id}</b>: {_h(e.text)}</p>")
        for fig in e.figures:
            if fig.data is None:
                parts.append(f"<p class='missing'>{_h(fig.caption)}: {_h(fig.missing)}</p>")
                continue
            data = base64.b64encode(fig.data).decode()
            parts.append(
                f"<figure><img alt='{_h(fig.caption)}' src='data:{fig.mime};base64,{data}'>"
                f"<figcaption>{_h(fig.caption)}</figcaption></figure>"
            )
    parts.append("</section>")
    return "\n".join(parts)


def render_html(nb: Notebook) -> str:
    """Returns the report as one self-contained HTML page."""
    p = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{_h(nb.title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_h(nb.title)}</h1>",
        f"<p class='lede'>Built {_h(iso(nb.created))} from {_h(nb.root)} "
        f"({_count(nb.n_runs, 'run')} recorded, {_count(len(nb.claims), 'finding')}). Findings "
        "first; each names how many tests stand behind it and whether its evidence was "
        "pre-registered.</p>",
    ]
    if nb.intro:
        p.append(f"<p class='lede'>{nb.intro}</p>")
    p.append("<section id='findings'><h2>Findings</h2>")
    p += [_claim_html(c) for c in nb.claims] or ["<p>No findings recorded yet.</p>"]
    p.append("</section>")
    if nb.sections:
        p.append("<section id='analyses'><h2>Analyses</h2>")
        p += [_section_html(x, k) for k, x in enumerate(nb.sections, 1)]
        p.append("</section>")
    p.append("<section id='limitations'><h2>Limitations</h2>")
    p += [f"<div class='caveat'>{_h(x)}</div>" for x in nb.limitations] or ["<p>None noted.</p>"]
    p.append("</section><section id='hypotheses'><h2>Hypotheses</h2>")
    rows = [
        [
            f"H{h.id}",
            h.text,
            h.status + (f": {h.status_note}" if h.status_note else ""),
            iso(h.created),
            str(pre),
            str(post),
            h.sha256[:12],
        ]
        for h, pre, post in nb.hypotheses
    ]
    p.append(
        _table(
            [
                "id",
                "hypothesis",
                "status",
                "written",
                "pre-registered runs",
                "post hoc runs",
                "sha256",
            ],
            rows,
        )
        if rows
        else "<p>None written.</p>"
    )
    p.append("</section><section id='sprints'><h2>Sprints</h2>")
    if not nb.sprints:
        p.append("<p>None started.</p>")
    for s in nb.sprints:
        sp = s.sprint
        p.append(f"<h3>S{sp.id}. {_h(sp.name)}</h3><p>{_h(sp.goal)}</p>")
        p.append(
            _table(
                [
                    "runs",
                    "hypotheses",
                    "pre-registered / post hoc links",
                    "cells tested",
                    "findings",
                ],
                [
                    [
                        str(s.runs),
                        str(s.hypotheses),
                        f"{s.preregistered_links} / {s.post_hoc_links}",
                        str(s.cells_tested),
                        str(s.findings),
                    ]
                ],
            )
        )
        if sp.ended is not None:
            p.append(
                _table(
                    ["question", "answer"],
                    [
                        ["What did I try?", sp.tried or ""],
                        ["What worked?", sp.worked or ""],
                        ["What would I do differently?", sp.differently or ""],
                        ["Continue or pivot?", sp.decision or ""],
                    ],
                )
            )
    if nb.highlights:
        p.append("<h2>Highlights</h2><ul>")
        p += [f"<li>Run {n.run_id}: {_h(n.text)}</li>" for n in nb.highlights]
        p.append("</ul>")
    p.append("</section><section id='appendix-examples'><h2>Appendix: random examples</h2>")
    p.append("<p>Drawn at random (seeded) from each evidence run's data, not chosen by hand.</p>")
    for ex in nb.examples:
        p.append(
            f"<h3>Run {ex.run_id}</h3><p>{len(ex.items)} of {ex.total} from {_h(ex.source)}"
            f" (seed {ex.seed}):</p><ol class='examples'>"
        )
        p += [f"<li><code>{_h(x)}</code></li>" for x in ex.items]
        p.append("</ol>")
    if not nb.examples:
        p.append("<p>No evidence run stored examples or inputs.</p>")
    p.append("</section><section id='reproducibility'><h2>Reproducibility</h2>")
    p.append(
        f"<p>Store schema version {nb.schema_version}. Rebuild this report with "
        f"<code>interplab report --project {_h(nb.root)}</code>.</p>"
    )
    for r in nb.repro:
        arts = "; ".join(f"{n} {sha}" for n, sha in r.artifacts)
        p.append(
            f"<h3>Run {r.run}</h3>"
            + _table(
                ["", ""],
                [
                    ["re-run", r.rerun],
                    ["calls again", r.calls or "–"],
                    ["command", r.command],
                    ["model", r.model],
                    ["data sha256", r.data],
                    ["seed", r.seed],
                    ["git", r.git],
                    ["versions", r.versions],
                    ["artifacts (sha256)", arts],
                ],
            )
        )
    p.append("</section></body></html>")
    return "\n".join(p)


# -- Markdown -----------------------------------------------------------------------------------


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    def cell(x: str) -> str:
        return str(x).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _write_figure(folder: Path, name: str, data: bytes) -> str:
    """Writes a figure file atomically; returns its path relative to the Markdown file."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{name}.{os.getpid()}.tmp"
    try:
        tmp.write_bytes(data)
        os.replace(tmp, folder / name)
    finally:
        tmp.unlink(missing_ok=True)
    return f"{folder.name}/{name}"


def render_markdown(nb: Notebook, figures: Path) -> str:
    """Returns the report as Markdown, writing its figures under ``figures``."""
    out = [
        f"# {nb.title}",
        "",
        f"Built {iso(nb.created)} from `{nb.root}` ({_count(nb.n_runs, 'run')} recorded, "
        f"{_count(len(nb.claims), 'finding')}).",
        "",
    ]
    if nb.intro:
        out += [nb.intro, ""]
    out += ["## Findings", ""]
    for c in nb.claims:
        f = c.finding
        out += [
            f"### F{f.id}. {f.claim}",
            "",
            f"Confidence {f.confidence:.0%}. What would change my mind: {f.change_my_mind}",
            "",
            c.correction.describe(),
            "",
            _md_table(_STAT_HEADER, [_stat_cells(e) for e in c.evidence]),
            "",
        ]
        for e in c.evidence:
            out += [f"**Run {e.run.id}**: {e.text}", ""]
            for i, fig in enumerate(e.figures):
                if fig.data is None:
                    out += [f"*{fig.caption}: {fig.missing}*", ""]
                    continue
                ext = {"image/png": ".png", "image/svg+xml": ".svg", "image/jpeg": ".jpg"}[fig.mime]
                name = _write_figure(figures, f"F{f.id}-run{e.run.id}-{i}{ext}", fig.data)
                out += [f"![{fig.caption}]({name})", "", f"*{fig.caption}*", ""]
    if nb.sections:
        out += ["## Analyses", ""]
    for k, x in enumerate(nb.sections, 1):
        out += [f"### {x.title}", ""] + ([x.text, ""] if x.text else [])
        out += [f"> {c}\n" for c in x.claims] + [f"- caveat: {c}" for c in x.caveats]
        out += [""] if x.caveats else []
        for i, (caption, png) in enumerate(x.figures):
            name = _write_figure(figures, f"section{k}-{i}.png", png)
            out += [f"![{caption}]({name})", "", f"*{caption}*", ""]
        for header, rows in x.tables:
            out += [_md_table(header, [[_value(v) for v in r] for r in rows]), ""]
        out += [f"- [{label}]({href})" for label, href in x.links] + ([""] if x.links else [])
    out += ["## Limitations", ""] + [f"- {x}" for x in nb.limitations or ("None noted.",)] + [""]
    out += ["## Hypotheses", ""]
    out += [
        f"- H{h.id} ({h.status}, written {iso(h.created)}, sha256 {h.sha256[:12]}): {h.text} "
        f"— {pre} pre-registered, {post} post hoc runs"
        for h, pre, post in nb.hypotheses
    ] + [""]
    for s in nb.sprints:
        sp = s.sprint
        out += [
            f"## Sprint S{sp.id}: {sp.name}",
            "",
            sp.goal,
            "",
            f"{s.runs} runs, {s.hypotheses} hypotheses, {s.cells_tested} cells tested, "
            f"{s.findings} findings.",
            "",
        ]
        if sp.ended is not None:
            out += [
                f"- What did I try? {sp.tried}",
                f"- What worked? {sp.worked}",
                f"- What would I do differently? {sp.differently}",
                f"- Continue or pivot? {sp.decision}",
                "",
            ]
    out += [
        "## Appendix: random examples",
        "",
        "Drawn at random (seeded) from each evidence run's data, not chosen by hand.",
        "",
    ]
    for ex in nb.examples:
        out += [
            f"### Run {ex.run_id}",
            "",
            f"{len(ex.items)} of {ex.total} from {ex.source} (seed {ex.seed}):",
            "",
        ]
        out += [f"{i}. `{x}`" for i, x in enumerate(ex.items, 1)] + [""]
    out += [
        "## Reproducibility",
        "",
        f"Store schema version {nb.schema_version}. "
        f"Rebuild with `interplab report --project {nb.root}`.",
        "",
    ]
    for r in nb.repro:
        rerun = r.rerun if r.rerun.startswith("cannot") else f"`{r.rerun}`"
        out += [
            f"### Run {r.run}",
            "",
            f"- re-run: {rerun}",
            f"- calls again: {r.calls or '–'}",
            f"- command: `{r.command}`",
            f"- model: {r.model}",
            f"- data sha256: {r.data}",
            f"- seed: {r.seed}",
            f"- git: {r.git}",
            f"- versions: {r.versions}",
        ]
        out += [f"- artifact {n}: sha256 {sha}" for n, sha in r.artifacts] + [""]
    return "\n".join(out)


def write(nb: Notebook, folder: str | Path) -> tuple[Path, Path]:
    """Writes ``index.html`` and ``report.md`` (with ``figures/``) into ``folder``."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    page = write_text(out / "index.html", render_html(nb))
    md = write_text(out / "report.md", render_markdown(nb, out / "figures"))
    return page, md


def write_project_report(
    project: Project,
    folder: str | Path | None = None,
    *,
    title: str | None = None,
    seed: int = 0,
    intro: str = "",
    sections: Sequence[Section] = (),
) -> tuple[Path, Path]:
    """Builds the report of ``project`` and writes ``index.html`` and ``report.md`` into
    ``folder`` (default: ``<project>/report/``); returns both paths. ``intro`` (HTML) opens the
    page; ``sections`` (e.g. the demo's analyses) follow the findings."""
    nb = build(project, title=title, seed=seed, intro=intro, sections=sections)
    return write(nb, folder or project.root / "report")


__all__ = ["render_html", "render_markdown", "write", "write_project_report"]
