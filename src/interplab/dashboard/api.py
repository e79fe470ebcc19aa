"""The dashboard's JSON API: live run states, graphs, and writes to the research log.

Reads:

- ``GET /api/runs/state?ids=1,2,3``: status, heartbeat, elapsed time and error of those runs
  (the pages poll it every two seconds while a run is in progress);
- ``GET /api/runs/latest``: the newest run id and the ids still running;
- ``GET /api/runs/{id}/fragment``: the run page's body, swapped in when a run finishes;
- ``GET /api/graph?src=...``: a checked attribution graph, laid out for the viewer.

Writes go through the store's Python API (`Project.note`, `highlight`, `hypothesis`,
`set_status`, `link`, `finding`), never SQL, so the store's own checks apply and a refused value
comes back as a 400 with the store's message. Each takes a JSON object body (at most
`security.MAX_BODY_BYTES`) and returns the record written.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from interplab.dashboard import graphs as graph_json
from interplab.dashboard import views
from interplab.dashboard.security import read_body
from interplab.dashboard.sources import DashboardError, read_json, resolve
from interplab.store import Project
from interplab.store import queries as q


def _project(request: Request) -> Project:
    return request.app.state.project


async def _body(request: Request) -> dict[str, Any]:
    raw = await read_body(request.stream())
    try:
        data = json.loads(raw.decode("utf-8") or "{}")
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise DashboardError("the request body must be a JSON object") from None
    if not isinstance(data, dict):
        raise DashboardError("the request body must be a JSON object")
    return data


def _str(data: dict[str, Any], key: str, *, required: bool = True, limit: int = 20_000) -> str:
    value = data.get(key, "")
    if not isinstance(value, str):
        raise DashboardError(f"{key} must be text")
    value = value.strip()
    if required and not value:
        raise DashboardError(f"{key} is required")
    if len(value) > limit:
        raise DashboardError(f"{key} is {len(value)} characters; at most {limit}")
    return value


def _id(value: Any, what: str) -> int:
    text = str(value).strip().lstrip("HhFfRr#")
    if not text.isdigit():
        raise DashboardError(f"{what} must be a number, got {value!r}")
    return int(text)


# -- reads ---------------------------------------------------------------------------------------


def runs_state(request: Request) -> Response:
    raw = request.query_params.get("ids", "")
    ids = [_id(x, "a run id") for x in raw.split(",") if x.strip()][: q.MAX_PAGE]
    states = q.run_states(_project(request), ids)
    return JSONResponse({"runs": [s.to_dict() for s in states]})


def runs_latest(request: Request) -> Response:
    project = _project(request)
    return JSONResponse({"latest": q.latest_run_id(project), "running": q.running_ids(project)})


def run_fragment(request: Request) -> Response:
    project = _project(request)
    view = views.run_view(project, int(request.path_params["run_id"]))
    t = request.app.state.templates
    return t.TemplateResponse(
        request,
        "run_body.html",
        {"token": request.app.state.token, "root": str(project.root), **view},
    )


def graph(request: Request) -> Response:
    key = request.query_params.get("src", "")
    src = resolve(_project(request), key)
    data = read_json(src.path, f"the graph {key}")
    if isinstance(data, dict) and data.get("technique") == "attribution_graph":
        data = _neuronpedia(src.path, key)
    return JSONResponse(graph_json.payload(graph_json.parse_graph(data)))


def _neuronpedia(path: Any, key: str) -> Any:
    """Returns the circuit-tracer JSON of a stored graph result (``attribution_graph``)."""
    from interplab.results import load

    result = load(path)
    to_json = getattr(result, "to_neuronpedia", None)
    if not callable(to_json):
        raise DashboardError(f"{key} is a graph result that cannot write the graph format", 422)
    return to_json()


# -- writes --------------------------------------------------------------------------------------


def _record(obj: Any) -> dict[str, Any]:
    return json.loads(json.dumps(asdict(obj), default=str))


async def add_note(request: Request) -> Response:
    data = await _body(request)
    kind = _str(data, "kind", required=False) or "note"
    if kind not in ("note", "limitation"):
        raise DashboardError(
            "kind is 'note' or 'limitation' (star a run or figure for a highlight)"
        )
    run = data.get("run")
    note = await run_in_threadpool(
        _project(request).note,
        _str(data, "text"),
        kind=kind,  # type: ignore[arg-type]
        run=None if run in (None, "") else _id(run, "run"),
    )
    return JSONResponse(_record(note), status_code=201)


async def add_highlight(request: Request) -> Response:
    data = await _body(request)
    artifact = _str(data, "artifact", required=False) or None
    comment = _str(data, "comment", required=False) or (
        "starred figure" if artifact else "starred run"
    )
    note = await run_in_threadpool(
        _project(request).highlight, _id(data.get("run"), "run"), comment, artifact=artifact
    )
    return JSONResponse(_record(note), status_code=201)


async def add_hypothesis(request: Request) -> Response:
    data = await _body(request)
    h = await run_in_threadpool(_project(request).hypothesis, _str(data, "text"))
    return JSONResponse(_record(h), status_code=201)


async def set_hypothesis_status(request: Request) -> Response:
    data = await _body(request)
    status = _str(data, "status")
    h = await run_in_threadpool(
        _project(request).set_status,
        int(request.path_params["hypothesis_id"]),
        status,  # type: ignore[arg-type]
        _str(data, "note", required=False),
    )
    return JSONResponse(_record(h))


async def link_run(request: Request) -> Response:
    data = await _body(request)
    link = await run_in_threadpool(
        _project(request).link,
        int(request.path_params["hypothesis_id"]),
        _id(data.get("run"), "run"),
    )
    return JSONResponse(_record(link), status_code=201)


async def add_finding(request: Request) -> Response:
    data = await _body(request)
    evidence = data.get("evidence")
    if isinstance(evidence, str):
        evidence = [x for x in evidence.replace(",", " ").split() if x]
    if not isinstance(evidence, list) or not evidence:
        raise DashboardError("evidence is a list of run ids, e.g. [4, 5]")
    try:
        confidence = float(data.get("confidence", ""))
    except (TypeError, ValueError):
        raise DashboardError("confidence is a probability between 0 and 1") from None
    family = _str(data, "family", required=False) or None
    f = await run_in_threadpool(
        _project(request).finding,
        _str(data, "claim"),
        evidence=[_id(x, "an evidence run") for x in evidence],
        confidence=confidence,
        change_my_mind=_str(data, "change_my_mind"),
        family=family,
    )
    return JSONResponse(_record(f), status_code=201)


def routes() -> list[Route]:
    """Returns the API's routes."""
    return [
        Route("/api/runs/state", runs_state),
        Route("/api/runs/latest", runs_latest),
        Route("/api/runs/{run_id:int}/fragment", run_fragment),
        Route("/api/graph", graph),
        Route("/api/notes", add_note, methods=["POST"]),
        Route("/api/highlights", add_highlight, methods=["POST"]),
        Route("/api/hypotheses", add_hypothesis, methods=["POST"]),
        Route(
            "/api/hypotheses/{hypothesis_id:int}/status", set_hypothesis_status, methods=["POST"]
        ),
        Route("/api/hypotheses/{hypothesis_id:int}/links", link_run, methods=["POST"]),
        Route("/api/findings", add_finding, methods=["POST"]),
    ]


__all__ = ["routes"]
