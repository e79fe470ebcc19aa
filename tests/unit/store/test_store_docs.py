"""docs/notebook.md's Python examples run as written (in a fresh interpreter, in a temp folder)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parents[3] / "docs" / "notebook.md"


def test_the_python_examples_of_the_notebook_page_run(tmp_path):
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert blocks, "docs/notebook.md has no python example"
    script = "\n".join(blocks) + "\nassert len(project.runs()) == 3 and c.n_tests == 6\n"
    env = {**os.environ, "INTERPLAB_HOME": str(tmp_path / "home")}
    env.pop("INTERPLAB_PROJECT", None)
    env.pop("INTERPLAB_RECORD", None)
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "cells tested in run 1" in done.stdout
