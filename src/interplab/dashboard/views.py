"""What each page shows, assembled from the store: plain data the templates lay out.

1. `overview`: run counts by status, sprints with what they tested, the newest hypotheses with
   their pre-registered and post hoc evidence, and findings with the state of each evidence run
   (finished or not, its headline cell and whether it survives correction).
2. `run_view`: a run's setup and provenance, its summary (the stored ``Summary`` with CIs and
   adjusted p-values, the most extreme cells), its figures (drawn by `interplab.viz` from the
   stored result JSON, and the figure files it stored), examples drawn at random (seeded), its
   notes and highlights, the hypotheses and findings it is evidence for, and the command that
   re-runs it.
3. `compare_view`: two runs side by side through `Project.diff` (setup, config and summary
   numbers compared value by value).

Drawing is cached by the result's sha256: a content-addressed file never changes.
"""

from __future__ import annotations

import functools
import json
import random
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from interplab.dashboard.sources import DashboardError, not_found, read_json, run_artifact
from interplab.errors import UserError
from interplab.store import Project, RunRecord, StoreError
from interplab.store import queries as q
from interplab.store.summaries import summary_from_dict

EXAMPLES_SHOWN = 5
TOP_CELLS = 10
IMAGE_TYPES = {
    ".png": "image/png",
    ".svg": "image/svg+xml",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
}


def get_run(project: Project, run_id: int) -> RunRecord:
    try:
        return project.run(run_id)
    except StoreError:
        raise not_found(f"no run {run_id} in this project; the runs page lists them") from None


# -- overview ---------------------------------------------------------------------------------


def overview(project: Project) -> dict[str, Any]:
    """Returns what the overview page shows."""
    project.mark_stale()
    facets = q.facets(project)
    sprints = []
    for s in reversed(project.sprints()[-10:]):
        sprints.append(project.sprint_stats(s.id, compute=False))
    hyps = q.hypothesis_page(project, limit=10)
    finds = q.finding_page(project, limit=10)
    evidence_ids = [r for f in finds.rows for r in f.evidence]
    states = q.evidence_states(project, evidence_ids)
    headlines = _headlines(project, evidence_ids)
    links = {(lk.hypothesis_id, lk.run_id): lk for lk in project.links()} if evidence_ids else {}
    findings = []
    for f in finds.rows:
        ev = []
        for rid in f.evidence:
            kinds = [lk.preregistered for (h, r), lk in links.items() if r == rid]
            ev.append(
                {
                    "run": rid,
                    "status": states.get(rid, "missing"),
                    "headline": headlines.get(rid),
                    "linked": "pre-registered"
                    if any(kinds)
                    else ("post hoc" if kinds else "unlinked"),
                }
            )
        findings.append({"finding": f, "evidence": ev})
    return {
        "n_runs": sum(n for _, n in facets["status"]),
        "by_status": dict(facets["status"]),
        "techniques": facets["technique"],
        "sprints": sprints,
        "hypotheses": hyps,
        "findings": findings,
        "n_findings": finds.total,
        "running": q.running_ids(project)[:50],
    }


EVIDENCE_SUMMARISED = 20
"""How many evidence runs the overview summarises on first view (each summary is kept)."""


def _headlines(project: Project, run_ids: list[int]) -> dict[int, Any]:
    """Returns each evidence run's headline cell, summarising (once, kept in the store) the
    finished runs that have none yet."""
    out = {}
    for k, rid in enumerate(sorted(set(run_ids))):
        try:
            rec = project.run(rid)
            if (
                rec.headline is None
                and rec.status == "done"
                and rec.summary_error is None
                and k < EVIDENCE_SUMMARISED
            ):
                project.summary(rid)
                rec = project.run(rid)
            out[rid] = rec.headline
        except UserError:
            out[rid] = None
    return out


# -- one run ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class FigureView:
    """One figure on a run page: drawn from the result, or a stored file; or why there is none."""

    caption: str
    url: str | None
    artifact: str  # the artifact a star highlights
    heatmaps: str = ""  # the interactive SVG fragment, when the result has a grid
    missing: str | None = None


