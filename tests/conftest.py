"""Shared test configuration: runtime shape checks on core, and ``helpers`` on ``sys.path``.

Every function and dataclass of `interplab.core` is checked at run time against its annotations
(jaxtyping's shape aliases from `interplab.types`, through beartype): within one call every axis
name is one size. The hook must be installed before anything imports `interplab.core`, hence
here, at the top of the rootdir conftest, which pytest imports before any test module. Left out:
`core.hooks` and `core.points`, the per-module callbacks that run once per site in every forward
and carry no shapes (checking them made a 40-site capture twenty times slower).

pytest's default (prepend) import mode inserts the folder of a rootdir-level ``conftest.py`` into
``sys.path``; that alone makes ``from helpers import tiny_model`` work in every tier.
"""

import importlib.util
import pkgutil
import sys

import jaxtyping
import pytest

UNCHECKED = {"hooks", "points"}

if "interplab.core" in sys.modules:  # checking would silently not happen
    raise RuntimeError("interplab.core was imported before tests/conftest.py installed its checks")
_core = importlib.util.find_spec("interplab.core")  # finds the package without importing it
assert _core is not None and _core.submodule_search_locations is not None
jaxtyping.install_import_hook(
    [
        f"interplab.core.{m.name}"
        for m in pkgutil.iter_modules(_core.submodule_search_locations)
        if m.name not in UNCHECKED
    ],
    "beartype.beartype",
)


@pytest.fixture(scope="session")
def smol():
    """The real embedded model (SmolLM2-135M-Instruct), loaded once per test session."""
    import interplab

    return interplab.load()


@pytest.fixture(autouse=True, scope="session")
def _no_recording_into_the_users_project(tmp_path_factory: pytest.TempPathFactory):
    """Runs record into a throwaway default project, never the user's; tests that check
    recording open their own project."""
    import os

    home = tmp_path_factory.mktemp("interplab-home")
    old = {k: os.environ.get(k) for k in ("INTERPLAB_HOME", "INTERPLAB_PROJECT")}
    os.environ["INTERPLAB_HOME"] = str(home)
    os.environ.pop("INTERPLAB_PROJECT", None)
    yield
    for key, value in old.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
