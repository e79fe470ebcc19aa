"""Fixtures for the dashboard's tests: one fixture project per module (built through the store's
API, no model), a client that carries the token, and a private per-user home."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

pytest.importorskip(
    "starlette", reason="the dashboard extra is not installed (pip install 'interplab[dashboard]')"
)

TOKEN = "test-token-" + "x" * 32


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, int]]]:
    """The fixture project (folder, run ids by role), built once per test module."""
    import os

    from fixtures import build_project

    home = tmp_path_factory.mktemp("home")
    old = os.environ.get("INTERPLAB_HOME")
    os.environ["INTERPLAB_HOME"] = str(home)
    root = tmp_path_factory.mktemp("dash") / "proj"
    ids = build_project(root)
    yield root, ids
    if old is None:
        os.environ.pop("INTERPLAB_HOME", None)
    else:
        os.environ["INTERPLAB_HOME"] = old


@pytest.fixture(scope="module")
def client(built):
    """A test client of the app over the fixture project, with the token cookie set."""
    from starlette.testclient import TestClient

    from interplab.dashboard import create_app

    root, _ = built
    app = create_app(root, TOKEN)
    with TestClient(app, raise_server_exceptions=False) as c:
        first = c.get(f"/?token={TOKEN}")
        assert first.status_code == 200
        c.headers["X-Interplab-Token"] = TOKEN
        yield c
    app.state.project.close()