_DRAW_LOCK = threading.Lock()


@functools.lru_cache(maxsize=64)
def _load_result(path: str, sha256: str) -> Any:
    from interplab.results import load

    del sha256  # the cache key: the file never changes under its hash
    return load(path)


@functools.lru_cache(maxsize=32)
def figure_png(path: str, sha256: str) -> bytes:
    """Returns the PNG viz draws for the stored result at ``path`` (cached by its hash)."""
    from interplab import viz

    result = _load_result(path, sha256)
    with _DRAW_LOCK:  # matplotlib's font cache and text layout are not thread-safe
        return viz.png_bytes(viz.figure(result))


@functools.lru_cache(maxsize=32)
def heatmaps_html(path: str, sha256: str) -> str:
    """Returns the interactive heatmaps (SVG, hover text with CI and adjusted p) of a result."""
    from interplab import viz
    from interplab.viz.interactive import fragment

    result = _load_result(path, sha256)
    with _DRAW_LOCK:
        maps = viz.heatmaps(result)
    return fragment(maps) if maps else ""


def _figures(project: Project, run: RunRecord) -> list[FigureView]:
    out: list[FigureView] = []
    art = run.artifact("result")
    if art is not None:
        caption = f"run {run.id}: {run.technique}, drawn from its stored result"
        path = project.artifact_path(art.sha256)
        if not path.is_file():
            out.append(
                FigureView(
                    caption,
                    None,
                    art.name,
                    missing="its result file is missing from the artifacts folder",
                )
            )
        else:
            try:
                maps = heatmaps_html(str(path), art.sha256)
                out.append(FigureView(caption, f"/runs/{run.id}/figure.png", art.name, maps))
            except UserError as e:
                out.append(FigureView(caption, None, art.name, missing=f"no figure drawn: {e}"))
    for a in run.artifacts:
        suffix = Path(a.name).suffix.lower()
        if a.kind == "figure" and suffix in IMAGE_TYPES:
            out.append(
                FigureView(
                    f"{a.name} (stored figure)", f"/runs/{run.id}/artifacts/{a.name}", a.name
                )
            )
    return out


def summary_view(project: Project, run: RunRecord) -> dict[str, Any]:
    """Returns the run's summary: its sentences and the most extreme cells with CIs and p."""
    if run.status == "running":
        return {"text": "running: the summary appears when the run finishes", "cells": []}
    try:
        d = project.summary(run.id)
    except UserError as e:
        return {"text": f"no summary: {e}", "cells": []}
    if d is None:
        why = run.summary_error or (
            "the run stored no result"
            if run.artifact("result") is None
            else "its result type is not known here"
        )
        return {"text": f"no summary: {why}", "cells": []}
    try:
        s = summary_from_dict(d)
        text = s.describe()
    except (KeyError, TypeError, ValueError) as e:
        return {"text": f"the stored summary cannot be read ({e})", "cells": []}
    mean = np.asarray(s.mean, dtype=float)
    flat = np.where(np.isnan(mean), -np.inf, np.abs(mean)).ravel()
    cells = []
    for i in np.argsort(-flat, kind="stable")[:TOP_CELLS]:
        where = np.unravel_index(int(i), mean.shape) if mean.shape else ()
        cells.append(
            {
                "cell": ", ".join(str(int(x)) for x in where) or "(scalar)",
                "mean": float(mean[where]),
                "ci_low": float(np.asarray(s.ci_low)[where]),
                "ci_high": float(np.asarray(s.ci_high)[where]),
                "p": float(np.asarray(s.p_adjusted)[where]),
                "significant": bool(np.asarray(s.significant)[where]),
            }
        )
    return {
        "text": text,
        "cells": cells,
        "n": s.n,
        "n_tests": s.n_tests,
        "confidence": s.confidence,
        "correction": s.correction,
        "notes": list(s.notes),
    }


