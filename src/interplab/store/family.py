"""Multiple-comparison honesty across a project: correct a claim's p-values over a named family.

A cell that passes Holm within its own sweep may not pass once the ten other sweeps run for the
same hypothesis are counted. The user names the family a claim belongs to:

- ``runs:4,7,9``: those runs (a finding's default: its own evidence runs);
- ``H3`` or ``hypothesis:3``: every run linked to hypothesis 3;
- ``S2`` or ``sprint:2``: every run of sprint 2;
- ``technique:NAME``: every finished run of that technique; ``all``: every finished run.

1. Resolve the family to runs; take each run's summary (computed from its stored result when
   first asked) and its per-cell p-values (NaN cells were not tested and do not count).
2. Correct all of them together with `interplab.stats.correct_pvalues` (Holm by default, or
   Benjamini-Hochberg), so ``n_tests`` is the number of cells in the whole family.
3. Report per run: its cells, its smallest raw p-value, its smallest adjusted p-value within
   the family, and how many of its cells survive at ``alpha``. Runs without a summary are
   listed, not silently dropped.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from interplab.store.db import StoreError

if TYPE_CHECKING:
    from interplab.store.project import Project

_FAMILY = re.compile(
    r"^(?:(?P<h>H|hypothesis:)(?P<hid>\d+)|(?P<s>S|sprint:)(?P<sid>\d+)|runs:(?P<runs>[\d,\s]+)"
    r"|technique:(?P<tech>.+)|(?P<all>all))$"
)


@dataclass(frozen=True)
class FamilySpec:
    """A parsed family: which kind and which key (a hypothesis, sprint, run list, technique)."""

    kind: Literal["hypothesis", "sprint", "runs", "technique", "all"]
    key: str

    def __str__(self) -> str:
        return {
            "hypothesis": f"H{self.key}",
            "sprint": f"S{self.key}",
            "runs": f"runs:{self.key}",
            "technique": f"technique:{self.key}",
            "all": "all",
        }[self.kind]

    def describe(self) -> str:
        """Returns the family in words, for the report."""
        return {
            "hypothesis": f"every run linked to hypothesis H{self.key}",
            "sprint": f"every run of sprint S{self.key}",
            "runs": f"runs {self.key.replace(',', ', ')}",
            "technique": f"every finished {self.key} run",
            "all": "every finished run of the project",
        }[self.kind]


def parse_family(text: str) -> FamilySpec:
    """Returns the family named by ``text`` (see the module docstring for the forms)."""
    m = _FAMILY.match(text.strip())
    if m is None:
        raise StoreError(
            f"family {text!r} is not one of: H<id>, hypothesis:<id>, S<id>, sprint:<id>, "
            "runs:<id>,<id>..., technique:<name>, all"
        )
    if m["hid"]:
        return FamilySpec("hypothesis", m["hid"])
    if m["sid"]:
        return FamilySpec("sprint", m["sid"])
    if m["runs"]:
        ids = [int(x) for x in re.split(r"[,\s]+", m["runs"].strip()) if x]
        return FamilySpec("runs", ",".join(str(i) for i in dict.fromkeys(ids)))
    if m["tech"]:
        return FamilySpec("technique", m["tech"].strip())
    return FamilySpec("all", "")


def family_runs(project: Project, spec: FamilySpec) -> list[int]:
    """Returns the ids of the runs in a family, oldest first."""
    if spec.kind == "runs":
        ids = [int(x) for x in spec.key.split(",")]
        for i in ids:
            project.run(i)
        return sorted(ids)
    if spec.kind == "hypothesis":
        project.get_hypothesis(int(spec.key))
        runs = project.runs(hypothesis=int(spec.key))
    elif spec.kind == "sprint":
        runs = project.runs(sprint=int(spec.key))
    elif spec.kind == "technique":
        runs = project.runs(technique=spec.key, status="done")
    else:
        runs = project.runs(status="done")
    return sorted(r.id for r in runs)


@dataclass(frozen=True)
class RunTests:
    """One run's cells within a corrected family."""

    run_id: int
    n_cells: int
    smallest_p: float
    smallest_p_within_run: float  # the run's own correction (over its cells alone)
    smallest_p_family: float  # corrected over the whole family
    significant_family: int


