"""High-level causal models, written as small Python functions, and the tasks that pose them.

A causal abstraction claim (Geiger et al. 2021, "Causal Abstractions of Neural Networks",
NeurIPS; Geiger et al. 2023, "Causal Abstraction for Faithful Model Interpretation",
arXiv:2301.04709) compares a network with a small, readable program:

1. `CausalModel`: named variables, each a function of the input example and of the variables
   computed before it (dict order is evaluation order), and an output function. Setting a
   variable (an intervention) replaces its computed value; every later variable and the output
   are recomputed from it.
2. The counterfactual of an interchange: run the model on the *source* example, take the values
   of the chosen variables, and set them while running on the *base* example
   (`CausalModel.counterfactual`). That output is what a network aligned with the variables
   must produce when the matching activations are swapped from the source run into the base run.
3. `AbstractionTask` adds what the language model needs: a sampler of input examples, the
   prompt of an example (a string, or token ids for models without a tokenizer), and the
   candidate next tokens the model's answer is read among (its prediction is the candidate with
   the largest logit at the last position).

`load_task("package.module:function")` imports a task the user wrote: the attribute is an
`AbstractionTask` or a function of no arguments that returns one.
"""

from __future__ import annotations

import importlib
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from interplab.results.causal_abstraction import AbstractionError

Example = Any
"""One input of the high-level model: whatever the task's sampler returns (often a dict)."""
Values = Mapping[str, Any]
VariableFn = Callable[[Example, Values], Any]
OutputFn = Callable[[Example, Values], Any]


@dataclass(frozen=True)
class CausalModel:
    """A high-level model: ``variables`` (name -> fn(example, values so far)), then ``output``
    (fn(example, all values)). Variables are evaluated in the mapping's order."""

    variables: Mapping[str, VariableFn]
    output: OutputFn
    name: str = "causal_model"

    def __post_init__(self) -> None:
        if not self.variables:
            raise AbstractionError(f"causal model {self.name!r} has no variables")
        for key, fn in self.variables.items():
            if not isinstance(key, str) or not key:
                raise AbstractionError(f"variable names must be non-empty strings, got {key!r}")
            if not callable(fn):
                raise AbstractionError(f"variable {key!r} of {self.name!r} is not a function")
        if not callable(self.output):
            raise AbstractionError(f"the output of {self.name!r} is not a function")

    def values(self, example: Example, interventions: Mapping[str, Any] | None = None) -> dict:
        """Returns every variable's value on ``example``, with ``interventions`` (name ->
        value) set instead of computed."""
        setting = dict(interventions or {})
        unknown = sorted(set(setting) - set(self.variables))
        if unknown:
            raise AbstractionError(
                f"{self.name!r} has no variable {', '.join(unknown)}; variables: "
                f"{', '.join(self.variables)}"
            )
        out: dict[str, Any] = {}
        for key, fn in self.variables.items():
            out[key] = setting[key] if key in setting else fn(example, dict(out))
        return out

    def predict(self, example: Example, interventions: Mapping[str, Any] | None = None) -> Any:
        """Returns the output on ``example`` (with ``interventions`` set)."""
        return self.output(example, self.values(example, interventions))

    def counterfactual(self, base: Example, source: Example, variables: Sequence[str]) -> Any:
        """Returns the output on ``base`` with ``variables`` set to their values on ``source``."""
        on_source = self.values(source)
        return self.predict(base, {v: on_source[v] for v in self.check_variables(variables)})

    def check_variables(self, variables: Sequence[str] | str) -> tuple[str, ...]:
        """Returns ``variables`` as a tuple, or an error naming the model's variables."""
        names = (variables,) if isinstance(variables, str) else tuple(variables)
        if not names:
            raise AbstractionError(
                f"name at least one variable to interchange; {self.name!r} has: "
                f"{', '.join(self.variables)}"
            )
        unknown = [v for v in names if v not in self.variables]
        if unknown:
            raise AbstractionError(
                f"{self.name!r} has no variable {', '.join(unknown)}; variables: "
                f"{', '.join(self.variables)}"
            )
        return names


Prompt = str | Sequence[int]
Token = str | int


@dataclass(frozen=True)
class AbstractionTask:
    """A causal model posed to a language model: ``sample(rng)`` draws an example,
    ``prompt(example)`` writes it (text, or token ids), and ``candidates(example)`` lists the
    next tokens (strings such as ``' Mary'``, or ids) the model's answer is read among; the causal
    model's output must be one of them."""

    causal_model: CausalModel
    sample: Callable[[random.Random], Example]
    prompt: Callable[[Example], Prompt]
    candidates: Callable[[Example], Sequence[Token]]
    name: str = "task"
    description: str = ""
    slots: tuple[str, ...] = ()  # what each candidate position means, e.g. ("A", "B")

    def __post_init__(self) -> None:
        if not isinstance(self.causal_model, CausalModel):
            raise AbstractionError(
                f"task {self.name!r}: causal_model must be a CausalModel, got "
                f"{type(self.causal_model).__name__}"
            )
        for field in ("sample", "prompt", "candidates"):
            if not callable(getattr(self, field)):
                raise AbstractionError(f"task {self.name!r}: {field} must be a function")


def load_task(spec: str) -> AbstractionTask:
    """Returns the task at ``"package.module:attribute"``: an `AbstractionTask`, or a function of
    no arguments that returns one."""
    if not isinstance(spec, str) or spec.count(":") != 1:
        raise AbstractionError(
            f"a task is given as 'package.module:function', got {spec!r} (e.g. "
            "'interplab.techniques.causal_abstraction.tasks:ioi_position')"
        )
    module_name, attr = spec.split(":")
    if not module_name or not attr:
        raise AbstractionError(f"{spec!r} needs both a module and an attribute: 'module:function'")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        raise AbstractionError(
            f"cannot import {module_name!r} for task {spec!r}: {e}; the module must be importable "
            "(installed, or on PYTHONPATH / in the current folder)"
        ) from None
    if not hasattr(module, attr):
        public = sorted(n for n in vars(module) if not n.startswith("_"))
        raise AbstractionError(
            f"module {module_name!r} has no attribute {attr!r}; it has: {', '.join(public[:20])}"
        )
    obj = getattr(module, attr)
    if callable(obj) and not isinstance(obj, AbstractionTask):
        obj = obj()
    if not isinstance(obj, AbstractionTask):
        raise AbstractionError(
            f"{spec} gave a {type(obj).__name__}, not an AbstractionTask; return "
            "AbstractionTask(causal_model=CausalModel(...), sample=..., prompt=..., candidates=...)"
        )
    return obj


__all__ = [
    "AbstractionError",
    "AbstractionTask",
    "CausalModel",
    "Example",
    "Prompt",
    "Token",
    "Values",
    "load_task",
]
