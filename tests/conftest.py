"""Shared test configuration: puts this folder on ``sys.path`` so tests import ``helpers``.

pytest's default (prepend) import mode inserts the folder of a rootdir-level ``conftest.py`` into
``sys.path``; that alone makes ``from helpers import tiny_model`` work in every tier.
"""

import pytest


@pytest.fixture(scope="session")
def smol():
    """The real embedded model (SmolLM2-135M-Instruct), loaded once per test session."""
    import interplab

    return interplab.load()
