"""The Python example of docs/dashboard.md runs as written."""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "dashboard.md"


def test_the_python_example_of_the_dashboard_page_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("INTERPLAB_HOME", str(tmp_path / "home"))
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert blocks
    for code in blocks:
        exec(compile(code, str(DOC), "exec"), {"__name__": "docs_example"})
