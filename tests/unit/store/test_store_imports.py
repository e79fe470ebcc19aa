"""The store is torch-free and below the techniques: importing it (and the report module that
reads it) loads no torch, no core and no techniques."""

from __future__ import annotations

import subprocess
import sys


def test_the_store_and_its_report_import_without_torch_core_or_techniques(tmp_path):
    code = (
        "import sys, interplab.store, interplab.store.export_mlflow, interplab.report.notebook_page\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers')\n"
        "             or m.startswith(('interplab.core', 'interplab.techniques', 'interplab.models')))\n"
        "print('BAD:' + ','.join(bad[:5]))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "BAD:"
