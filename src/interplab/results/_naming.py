"""Naming summary cells by what they are (a Site, a position and its token) instead of an index.

`interplab.stats.Summary.describe` names its largest cell by its index in the grid (``cell
(30,)``); a result knows what each index means (the lens's row 30 is ``L29.resid_post``, since row
0 is the embedding), so it renames that cell before the sentence reaches a reader.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from interplab.stats import Summary


def name_top_cell(summary: Summary, name: Callable[[tuple[int, ...]], str]) -> str:
    """Returns ``summary.describe()`` with its largest cell named by ``name(cell_index)`` instead
    of the raw index (``cell (30,)`` becomes e.g. ``L29.resid_post``)."""
    text = summary.describe()
    if summary.cell_shape == ():
        return text
    magnitude = np.where(np.isnan(summary.mean), -np.inf, np.abs(summary.mean))
    top = tuple(int(i) for i in np.unravel_index(int(np.argmax(magnitude)), summary.cell_shape))
    return text.replace(f"at cell {top}", f"at {name(top)}", 1)


__all__ = ["name_top_cell"]