@dataclass(frozen=True)
class FamilyCorrection:
    """A family's p-values corrected together: how many tests stand behind each run's cells."""

    family: FamilySpec
    method: Literal["holm", "bh"]
    alpha: float
    n_tests: int
    n_runs: int  # runs of the family that have p-values
    runs: tuple[RunTests, ...]
    runs_without_summary: tuple[int, ...]

    def for_run(self, run_id: int) -> RunTests | None:
        """Returns the corrected cells of one run, or None when it has no summary."""
        return next((r for r in self.runs if r.run_id == run_id), None)

    def describe(self) -> str:
        """Returns the family's correction in one sentence, for the report."""
        label = "Holm" if self.method == "holm" else "Benjamini-Hochberg"
        survivors = sum(r.significant_family for r in self.runs)
        runs = f"{self.n_runs} run" + ("" if self.n_runs == 1 else "s")
        text = (
            f"{self.n_tests} tests in the family ({self.family.describe()}; {runs} with p-values),"
            f" {label}-corrected together: {survivors} cells survive at {self.alpha:g}"
        )
        if self.runs_without_summary:
            missing = ", ".join(str(r) for r in self.runs_without_summary)
            text += f"; runs without a summary, so not counted: {missing}"
        return text + "."


def _pvalues(summary: dict) -> tuple[np.ndarray, np.ndarray]:
    def arr(key: str) -> np.ndarray:
        raw = summary.get(key)
        values = np.asarray(raw if isinstance(raw, list) else [raw], dtype=object).ravel()
        return np.array([np.nan if v is None else float(v) for v in values], dtype=float)

    return arr("p_value"), arr("p_adjusted")


def correct_family(
    project: Project,
    family: str | FamilySpec,
    *,
    method: Literal["holm", "bh"] = "holm",
    alpha: float = 0.05,
    runs: Sequence[int] | None = None,
) -> FamilyCorrection:
    """Returns the family's p-values corrected together; ``runs`` limits the per-run rows
    reported (the correction always counts the whole family)."""
    from interplab.stats import correct_pvalues  # scipy loads only when a family is corrected

    spec = parse_family(family) if isinstance(family, str) else family
    ids = family_runs(project, spec)
    blocks: list[tuple[int, np.ndarray, np.ndarray]] = []
    missing: list[int] = []
    for rid in ids:
        summary = project.summary(rid)
        if summary is None:
            missing.append(rid)
            continue
        raw, within = _pvalues(summary)
        blocks.append((rid, raw, within))
    every = np.concatenate([b[1] for b in blocks]) if blocks else np.zeros(0)
    corrected = correct_pvalues(every, method=method, alpha=alpha) if every.size else None
    rows, start = [], 0
    for rid, raw, within in blocks:
        stop = start + raw.size
        adj = corrected.p_adjusted[start:stop] if corrected is not None else raw
        rej = corrected.reject[start:stop] if corrected is not None else np.zeros(raw.shape, bool)
        start = stop
        if runs is not None and rid not in runs:
            continue
        rows.append(
            RunTests(
                rid, int((~np.isnan(raw)).sum()), _min(raw), _min(within), _min(adj), int(rej.sum())
            )
        )
    return FamilyCorrection(
        family=spec,
        method=method,
        alpha=float(alpha),
        n_tests=0 if corrected is None else corrected.n_tests,
        n_runs=len(blocks),
        runs=tuple(rows),
        runs_without_summary=tuple(missing),
    )


def _min(values: np.ndarray) -> float:
    finite = values[~np.isnan(values)]
    return float(finite.min()) if finite.size else float("nan")


__all__ = [
    "FamilyCorrection",
    "FamilySpec",
    "RunTests",
    "correct_family",
    "family_runs",
    "parse_family",
]
