"""The layers of docs/design.md hold: torch-free modules load without torch, and the import
contracts in pyproject.toml are kept.

Each import runs in a fresh interpreter (this one has long since imported torch), so what
``sys.modules`` holds afterwards is exactly what that import pulled in.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "transformers")

TORCH_FREE = [
    "interplab",
    "interplab.errors",
    "interplab.sites",
    "interplab.provenance",
    "interplab.configs",
    "interplab.progress",
    "interplab.stats",
    "interplab.results",
    "interplab.results.base",
    "interplab.viz",
    "interplab.report",
    "interplab.store",
    "interplab.dashboard",
]

_REPORT_HEAVY = f"""
import sys
heavy = sorted(m for m in sys.modules if m.split(".")[0] in {HEAVY!r})
print("HEAVY:" + ",".join(heavy[:5]))
"""


def _run_fresh(code: str, tmp_path: Path) -> str:
    """Runs ``code`` then reports which heavy modules it loaded; returns that line's modules."""
    script = textwrap.dedent(code) + _REPORT_HEAVY
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    line = [x for x in done.stdout.splitlines() if x.startswith("HEAVY:")][-1]
    return line.removeprefix("HEAVY:")


@pytest.mark.parametrize("module", TORCH_FREE)
def test_module_imports_without_torch(module, tmp_path):
    assert _run_fresh(f"import {module}", tmp_path) == ""


def test_package_names_resolve_lazily(tmp_path):
    """``import interplab`` is cheap, yet every public name is there when asked for."""
    heavy = _run_fresh(
        """
        import interplab as ip
        listed = set(dir(ip))
        assert {"load", "Model", "Patch", "Site", "viz", "stats"} <= listed, listed
        assert set(ip.__all__) <= listed
        from interplab import Site
        assert str(Site(3, "resid_post")) == "L3.resid_post"
        assert ip.stats.__name__ == "interplab.stats"
        """,
        tmp_path,
    )
    assert heavy == ""


def test_every_public_name_resolves():
    import interplab

    assert set(interplab.__all__) == {*interplab._EXPORTS, "__version__"}
    for name in interplab.__all__:
        assert getattr(interplab, name) is not None, name
    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        _ = interplab.nonexistent  # type: ignore[attr-defined]


def test_result_files_load_without_torch(tmp_path):
    """Reading a result JSON imports every result schema module, and still no torch."""
    heavy = _run_fresh(
        """
        from dataclasses import dataclass

        import numpy as np

        from interplab import results
        from interplab.results.base import Result
        from interplab.sites import Site


        @dataclass(frozen=True)
        class LayersProbeResult(Result):
            technique = "layers_probe"
            values: np.ndarray
            site: Site

            def summary(self):
                from interplab.stats import summarize

                return summarize(self.values[:, None])


        written = LayersProbeResult(np.array([1.0, float("nan")]), Site(2, "attn_out"))
        loaded = results.load(written.to_json("probe.json"))
        assert isinstance(loaded, LayersProbeResult) and loaded.site == written.site
        np.testing.assert_array_equal(loaded.values, written.values)
        """,
        tmp_path,
    )
    assert heavy == ""


def test_every_schema_and_view_module_imports_without_torch(tmp_path):
    """What viz draws from and with (every results/ and viz/ module) never needs torch."""
    heavy = _run_fresh(
        """
        import importlib
        import pkgutil

        for package in ("interplab.results", "interplab.viz"):
            for info in pkgutil.iter_modules(importlib.import_module(package).__path__):
                importlib.import_module(f"{package}.{info.name}")
        """,
        tmp_path,
    )
    assert heavy == ""


def test_import_contracts_are_kept():
    """The contracts of docs/design.md (``[tool.importlinter]`` in pyproject.toml) all hold."""
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run(
        [str(lint), "--no-cache", "--no-logo"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
