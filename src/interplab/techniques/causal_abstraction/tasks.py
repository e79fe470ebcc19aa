"""Built-in abstraction tasks, written the way a user writes their own (see docs/das.md).

`ioi_position`: indirect-object identification (Wang et al. 2022) in one template,
``"When {A} and {B} went to the store, {S} gave a drink to"``, where S repeats one of the two
names and the answer is the other. The high-level model has one variable, ``io_first``: whether
the indirect object is the first name of the sentence. The output is the first name if so, else
the second. Interchanging ``io_first`` from a source sentence into a base sentence predicts the
base's name in the source's IO position: a network aligned with the model carries "which
position holds the IO" (equivalently, which name was repeated) somewhere it can be swapped.
Names are single tokens with a leading space in SmolLM2's tokenizer (all of
`interplab.data.ioi.IOI_NAMES`), so every prompt has the same length.
"""

from __future__ import annotations

import random

from interplab.data.ioi import IOI_NAMES
from interplab.techniques.causal_abstraction.causal_model import AbstractionTask, CausalModel

IOI_TEMPLATE = "When {A} and {B} went to the store, {S} gave a drink to"


def _ioi_sample(rng: random.Random) -> dict:
    a, b = rng.sample(IOI_NAMES, 2)
    return {"a": a, "b": b, "io_first": rng.random() < 0.5}


def _ioi_prompt(e: dict) -> str:
    s = e["b"] if e["io_first"] else e["a"]
    return IOI_TEMPLATE.format(A=e["a"], B=e["b"], S=s)


IOI_MODEL = CausalModel(
    name="ioi_position",
    variables={"io_first": lambda e, v: e["io_first"]},
    output=lambda e, v: " " + (e["a"] if v["io_first"] else e["b"]),
)


def ioi_position() -> AbstractionTask:
    """Returns the IOI task whose variable is the position (first or second name) of the IO."""
    return AbstractionTask(
        causal_model=IOI_MODEL,
        sample=_ioi_sample,
        prompt=_ioi_prompt,
        candidates=lambda e: (" " + e["a"], " " + e["b"]),
        name="ioi_position",
        description=(
            "IOI in one template; variable io_first (is the indirect object the first name?); "
            "answer slots: the first and the second name"
        ),
        slots=("first name", "second name"),
    )


__all__ = ["IOI_MODEL", "IOI_TEMPLATE", "ioi_position"]
