"""Fixtures for the store's tests: every test gets its own project and its own per-user home,
so nothing is written to the real default project."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


@pytest.fixture(autouse=True)
def _private_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("INTERPLAB_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("INTERPLAB_PROJECT", raising=False)
    monkeypatch.delenv("INTERPLAB_RECORD", raising=False)
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    yield


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """An empty project, also chosen through INTERPLAB_PROJECT (for `recorded` functions)."""
    from interplab.store import Project

    p = Project.init(tmp_path / "proj")
    monkeypatch.setenv("INTERPLAB_PROJECT", str(p.root))
    yield p
    p.close()
