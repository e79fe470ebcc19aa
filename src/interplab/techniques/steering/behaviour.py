"""What steering should change: a behaviour is a scorer of continuations and an instruction.

The default behaviour, `HAPPINESS`, scores a continuation by asking the unsteered model itself:
after the text it appends ``"\\n\\nThe mood of the text above is"`` and reads the log-odds of the
next word being happy (" happy", " joyful", " cheerful", " positive", " glad") versus sad
(" sad", " gloomy", " miserable", " negative", " unhappy"): ``logsumexp`` of the log-probs of each
list (words that are not one token are dropped), happy minus sad. Limits: it is the model's own
judgement, so it shares the model's biases; it reads words more than meaning (a text that says
"not happy" can still score high); it is a log-odds on a fixed frame, not a calibrated
probability; and a steered model can write emotion words without writing about emotion.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from interplab.core.model import Model
from interplab.errors import UserError

Scorer = Callable[[Model, Sequence[str]], np.ndarray]

HAPPY_WORDS = (" happy", " joyful", " cheerful", " positive", " glad")
SAD_WORDS = (" sad", " gloomy", " miserable", " negative", " unhappy")
JUDGE_SUFFIX = "\n\nThe mood of the text above is"


class SteeringError(UserError):
    """A steering vector, coefficient or behaviour that steering cannot use."""


@dataclass(frozen=True)
class Behaviour:
    """What steering should change: a scorer of continuations and the same intent as a prompt."""

    name: str
    score: Scorer  # (unsteered model, continuations) -> [n] scores, higher = more of it
    instruction: str  # prepended to each prompt for the prompt baseline
    description: str = ""


@torch.inference_mode()
def happiness_score(model: Model, texts: Sequence[str], *, batch_size: int = 16) -> np.ndarray:
    """Returns, per text, the unsteered model's log-odds that its mood is happy rather than sad."""
    happy = _single_tokens(model, HAPPY_WORDS)
    sad = _single_tokens(model, SAD_WORDS)
    out = []
    for start in range(0, len(texts), batch_size):
        chunk = [t + JUDGE_SUFFIX for t in texts[start : start + batch_size]]
        run = model.run(chunk)
        rows = torch.arange(len(chunk))
        logp = run.logits[rows, run.tokens.last].float().log_softmax(-1)
        odds = logp[:, happy].logsumexp(-1) - logp[:, sad].logsumexp(-1)
        out.append(odds.double().cpu().numpy())
    return np.concatenate(out)


HAPPINESS = Behaviour(
    name="happiness",
    score=happiness_score,
    instruction="Write happily: ",
    description=(
        "log-odds, under the unsteered model, that the continuation's mood is happy vs sad "
        f"(words {list(HAPPY_WORDS)} vs {list(SAD_WORDS)}, after {JUDGE_SUFFIX!r})"
    ),
)


def _single_tokens(model: Model, words: Sequence[str]) -> list[int]:
    ids = [model.tokenizer(w, add_special_tokens=False)["input_ids"] for w in words]
    out = [i[0] for i in ids if len(i) == 1]
    if not out:
        raise SteeringError(f"none of {list(words)} is a single token for this tokenizer")
    return out


__all__ = [
    "HAPPINESS",
    "HAPPY_WORDS",
    "JUDGE_SUFFIX",
    "SAD_WORDS",
    "Behaviour",
    "Scorer",
    "SteeringError",
    "happiness_score",
]
