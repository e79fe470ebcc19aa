"""Recording from anywhere: the current project, a context manager and a decorator.

    from interplab import store

    with store.recording("patching", config=cfg, model_info=model.info, seed=0,
                         data_sha256=data_hash(pairs), inputs=pairs) as run:
        result = run.finish(patch_sweep(model, pairs, cfg))

    @store.recorded("direct_logit_attribution", inputs="prompts")
    def direct_logit_attribution(model, prompts, *, config=None): ...

1. `current` opens the project chosen by argument, ``INTERPLAB_PROJECT``, the enclosing folder
   or the per-user default, once per process and path (a forked child opens its own).
2. `recording` records a block as a run of that project; `recorded` records each call of a
   function that returns a `Result`, taking config, model, seed and data hash from the
   result's provenance. Both record nothing with ``record=False`` or ``INTERPLAB_RECORD=0``,
   and nothing more inside a run already being recorded.
"""

from __future__ import annotations

import functools
import inspect
import os
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, TypeVar

from interplab.store.calls import MARK, encode_call
from interplab.store.location import resolve
from interplab.store.project import Project
from interplab.store.recording import RunHandle, active, enabled, record, suppressed

F = TypeVar("F", bound=Callable[..., Any])

_OPEN: dict[tuple[int, Path], Project] = {}
_LOCK = threading.Lock()


def current(project: str | Path | Project | None = None) -> Project:
    """Returns the open project chosen by argument, environment, folder or default."""
    if isinstance(project, Project):
        return project
    where = resolve(project)
    key = (os.getpid(), where.db)
    with _LOCK:
        if key not in _OPEN:
            _OPEN[key] = Project(where)
        return _OPEN[key]


def recording(
    technique: str,
    *,
    config: Any = None,
    model_info: Any = None,
    seed: int | None = None,
    data_sha256: str | None = None,
    inputs: Any = None,
    label: str | None = None,
    record: bool | None = None,
    project: str | Path | Project | None = None,
) -> AbstractContextManager[RunHandle]:
    """Records the block as one run in the current project (see `Project.recording`); a no-op
    handle when recording is off or a run is already being recorded."""
    on = enabled(record) and active() is None
    return _record_in(
        current(project) if on else None,
        technique,
        config=config,
        model_info=model_info,
        seed=seed,
        data_sha256=data_sha256,
        inputs=inputs,
        label=label,
    )


_record_in = record


def recorded(
    technique: str, *, inputs: str | None = None, project: str | Path | None = None
) -> Callable[[F], F]:
    """Records every call of the decorated function (which returns a `Result`) as a run.

    The call itself (the function's import path and its arguments, `calls`) is stored so that
    `rerun` can make it again; an argument that cannot be stored (a lambda, say) is recorded
    as the reason the run cannot be re-run. ``inputs`` names the argument holding the data
    (prompts, pairs) to store as readable JSON for the report and the data hash. The call takes
    an extra ``record=`` keyword (unless the function has its own) to switch recording off."""

    def decorate(fn: F) -> F:
        signature = inspect.signature(fn)
        own_record = "record" in signature.parameters
        if inputs is not None and inputs not in signature.parameters:
            raise TypeError(f"{fn.__name__} has no argument {inputs!r} to store as inputs")

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            flag = kwargs.get("record") if own_record else kwargs.pop("record", None)
            if not enabled(flag) or active() is not None:
                with suppressed():  # nor anything it calls
                    return fn(*args, **kwargs)
            try:
                bound = signature.bind(*args, **kwargs).arguments
            except TypeError:
                return fn(*args, **kwargs)  # let the function say what is wrong with its call
            arguments = {k: v for k, v in bound.items() if k != "record"}
            call = encode_call(wrapper, arguments)
            data = bound.get(inputs) if inputs is not None else None
            with _record_in(current(project), technique, inputs=data, call=call) as run:
                return run.finish(fn(*args, **kwargs))

        setattr(wrapper, MARK, technique)
        return wrapper  # type: ignore[return-value]

    return decorate


__all__ = ["current", "recorded", "recording"]
