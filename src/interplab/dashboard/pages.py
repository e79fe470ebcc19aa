"""The dashboard's pages: one handler per address, each reading the store and filling a template.

Handlers are plain functions (Starlette runs them in its thread pool, so a slow drawing never
blocks other requests). Query parameters are checked here and a bad one is a 400 page that
says what is valid.
"""

from __future__ import annotations

import datetime as dt
import mimetypes
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import FileResponse, Response

from interplab.dashboard import features as feats
from interplab.dashboard import sources, views
from interplab.dashboard.sources import DashboardError, resolve, scan
from interplab.store import Project
from interplab.store import queries as q

PER_PAGE = 50
_INLINE = {".png", ".jpg", ".jpeg", ".gif", ".webp", ".json", ".txt", ".csv", ".md"}


def _project(request: Request) -> Project:
    return request.app.state.project


def _render(request: Request, name: str, context: dict[str, Any], status: int = 200) -> Response:
    context = {"token": request.app.state.token, "root": str(_project(request).root), **context}
    return request.app.state.templates.TemplateResponse(request, name, context, status_code=status)


def int_param(
    request: Request, name: str, default: int | None, lo: int = 0, hi: int = 10**9
) -> int | None:
    """Returns an integer query parameter, checked against its range."""
    raw = request.query_params.get(name, "").strip()
    if raw == "":
        return default
    raw = raw.lstrip("HhFfSs") if name in ("hypothesis", "sprint") else raw
    if not raw.lstrip("-").isdigit():
        raise DashboardError(f"{name} must be a whole number, got {request.query_params[name]!r}")
    value = int(raw)
    if not lo <= value <= hi:
        raise DashboardError(f"{name} must be between {lo} and {hi}, got {value}")
    return value


def _date(request: Request, name: str) -> float | None:
    raw = request.query_params.get(name, "").strip()
    if not raw:
        return None
    try:
        day = dt.date.fromisoformat(raw)
    except ValueError:
        raise DashboardError(f"{name} is a date as YYYY-MM-DD, got {raw!r}") from None
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp()


def _text(request: Request, name: str) -> str | None:
    raw = request.query_params.get(name, "").strip()
    return raw or None


# -- overview and runs ---------------------------------------------------------------------------


def overview(request: Request) -> Response:
    return _render(request, "overview.html", views.overview(_project(request)))


