"""Shared test configuration: runtime shape checks on core, and ``helpers`` on ``sys.path``.

Every function and dataclass in `interplab.core` is checked at run time against its annotations
(jaxtyping's shape aliases from `interplab.types`, through beartype): within one call every axis
name is one size. The hook must be installed before anything imports `interplab.core`, hence
here, at the top of the rootdir conftest, which pytest imports before any test module.

pytest's default (prepend) import mode inserts the folder of a rootdir-level ``conftest.py`` into
``sys.path``; that alone makes ``from helpers import tiny_model`` work in every tier.
"""

import sys

import jaxtyping
import pytest

if "interplab.core" in sys.modules:  # checking would silently not happen
    raise RuntimeError("interplab.core was imported before tests/conftest.py installed its checks")
jaxtyping.install_import_hook(["interplab.core"], "beartype.beartype")


@pytest.fixture(scope="session")
def smol():
    """The real embedded model (SmolLM2-135M-Instruct), loaded once per test session."""
    import interplab

    return interplab.load()
