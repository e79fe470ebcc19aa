"""Re-running a recorded run and saying, number by number, whether it came out the same.

Every run a `store.recorded` function recorded stored its call whole (`calls`: the function's
import path and its arguments, arrays as safetensors), so it re-runs without any registration.
A run recorded with `recording` re-runs through a function registered for its technique:

    from interplab.store import rerun
    rerun.register("my_sweep", lambda config, model_info, inputs: my_sweep(inputs, **config))

``fn(config: dict, model_info: dict) -> Result``; a function that also takes ``inputs`` gets the
inputs the run stored (``recording(..., inputs=prompts)``). A registration wins over a stored call.

1. Read the run's record and stored result. Rebuild the stored call (loading the model by its
   recorded name, dtype and device, unless a model is given), or find the registered function;
   when neither exists, or the call could not be stored, say exactly why.
2. Call it, recorded as a new run whose ``rerun_of`` names the original (with the same call).
3. Decide what "the same" means: exactly (tolerance 0) when the seed, the weights' sha256, the
   dtype and device, and every library version match the record; otherwise within
   ``rtol``/``atol``, and the report says which of these differed.
4. Compare the new result with the stored one number by number (`compare.compare`, provenance
   left out), and the data hash the new result records with the stored one.
"""

from __future__ import annotations

import importlib
import inspect
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from interplab.store import calls, capture
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
    """Returns the techniques with a registered re-run function (a run a `store.recorded`
    function recorded re-runs from its stored call without one)."""
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
    new_model = new_prov.get("model") or {}
    new_sha = new_model.get("weights_sha256")
    if stored.model_sha256 and new_sha and stored.model_sha256 != new_sha:
        reasons.append(f"weights sha256 {stored.model_sha256[:12]} then, {new_sha[:12]} now")
    for key in ("dtype", "device"):
        then, now = stored.model.get(key), new_model.get(key)
        if then and now and then != now:
            reasons.append(f"{key} {then} then, {now} now")
    for pkg in sorted(set(stored.versions) | set(new_versions)):
        then, now = stored.versions.get(pkg), new_versions.get(pkg)
        if then != now:
            reasons.append(f"{pkg} {then} then, {now} now")
    return reasons


def _stored_call(project: Project, stored: Any) -> tuple[calls.StoredCall, calls.EncodedCall]:
    """Returns the run's stored call, read back and as bytes to store with the re-run."""
    call = project.stored_call(stored.id)
    if call is None:
        known = ", ".join(registered()) or "none"
        raise StoreError(
            f"run {stored.id} ({stored.technique}) stored no call to repeat (it was recorded "
            "with store.recording, not by a store.recorded function) and no way to re-run "
            f"{stored.technique!r} is registered (registered: {known}); register one with "
            "interplab.store.rerun.register(name, fn)"
        )
    if call.not_stored:
        raise StoreError(
            f"run {stored.id} ({stored.technique}) cannot be re-run: when it was recorded, its "
            f"call could not be stored: {call.not_stored}"
        )
    art, arrays = stored.artifact("call"), stored.artifact("call-arrays")
    encoded = calls.EncodedCall(
        call.function,
        project.artifact_path(art.sha256).read_bytes(),
        None if arrays is None else project.artifact_path(arrays.sha256).read_bytes(),
        None,
    )
    return call, encoded


def rerun(
    project: Project,
    run_id: int,
    *,
    rtol: float = DEFAULT_RTOL,
    atol: float = DEFAULT_ATOL,
    record: bool = True,
    model: Any = None,
    modules: Sequence[str] = (),
) -> RerunReport:
    """Re-executes a recorded run and compares the numbers with the stored ones.

    ``model`` is used instead of loading the recorded model by name (a model the store cannot
    load by name, such as a test's tiny one; other weights make the comparison inexact);
    ``modules`` are modules outside interplab whose functions and classes the stored call may
    name (they are imported)."""
    stored = project.run(run_id)
    if stored.artifact("result") is None:
        raise StoreError(f"run {run_id} stored no result ({stored.status}); nothing to compare")
    old = project.stored_json(run_id, "result")
    inputs = project.stored_json(run_id, "inputs")
    registered_fn = _REGISTRY.get(stored.technique)
    encoded = None
    if registered_fn is None:
        call, encoded = _stored_call(project, stored)
        for name in modules:
            importlib.import_module(name)
        fn = calls.resolve_function(call, stored.technique, modules)
        context: dict[str, Any] = {} if model is None else {"model": model}
        args, kwargs = calls.decode_call(call, fn, context=context, allow=modules)
    with project.recording(
        stored.technique,
        config=stored.config,
        model_info=stored.model,
        seed=stored.seed,
        data_sha256=stored.data_sha256,
        inputs=inputs,
        label=f"rerun of {run_id}",
        record=record,
        call=encoded,
    ) as run:
        if registered_fn is not None:
            result = _call(registered_fn, dict(stored.config), dict(stored.model), inputs)
        else:
            result = fn(*args, **kwargs)
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
