"""The dictionary browser: feature indexes and feature pages, read from JSON (never a model).

`interplab sae features` and `dictionaries.feature_pages` write a `FeatureIndex`
(``index.json``: every feature's density, strongest activation and top token) and one
`FeaturePage` per chosen feature (``f<j>.json``). The browser finds them in two places:

1. runs of the dictionary techniques whose stored result is an index, with pages stored as
   artifacts named ``f<j>.json`` (or ``features/f<j>.json``), and any run artifact that is an
   index;
2. index files inside the project folder (`sources.scan`), with their pages beside them.

`feature_table` sorts and pages the index; `load_page` reads one page back into its class
through the results codec, so a malformed file gives a clear error naming the field.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

import numpy as np

from interplab.dashboard.sources import DashboardError, Source, read_json, resolve, scan
from interplab.store import Project
from interplab.store.queries import runs_by_techniques

if TYPE_CHECKING:  # the schemas import scipy (seconds): loaded when a page first needs them
    from interplab.results.dictionaries import FeatureIndex, FeaturePage

DICTIONARY_TECHNIQUES = (
    "dictionary_features",
    "dictionary_feature",
    "dictionary_training",
    "dictionary_eval",
    "dictionary_encode",
)
FEATURE_SORTS = ("feature", "density", "max_activation")


@dataclass(frozen=True)
class IndexSource:
    """Where a feature index is and what it covers, as the browser lists it."""

    key: str
    title: str
    run_id: int | None


def index_sources(project: Project) -> list[IndexSource]:
    """Returns every feature index the browser can open: from runs, then project files."""
    out: list[IndexSource] = []
    for run in runs_by_techniques(project, list(DICTIONARY_TECHNIQUES)):
        for a in run.artifacts:
            is_index = (a.kind == "result" and run.technique == "dictionary_features") or (
                PurePosixPath(a.name).name == "index.json"
            )
            if is_index:
                out.append(
                    IndexSource(f"run:{run.id}:{a.name}", f"run {run.id} · {a.name}", run.id)
                )
    for f in scan(project):
        if f.kind == "features":
            out.append(IndexSource(f"file:{f.relative}", f.relative, None))
    return out


def load_index(project: Project, key: str) -> tuple[Source, FeatureIndex]:
    """Returns the index a source key names, read through the results codec."""
    from interplab.results import ResultError
    from interplab.results.dictionaries import FeatureIndex

    src = resolve(project, key)
    data = read_json(src.path, f"the feature index {key}")
    try:
        return src, FeatureIndex.from_dict(data)
    except ResultError as e:
        raise DashboardError(f"{key} is not a feature index: {e}", 422) from None


def page_key(project: Project, src: Source, index: FeatureIndex, feature: int) -> str | None:
    """Returns the source key of feature ``feature``'s page beside the index, if one exists."""
    name = index.pages.get(feature)
    stem = f"f{feature}.json" if name is None else PurePosixPath(name).with_suffix(".json").name
    if src.run_id is not None:
        rec = project.run(src.run_id)
        folder = PurePosixPath(src.name).parent
        for candidate in (str(folder / stem), stem, f"features/{stem}"):
            candidate = candidate.removeprefix("./")
            if any(a.name == candidate for a in rec.artifacts):
                return f"run:{src.run_id}:{candidate}"
        return None
    relative = str(PurePosixPath(src.name).parent / stem).removeprefix("./")
    root = project.root.resolve()
    return f"file:{relative}" if (root / relative).is_file() else None


def feature_table(
    index: FeatureIndex,
    *,
    sort: str = "density",
    descending: bool = True,
    offset: int = 0,
    limit: int = 100,
    query: str = "",
) -> tuple[list[dict[str, Any]], int]:
    """Returns one page of the index's features (sorted, optionally only those whose top token
    contains ``query``) and how many matched."""
    if sort not in FEATURE_SORTS:
        raise DashboardError(
            f"cannot sort features by {sort!r}; sort by: {', '.join(FEATURE_SORTS)}"
        )
    density = np.asarray(index.density, dtype=float)
    strongest = np.asarray(index.max_activation, dtype=float)
    keep = np.arange(len(density))
    if query:
        q = query.lower()
        keep = np.array([i for i in keep if q in index.top_token[i].lower()], dtype=int)
    key = {
        "feature": keep.astype(float),
        "density": density[keep],
        "max_activation": strongest[keep],
    }[sort]
    key = np.where(np.isnan(key), -np.inf, key)
    order = keep[np.argsort(-key if descending else key, kind="stable")]
    rows = [
        {
            "feature": int(j),
            "density": float(density[j]),
            "max_activation": float(strongest[j]),
            "top_token": index.top_token[j] if j < len(index.top_token) else "",
            "has_page": int(j) in index.pages,
            "random": int(j) in index.random_features,
        }
        for j in order[offset : offset + limit]
    ]
    return rows, len(keep)


def load_page(project: Project, key: str) -> FeaturePage:
    """Returns the feature page a source key names, read through the results codec."""
    from interplab.results import ResultError
    from interplab.results.dictionaries import FeaturePage

    src = resolve(project, key)
    data = read_json(src.path, f"the feature page {key}")
    try:
        return FeaturePage.from_dict(data)
    except ResultError as e:
        raise DashboardError(f"{key} is not a feature page: {e}", 422) from None


def example_tokens(example: Any, scale: float) -> list[dict[str, Any]]:
    """Returns an example's tokens with a 0-1 shade for each one's activation."""
    scale = scale if scale > 0 else 1.0
    return [
        {
            "text": tok,
            "act": float(a),
            "shade": max(0.0, min(1.0, float(a) / scale)),
            "center": i == example.center,
        }
        for i, (tok, a) in enumerate(zip(example.tokens, example.activations, strict=False))
    ]


__all__ = [
    "DICTIONARY_TECHNIQUES",
    "FEATURE_SORTS",
    "IndexSource",
    "example_tokens",
    "feature_table",
    "index_sources",
    "load_index",
    "load_page",
    "page_key",
]