def examples_view(project: Project, run: RunRecord, seed: int) -> dict[str, Any] | None:
    """Returns examples drawn at random (seeded) from what the run stored, or None."""
    for kind, source in (("examples", "the examples it stored"), ("inputs", "its inputs")):
        art = run.artifact(kind)
        if art is None:
            continue
        try:
            _, path = run_artifact(project, run.id, art.name)
            data = read_json(path, f"run {run.id}'s {art.name}")
        except DashboardError as e:
            return {"source": source, "total": 0, "seed": seed, "shown": [], "missing": str(e)}
        items = (
            data
            if isinstance(data, list)
            else data.get("items")
            if isinstance(data, dict)
            else None
        )
        if isinstance(items, list) and items:
            rng = random.Random(seed * 1_000_003 + run.id)
            k = min(EXAMPLES_SHOWN, len(items))
            picked = sorted(rng.sample(range(len(items)), k))
            shown = [
                x if isinstance(x, str) else json.dumps(x, ensure_ascii=False)[:600]
                for x in (items[i] for i in picked)
            ]
            return {
                "source": source,
                "total": len(items),
                "seed": seed,
                "shown": shown,
                "missing": None,
            }
    return None


def provenance_rows(project: Project, run: RunRecord) -> list[tuple[str, str]]:
    """Returns what the run ran on, with which code, where and when."""
    versions = ", ".join(f"{k} {v}" for k, v in sorted(run.versions.items()))
    git = run.git_commit or "not in a git repository"
    if run.git_commit and run.git_dirty:
        git += " (uncommitted changes)"
    return [
        ("technique", run.technique),
        ("model", run.model_name or "—"),
        ("weights sha256", run.model_sha256 or "—"),
        ("seed", "—" if run.seed is None else str(run.seed)),
        ("data sha256", run.data_sha256 or "—"),
        ("git commit", git),
        ("versions", versions or "—"),
        ("command", run.command or "—"),
        ("working directory", run.cwd or "—"),
        ("host, pid", f"{run.host}, {run.pid}"),
        ("rerun of", "—" if run.rerun_of is None else f"run {run.rerun_of}"),
        ("label", run.label or "—"),
    ]


def run_view(project: Project, run_id: int, *, seed: int = 0) -> dict[str, Any]:
    """Returns everything the run page shows."""
    project.mark_stale()
    run = get_run(project, run_id)
    notes = q.notes_for_run(project, run.id)
    starred = {n.artifact_sha256 for n in notes if n.kind == "highlight"}
    by_name = {a.name: a.sha256 for a in run.artifacts}
    figures = _figures(project, run) if run.status != "running" else []
    return {
        "run": run,
        "summary": summary_view(project, run),
        "figures": [(f, by_name.get(f.artifact) in starred) for f in figures],
        "run_starred": any(n.kind == "highlight" and n.artifact_sha256 is None for n in notes),
        "examples": examples_view(project, run, seed),
        "provenance": provenance_rows(project, run),
        "config": json.dumps(run.config, indent=1, sort_keys=True),
        "notes": notes,
        "links": project.links(run=run.id),
        "findings": [f for f in project.findings() if run.id in f.evidence],
        "rerun": f"interplab rerun {run.id} --project {project.root}",
        "artifacts": run.artifacts,
        "hypotheses": q.hypothesis_page(project, limit=q.MAX_PAGE).rows,
    }


# -- two runs ---------------------------------------------------------------------------------


def compare_view(project: Project, a: int, b: int) -> dict[str, Any]:
    """Returns two runs side by side: setup, config and summary numbers, value by value."""
    ra, rb = get_run(project, a), get_run(project, b)
    try:
        diff = project.diff(a, b)
    except UserError as e:
        raise DashboardError(f"cannot compare runs {a} and {b}: {e}") from None
    sa, sb = summary_view(project, ra), summary_view(project, rb)
    return {"a": ra, "b": rb, "diff": diff, "summary_a": sa, "summary_b": sb}


__all__ = [
    "FigureView",
    "compare_view",
    "examples_view",
    "figure_png",
    "get_run",
    "heatmaps_html",
    "overview",
    "provenance_rows",
    "run_view",
    "summary_view",
]
