"""The dashboard's web application: routes, templates, the guard and the error pages.

`create_app(project, token)` returns a Starlette application (ASGI) over one open project.
Starlette because the dashboard needs little: routing, templates (Jinja2), static files and a
test client; it is small, maintained, typed, and what FastAPI is built on, without the schema
machinery we would not use. uvicorn serves it (`interplab.dashboard.serve`).

Every request passes `security.Guard` (token, CSRF header on writes, body limit). Every error
becomes a page (or JSON under ``/api/``) that says what was wrong: a `DashboardError` with its
status, a store or input error (`UserError`) as 400, an unknown address as 404, and anything
else as 500 with a one-line message; tracebacks go to the server's log, never to the browser.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from interplab.dashboard import api, pages
from interplab.dashboard.security import MAX_BODY_BYTES, Guard
from interplab.dashboard.sources import DashboardError
from interplab.errors import UserError
from interplab.store import Project, StoreError
from interplab.store.records import iso

HERE = Path(__file__).resolve().parent
log = logging.getLogger("interplab.dashboard")


def _fmt(x: Any, digits: int = 3) -> str:
    if x is None:
        return "—"
    try:
        v = float(x)
    except (TypeError, ValueError):
        return str(x)
    if v != v:
        return "nan"
    return f"{v:.{digits}g}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    s = max(0.0, float(seconds))
    if s < 60:
        return f"{s:.1f} s"
    if s < 3600:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


def templates() -> Jinja2Templates:
    """Returns the page templates with the dashboard's filters (autoescaped)."""
    t = Jinja2Templates(directory=str(HERE / "templates"))
    t.env.filters["iso"] = iso
    t.env.filters["fmt"] = _fmt
    t.env.filters["duration"] = _duration
    t.env.globals["STATUSES"] = ("running", "done", "failed", "interrupted")
    return t


def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def _error(request: Request, status: int, title: str, message: str) -> Response:
    if _is_api(request):
        return JSONResponse({"error": message}, status_code=status)
    t: Jinja2Templates = request.app.state.templates
    return t.TemplateResponse(
        request,
        "error.html",
        {"status": status, "title": title, "message": message},
        status_code=status,
    )


async def _dashboard_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DashboardError)
    titles = {
        404: "not found",
        413: "too large",
        422: "cannot read this file",
        500: "server problem",
    }
    return _error(request, exc.status, titles.get(exc.status, "bad request"), str(exc))


async def _user_error(request: Request, exc: Exception) -> Response:
    busy = isinstance(exc, StoreError) and "busy" in str(exc)
    return _error(
        request, 503 if busy else 400, "the store is busy" if busy else "bad request", str(exc)
    )


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = exc.detail if exc.status_code != 404 else f"no page at {request.url.path}"
    return _error(
        request, exc.status_code, "not found" if exc.status_code == 404 else "error", str(message)
    )


async def _server_error(request: Request, exc: Exception) -> Response:
    log.exception("dashboard error on %s", request.url.path, exc_info=exc)
    message = f"the dashboard failed on this page ({type(exc).__name__}); the server's log has the details"
    if _is_api(request):
        return JSONResponse({"error": message}, status_code=500)
    from interplab.dashboard.security import refusal_page

    return HTMLResponse(refusal_page(500, "server error", message), status_code=500)


def create_app(
    project: Project | str | Path, token: str, *, max_body: int = MAX_BODY_BYTES
) -> Starlette:
    """Returns the dashboard application over ``project`` (an open `Project` or its folder);
    every request must carry ``token`` (see `security.Guard`)."""
    if not isinstance(project, Project):
        project = Project.open(project)
    if len(token) < 16:
        raise DashboardError("the dashboard token must be at least 16 characters")
    routes = [
        Route("/", pages.overview),
        Route("/runs", pages.runs),
        Route("/runs/compare", pages.compare),
        Route("/runs/{run_id:int}", pages.run),
        Route("/runs/{run_id:int}/figure.png", pages.run_figure),
        Route("/runs/{run_id:int}/artifacts/{name:path}", pages.artifact),
        Route("/log", pages.log),
        Route("/dictionaries", pages.dictionaries),
        Route("/dictionaries/index", pages.dictionary_index),
        Route("/dictionaries/feature", pages.feature),
        Route("/graphs", pages.graphs),
        Route("/graphs/view", pages.graph),
        *api.routes(),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(Guard, token=token, max_body=max_body)],  # type: ignore[arg-type]
        exception_handlers={
            DashboardError: _dashboard_error,
            UserError: _user_error,
            HTTPException: _http_error,
            Exception: _server_error,
        },
    )
    app.state.project = project
    app.state.templates = templates()
    app.state.token = token
    return app


__all__ = ["create_app", "templates"]
