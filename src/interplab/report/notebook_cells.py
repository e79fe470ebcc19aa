"""Naming a summary's cells in the project report: by Site, position and token, never by index.

A run's summary is stored with cells numbered by index (``cell (12, 5)``); the result it came
from knows what each index is. `cell_label` asks it: a patching grid's cell is its `Site` and,
per position, the position and its clean token (``L12.resid_pre @ 5 ' John'``); a traced cell
the restored Site, position and token; a lens or DLA cell its Site; a probe's its layer's
residual Site; a steering cell its coefficient; a top-examples cell its direction's label.
`describe` is the summary's sentences with the strongest cell so named.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from interplab.results.dla import DLAResult
from interplab.results.feature_patching import FeaturePatchingResult
from interplab.results.lens import LensResult
from interplab.results.patching import GridResult
from interplab.results.patching_compare import AblationComparison
from interplab.results.probes import ProbeResult
from interplab.results.steering import SteeringResult
from interplab.results.top_examples import TopExamplesResult
from interplab.results.tracing import TracingResult
from interplab.sites import Site
from interplab.stats import Summary


def _label(result: Any, cell: tuple[int, ...]) -> str | None:
    if isinstance(result, GridResult):
        return result.cell(None, cell).label
    if isinstance(result, AblationComparison):
        return result.result(None).cell(None, cell).label
    if isinstance(result, FeaturePatchingResult):
        return result.cell(cell).label
    if isinstance(result, TracingResult):
        layer, pos = cell
        return f"{result.site('resid', layer)} @ {pos} {result.tokens[0][pos]!r}"
    if isinstance(result, LensResult | DLAResult):
        return str(result.sites[cell[0]])
    if isinstance(result, ProbeResult):
        return str(Site(result.layers[cell[0]], result.component))  # type: ignore[arg-type]
    if isinstance(result, SteeringResult):
        return f"coefficient {result.coefficients[cell[0]]:g}"
    if isinstance(result, TopExamplesResult):
        return result.labels[cell[0]]
    return None


def cell_label(result: Any, cell: tuple[int, ...]) -> str:
    """Returns what the summary cell at index ``cell`` of ``result`` is (``"scalar"`` for a
    summary of one number; ``"cell (i, j)"`` for a result type that does not say)."""
    if not cell:
        return "scalar"
    try:
        label = None if result is None else _label(result, cell)
    except (IndexError, KeyError, ValueError, TypeError):
        label = None  # a cell the result cannot name (another component's grid, say)
    return label if label is not None else f"cell {cell}"


def describe(summary: Summary, result: Any) -> str:
    """Returns ``summary.describe()`` with its strongest cell named by `cell_label`."""
    text = summary.describe()
    if summary.cell_shape == () or bool(np.isnan(summary.mean).all()):
        return text
    magnitude = np.where(np.isnan(summary.mean), -np.inf, np.abs(summary.mean))
    top = tuple(int(i) for i in np.unravel_index(int(np.argmax(magnitude)), summary.cell_shape))
    return text.replace(f"at cell {top}", f"at {cell_label(result, top)}", 1)


__all__ = ["cell_label", "describe"]
