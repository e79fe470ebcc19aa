"""A local web dashboard over the research notebook: runs, findings, figures, features, graphs.

    interplab dashboard my-project          # prints http://127.0.0.1:PORT/?token=...

    from interplab import dashboard
    d = dashboard.start("my-project")       # in a notebook or a test: a background server
    print(d.url); d.stop()

It reads the project store (`interplab.store`) and result JSON (`interplab.results`), draws with
`interplab.viz`, and writes only through the store's Python API (notes, highlights, hypotheses,
findings). It never imports torch. See docs/dashboard.md.
"""

from interplab.dashboard.app import create_app
from interplab.dashboard.serve import Running, is_loopback, serve, start
from interplab.dashboard.sources import DashboardError

__all__ = ["DashboardError", "Running", "create_app", "is_loopback", "serve", "start"]