def runs(request: Request) -> Response:
    project = _project(request)
    since, until = _date(request, "since"), _date(request, "until")
    if until is not None:
        until += 86400.0  # the whole day given
    where = q.RunFilter(
        technique=_text(request, "technique"),
        model=_text(request, "model"),
        status=_text(request, "status"),
        hypothesis=int_param(request, "hypothesis", None, 1),
        sprint=int_param(request, "sprint", None, 1),
        since=since,
        until=until,
    )
    sort = request.query_params.get("sort", "id")
    descending = request.query_params.get("order", "desc") != "asc"
    per = int_param(request, "per", PER_PAGE, 1, q.MAX_PAGE) or PER_PAGE
    page_no = int_param(request, "page", 1, 1) or 1
    page = q.run_page(
        project, where, sort=sort, descending=descending, offset=(page_no - 1) * per, limit=per
    )
    params = {
        k: v for k, v in request.query_params.items() if k not in ("page", "token") and v != ""
    }

    def link(**change: Any) -> str:
        merged = {**params, **{k: str(v) for k, v in change.items()}}
        return "/runs?" + urlencode(merged)

    return _render(
        request,
        "runs.html",
        {
            "page": page,
            "page_no": page_no,
            "n_pages": max(1, -(-page.total // per)),
            "params": params,
            "link": link,
            "facets": q.facets(project),
            "hypotheses": q.hypothesis_page(project, limit=q.MAX_PAGE).rows,
            "sorts": list(q.RUN_SORTS),
            "sort": sort,
            "descending": descending,
        },
    )


def run(request: Request) -> Response:
    project = _project(request)
    seed = int_param(request, "seed", 0, 0, 10**6) or 0
    view = views.run_view(project, int(request.path_params["run_id"]), seed=seed)
    return _render(request, "run.html", view)


def run_figure(request: Request) -> Response:
    project = _project(request)
    run_id = int(request.path_params["run_id"])
    rec = views.get_run(project, run_id)
    art = rec.artifact("result")
    if art is None:
        raise DashboardError(f"run {run_id} stored no result to draw", 404)
    _, path = sources.run_artifact(project, run_id, art.name)
    png = views.figure_png(str(path), art.sha256)
    return Response(png, media_type="image/png", headers={"cache-control": "private, max-age=3600"})


def artifact(request: Request) -> Response:
    project = _project(request)
    name = request.path_params["name"]
    art, path = sources.run_artifact(project, int(request.path_params["run_id"]), name)
    suffix = PurePosixPath(art.name).suffix.lower()
    media = mimetypes.types_map.get(suffix, "application/octet-stream")
    if suffix not in _INLINE:  # HTML, SVG and the rest download: never run in our origin
        return FileResponse(
            path, media_type="application/octet-stream", filename=PurePosixPath(art.name).name
        )
    if suffix in (".txt", ".csv", ".md"):
        media = "text/plain; charset=utf-8"
    return FileResponse(path, media_type=media)


def compare(request: Request) -> Response:
    a = int_param(request, "a", None, 1)
    b = int_param(request, "b", None, 1)
    if a is None or b is None:
        raise DashboardError(
            "choose two runs to compare: /runs/compare?a=ID&b=ID (tick two rows on the runs page)"
        )
    return _render(request, "compare.html", views.compare_view(_project(request), a, b))


# -- the research log ------------------------------------------------------------------------------


def log(request: Request) -> Response:
    project = _project(request)
    per = 25
    notes_no = int_param(request, "notes_page", 1, 1) or 1
    hyp_no = int_param(request, "hyp_page", 1, 1) or 1
    find_no = int_param(request, "find_page", 1, 1) or 1
    kind = _text(request, "kind")
    return _render(
        request,
        "log.html",
        {
            "notes": q.notes_page(project, kind=kind, offset=(notes_no - 1) * per, limit=per),
            "notes_no": notes_no,
            "kind": kind,
            "hypotheses": q.hypothesis_page(project, offset=(hyp_no - 1) * per, limit=per),
            "hyp_no": hyp_no,
            "findings": q.finding_page(project, offset=(find_no - 1) * per, limit=per),
            "find_no": find_no,
            "per": per,
            "sprint": project.current_sprint(),
        },
    )


# -- dictionaries and features ------------------------------------------------------------------------


def dictionaries(request: Request) -> Response:
    project = _project(request)
    runs_ = q.runs_by_techniques(project, list(feats.DICTIONARY_TECHNIQUES), limit=100)
    return _render(
        request, "dictionaries.html", {"sources": feats.index_sources(project), "runs": runs_}
    )


def dictionary_index(request: Request) -> Response:
    project = _project(request)
    key = request.query_params.get("src", "")
    src, index = feats.load_index(project, key)
    sort = request.query_params.get("sort", "density")
    descending = request.query_params.get("order", "desc") != "asc"
    per = 100
    page_no = int_param(request, "page", 1, 1) or 1
    query = request.query_params.get("q", "").strip()
    rows, total = feats.feature_table(
        index, sort=sort, descending=descending, offset=(page_no - 1) * per, limit=per, query=query
    )
    for r in rows:
        r["page_key"] = feats.page_key(project, src, index, r["feature"]) if r["has_page"] else None
    return _render(
        request,
        "dictionary.html",
        {
            "key": key,
            "index": index,
            "rows": rows,
            "total": total,
            "page_no": page_no,
            "n_pages": max(1, -(-total // per)),
            "sort": sort,
            "descending": descending,
            "q": query,
            "sorts": feats.FEATURE_SORTS,
        },
    )


def feature(request: Request) -> Response:
    project = _project(request)
    key = request.query_params.get("src", "")
    page = feats.load_page(project, key)
    scale = page.max_activation if page.max_activation > 0 else 1.0
    index_key = request.query_params.get("index", "")
    neighbours = []
    if index_key:
        src, index = feats.load_index(project, index_key)
        for j, cos in page.neighbours:
            neighbours.append((j, cos, feats.page_key(project, src, index, j)))
    else:
        neighbours = [(j, cos, None) for j, cos in page.neighbours]
    return _render(
        request,
        "feature.html",
        {
            "key": key,
            "index_key": index_key,
            "page": page,
            "top": [feats.example_tokens(e, scale) for e in page.top],
            "top_acts": [e.activation for e in page.top],
            "random": [feats.example_tokens(e, scale) for e in page.random],
            "random_acts": [e.activation for e in page.random],
            "quantiles": [
                (b, [feats.example_tokens(e, scale) for e in b.examples]) for b in page.quantiles
            ],
            "neighbours": neighbours,
            "hist": _histogram(page),
        },
    )


def _histogram(page: Any) -> list[dict[str, float]]:
    counts = [float(c) for c in page.histogram_counts]
    edges = [float(e) for e in page.histogram_edges]
    top = max(counts) if counts and max(counts) > 0 else 1.0
    return [
        {"low": edges[i], "high": edges[i + 1], "count": c, "height": c / top}
        for i, c in enumerate(counts)
        if i + 1 < len(edges)
    ]


# -- attribution graphs ------------------------------------------------------------------------------


def graphs(request: Request) -> Response:
    project = _project(request)
    stored = q.runs_with_artifacts(project, kinds=("graph",), name_like="%graph%.json")
    for r in q.runs_by_techniques(project, ["attribution_graph"]):
        art = r.artifact("result")
        if art is not None:
            stored.append((r.id, r.technique, art.name, art.sha256, art.bytes))
    files = [f for f in scan(project) if f.kind == "graph"]
    return _render(request, "graphs.html", {"stored": stored, "files": files})


def graph(request: Request) -> Response:
    project = _project(request)
    key = request.query_params.get("src", "")
    src = resolve(project, key)  # a missing or outside file is a 404 page here, not in the script
    return _render(request, "graph.html", {"key": key, "name": src.name, "run_id": src.run_id})


__all__ = [
    "artifact",
    "compare",
    "dictionaries",
    "dictionary_index",
    "feature",
    "graph",
    "graphs",
    "int_param",
    "log",
    "overview",
    "run",
    "run_figure",
    "runs",
]
