"""Result schemas: what every technique returns, as plain data (numpy, Sites, provenance; no torch).

One module per technique family holds its result dataclasses (``results/dla.py``,
``results/patching.py``, ...). They import `interplab.stats`, `interplab.sites` and
`interplab.provenance` only, so the report, the store and the dashboard read and draw results
without torch. `load` reads any result file back into its class.
"""

from interplab.results.base import Result, ResultError, load, result_type

__all__ = ["Result", "ResultError", "load", "result_type"]
