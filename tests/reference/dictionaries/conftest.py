"""Imports of the peer libraries the reference tests compare against (skipped when absent).

sae-lens 6.51 imports ``transformer_lens.HookedTransformer`` and other TransformerLens 3 modules
at import time, for model integration we do not use; the TransformerLens pinned for the
benchmarks (4.x) moved them. `sae_lens_module` stands in empty modules for just those names
while sae_lens imports, so its SAE classes (what these tests compare) load unchanged.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import types
import warnings

import pytest


class _Stand(types.ModuleType):
    def __getattr__(self, name: str) -> type:
        if name.startswith("__"):
            raise AttributeError(name)
        stand_in = type(name, (), {})
        setattr(self, name, stand_in)
        return stand_in


class _MissingTransformerLens(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path, target=None):
        if not fullname.startswith("transformer_lens."):
            return None
        for finder in sys.meta_path:
            if finder is self:
                continue
            try:
                if finder.find_spec(fullname, path, target) is not None:  # type: ignore[attr-defined]
                    return None
            except (ImportError, AttributeError, ValueError):
                continue
        return importlib.machinery.ModuleSpec(fullname, self, is_package=True)

    def create_module(self, spec):
        module = _Stand(spec.name)
        module.__path__ = []
        return module

    def exec_module(self, module):
        if module.__name__ == "transformer_lens.HookedTransformer":
            from transformer_lens.HookedRootModule import HookedRootModule

            module.HookedRootModule = HookedRootModule  # type: ignore[attr-defined]


def sae_lens_module():
    """Returns the imported ``sae_lens`` package, or skips the test when it is not installed."""
    if importlib.util.find_spec("sae_lens") is None:
        pytest.skip("sae-lens is not installed (pip install -e '.[reference]')")
    finder = _MissingTransformerLens()
    sys.meta_path.append(finder)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return importlib.import_module("sae_lens")
    finally:
        sys.meta_path.remove(finder)


def sparsify_module():
    """Returns the imported ``sparsify`` package, or skips the test when it is not installed."""
    if importlib.util.find_spec("sparsify") is None:
        pytest.skip("eai-sparsify is not installed (pip install -e '.[reference]')")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return importlib.import_module("sparsify")
