"""Re-running a recorded run and saying, number by number, whether it came out the same.

Techniques register how to run themselves from a record (the store imports no technique):

    from interplab.store import rerun
    rerun.register("direct_logit_attribution",
                   lambda config, model_info, inputs: dla(load(model_info["name"]), inputs,
                                                          config=DLAConfig(**config)))

``fn(config: dict, model_info: dict) -> Result``; a function that also takes ``inputs`` gets the
inputs the run stored (``recording(..., inputs=prompts)``).

1. Read the run's record and stored result; find the registered function for its technique.
2. Call it with the stored config, model description and inputs, recorded as a new run whose
   ``rerun_of`` names the original.
3. Decide what "the same" means: exactly (tolerance 0) when the seed, the weights' sha256 and
   every library version match the record; otherwise within ``rtol``/``atol``, and the report
   says which of these differed.
4. Compare the new result with the stored one number by number (`compare.compare`, provenance
   left out), and the data hash the new result records with the stored one.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from interplab.store import capture
from interplab.store.artifacts import result_dict
from interplab.store.compare import Comparison, compare
from interplab.store.db import StoreError

if TYPE_CHECKING:
    from interplab.store.project import Project

RerunFn = Callable[..., Any]
_REGISTRY: dict[str, RerunFn] = {}

DEFAULT_RTOL = 1e-5
DEFAULT_ATOL = 1e-8


def register(technique: str, fn: RerunFn) -> RerunFn:
    """Registers how to re-run ``technique``: ``fn(config, model_info[, inputs]) -> Result``."""
    if not technique or not callable(fn):
        raise StoreError("register(technique, fn) needs a technique name and a function")
    _REGISTRY[technique] = fn
    return fn


def registered() -> list[str]:
    """Returns the techniques that can be re-run."""
    return sorted(_REGISTRY)


@dataclass(frozen=True)
class RerunReport:
    """How a re-run compares with the run it repeats."""

    original: int
    rerun: int | None
    technique: str
    exact_expected: bool
    why_not_exact: tuple[str, ...]
    comparison: Comparison
    data_matches: bool | None

    @property
    def matches(self) -> bool:
        """Whether every number matched (exactly, or within tolerance where that was stated)."""
        exact_ok = self.comparison.exact if self.exact_expected else self.comparison.matches
        return exact_ok and self.data_matches is not False

    def describe(self) -> str:
        """Returns the verdict and the differences, one per line."""
        c = self.comparison
        new = f"run {self.rerun}" if self.rerun is not None else "the re-run (not recorded)"
        lines = [f"re-ran run {self.original} ({self.technique}) as {new}"]
        if self.exact_expected:
            lines.append("same seed, weights and library versions: every number must match exactly")
        else:
            lines.append(
                f"not an exact repeat ({'; '.join(self.why_not_exact)}): numbers must match "
                f"within rtol={c.rtol:g}, atol={c.atol:g}"
            )
        if self.data_matches is False:
            lines.append("the re-run read different data (its data sha256 differs)")
        lines.append(
            f"{c.n_numbers} numbers compared: {c.n_equal} identical, {c.n_within} within "
            f"tolerance, {c.n_differences} different (largest absolute difference "
            f"{c.max_abs_diff:.3g})"
        )
        for d in c.differences:
            diff = "" if d.abs_diff is None else f" (|diff| {d.abs_diff:.3g})"
            lines.append(f"  {d.path}: stored {d.stored!r}, now {d.new!r}{diff}")
        if c.n_differences > len(c.differences):
            lines.append(f"  ... and {c.n_differences - len(c.differences)} more")
        lines.append("MATCH" if self.matches else "MISMATCH")
        return "\n".join(lines)


def _call(fn: RerunFn, config: dict[str, Any], model_info: dict[str, Any], inputs: Any) -> Any:
    params = inspect.signature(fn).parameters
    takes_inputs = "inputs" in params or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()
    )
    if inputs is not None and takes_inputs:
        return fn(config, model_info, inputs=inputs)
    return fn(config, model_info)


def _why_not_exact(
    stored: Any, new_prov: dict[str, Any], new_versions: dict[str, str]
) -> list[str]:
    reasons = []
    new_seed = new_prov.get("seed", stored.seed)  # a result without provenance ran as asked
    if stored.seed != new_seed:
        reasons.append(f"seed {stored.seed} then, {new_seed} now")
    new_sha = (new_prov.get("model") or {}).get("weights_sha256")
    if stored.model_sha256 and new_sha and stored.model_sha256 != new_sha:
        reasons.append(f"weights sha256 {stored.model_sha256[:12]} then, {new_sha[:12]} now")
    for pkg in sorted(set(stored.versions) | set(new_versions)):
        then, now = stored.versions.get(pkg), new_versions.get(pkg)
        if then != now:
            reasons.append(f"{pkg} {then} then, {now} now")
    return reasons


def rerun(
    project: Project,
    run_id: int,
    *,
    rtol: float = DEFAULT_RTOL,
    atol: float = DEFAULT_ATOL,
    record: bool = True,
) -> RerunReport:
    """Re-executes a recorded run with its registered function and compares the numbers."""
    stored = project.run(run_id)
    if stored.technique not in _REGISTRY:
        known = ", ".join(registered()) or "none"
        raise StoreError(
            f"no way to re-run {stored.technique!r} is registered (registered: {known}); "
            "a technique registers with interplab.store.rerun.register(name, fn)"
        )
    if stored.artifact("result") is None:
        raise StoreError(f"run {run_id} stored no result ({stored.status}); nothing to compare")
    old = project.stored_json(run_id, "result")
    inputs = project.stored_json(run_id, "inputs")
    fn = _REGISTRY[stored.technique]
    with project.recording(
        stored.technique,
        config=stored.config,
        model_info=stored.model,
        seed=stored.seed,
        data_sha256=stored.data_sha256,
        inputs=inputs,
        label=f"rerun of {run_id}",
        record=record,
    ) as run:
        result = _call(fn, dict(stored.config), dict(stored.model), inputs)
        run.finish(result)
    if run.id is not None:
        with project.write() as conn:
            conn.execute("UPDATE runs SET rerun_of = ? WHERE id = ?", (int(run_id), run.id))
    new = json.loads(json.dumps(result_dict(result), allow_nan=False))
    prov = new.get("provenance") or {}
    reasons = _why_not_exact(stored, prov, prov.get("versions") or capture.versions())
    exact = not reasons
    comparison = compare(
        old, new, rtol=0.0 if exact else rtol, atol=0.0 if exact else atol, skip=("provenance",)
    )
    new_data = prov.get("data_sha256")
    data_ok = None if not (stored.data_sha256 and new_data) else stored.data_sha256 == new_data
    return RerunReport(run_id, run.id, stored.technique, exact, tuple(reasons), comparison, data_ok)


__all__ = ["DEFAULT_ATOL", "DEFAULT_RTOL", "RerunReport", "register", "registered", "rerun"]
