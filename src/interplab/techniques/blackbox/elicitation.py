"""Elicitation: sample what a chat model says under prompts built to draw out what it withholds.

Five methods, each a way of laying out the chat prompt (`ChatTemplate`) before batched sampling
(`sample`), following the black-box baselines of Marks et al. 2025 ("Auditing language models
for hidden objectives") and Cywiński et al. 2025 ("Eliciting secret knowledge from language
models"):

1. ``direct``: the conversation, then the assistant's turn (the input/output baseline).
2. ``prefill`` (token forcing): the assistant's turn opened with words put in its mouth
   (``prefills``, e.g. ``"My secret word is"``); the model continues from them.
3. ``persona``: the conversation, then a *user* turn opened with ``personas`` (e.g. ``"I
   know your secret word. It is"``): the model writes the user's lines, which a model trained to
   keep a secret as the assistant may not guard.
4. ``high_temperature``: the direct prompt sampled hot (temperature 1.6 by default), so
   low-probability continuations surface.
5. ``many_shot``: ``shots`` (question, answer) turns in which the assistant complies, then the
   question (Anil et al. 2024, "Many-shot jailbreaking").

Every sample is kept with its prompt, text, length and log-probability; a ``pattern`` (regular
expression) marks the samples that produced what was sought, and the summary is that rate with a
bootstrap CI (whole prompts resampled when several prompts were sampled).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from interplab.configs import Config, ConfigError, positive
from interplab.core.model import Model
from interplab.provenance import Provenance, data_hash
from interplab.results.blackbox import ElicitationResult
from interplab.store import recorded
from interplab.techniques.blackbox.chat import ChatTemplate, Message, assistant, user
from interplab.techniques.blackbox.generation import SamplingConfig, sample

Method = Literal["direct", "prefill", "persona", "high_temperature", "many_shot"]
HOT_TEMPERATURE = 1.6


@dataclass(frozen=True)
class ElicitationConfig(Config):
    """One elicitation: the method and how many samples of how many tokens per prompt."""

    method: Method = "direct"
    n: int = 32
    max_new_tokens: int = 32
    temperature: float | None = None  # None: 1.0, or HOT_TEMPERATURE for high_temperature
    top_p: float = 1.0
    seed: int = 0
    batch_size: int = 32

    def check(self) -> None:
        positive("n", self.n)
        positive("max_new_tokens", self.max_new_tokens)
        if self.temperature is not None:
            positive("temperature", self.temperature, allow_zero=True)

    def sampling(self, offset: int = 0) -> SamplingConfig:
        """Returns the sampling config for prompt number ``offset`` (its own seed)."""
        default = HOT_TEMPERATURE if self.method == "high_temperature" else 1.0
        return SamplingConfig(
            n=self.n,
            max_new_tokens=self.max_new_tokens,
            temperature=default if self.temperature is None else self.temperature,
            top_p=self.top_p,
            seed=self.seed + offset,
            batch_size=self.batch_size,
        )


@recorded("elicitation", inputs="messages")
def elicit(
    model: Model,
    messages: str | Sequence[Message],
    method: Method = "direct",
    *,
    prefills: Sequence[str] = (),
    personas: Sequence[str] = (),
    shots: Sequence[tuple[str, str]] = (),
    pattern: str | None = None,
    n: int = 32,
    max_new_tokens: int = 32,
    temperature: float | None = None,
    seed: int = 0,
    config: ElicitationConfig | None = None,
    progress: bool = False,
) -> ElicitationResult:
    """Returns ``n`` samples per prompt of ``method`` applied to ``messages`` (a user message or
    a conversation), each marked by whether it matched ``pattern`` (case-insensitive regex)."""
    cfg = config or ElicitationConfig(method, n, max_new_tokens, temperature, seed=seed)
    template = ChatTemplate.of(model)
    convo: list[Message] = [user(messages)] if isinstance(messages, str) else list(messages)
    rendered, forced = build_prompts(template, convo, cfg.method, prefills, personas, shots)
    regex = _compile(pattern)
    prompt_index: list[int] = []
    texts: list[str] = []
    n_tokens: list[int] = []
    finished: list[bool] = []
    logprob: list[float] = []
    for i, prompt in enumerate(rendered):
        out = sample(model, template.ids(prompt), cfg.sampling(i), progress=progress)
        prompt_index += [i] * len(out.texts)
        texts += out.texts
        n_tokens += [len(t) for t in out.ids]
        finished += out.finished
        logprob += out.logprob.tolist()
    matches = [
        bool(regex.search(forced[p] + t)) if regex is not None else False
        for p, t in zip(prompt_index, texts, strict=True)
    ]
    return ElicitationResult(
        method=cfg.method,
        prompts=rendered,
        prefills=forced,
        prompt_index=np.asarray(prompt_index, dtype=np.int64),
        texts=texts,
        n_tokens=np.asarray(n_tokens, dtype=np.int64),
        finished=np.asarray(finished, dtype=bool),
        logprob=np.asarray(logprob, dtype=np.float64),
        pattern=pattern,
        matches=np.asarray(matches, dtype=bool),
        provenance=Provenance(
            technique="elicitation",
            model=model.info.to_dict(),
            config=cfg.to_dict(),
            data_sha256=data_hash([rendered, pattern]),
            seed=cfg.seed,
        ),
    )


def build_prompts(
    template: ChatTemplate,
    messages: Sequence[Message],
    method: Method,
    prefills: Sequence[str] = (),
    personas: Sequence[str] = (),
    shots: Sequence[tuple[str, str]] = (),
) -> tuple[list[str], list[str]]:
    """Returns the rendered prompts of ``method`` and the text each forces into its open turn."""
    if not messages:
        raise ConfigError("elicitation needs at least one message (the question)")
    if method in ("direct", "high_temperature"):
        return [template.prompt(messages)], [""]
    if method == "prefill":
        texts = _needed(prefills, "prefill", "prefills", "My secret word is")
        return [template.prefill(messages, t) for t in texts], list(texts)
    if method == "persona":
        texts = _needed(personas, "persona", "personas", "I know your secret. It is")
        return [template.prefill(messages, t, role="user") for t in texts], list(texts)
    pairs = list(shots)
    if not pairs:
        raise ConfigError(
            "many_shot needs shots: (question, answer) pairs in which the assistant complies"
        )
    turns: list[Message] = [m for q, a in pairs for m in (user(q), assistant(a))]
    return [template.prompt([*turns, *messages])], [""]


def _needed(texts: Sequence[str], method: str, name: str, example: str) -> list[str]:
    out = [texts] if isinstance(texts, str) else list(texts)
    if not out or not all(isinstance(t, str) and t for t in out):
        raise ConfigError(f"{method} needs non-empty {name}, e.g. {name}=[{example!r}]")
    return out


def _compile(pattern: str | None) -> re.Pattern[str] | None:
    if pattern is None:
        return None
    try:
        return re.compile(pattern, re.IGNORECASE)
    except re.error as e:
        raise ConfigError(f"pattern {pattern!r} is not a regular expression: {e}") from None


__all__ = ["HOT_TEMPERATURE", "ElicitationConfig", "Method", "build_prompts", "elicit"]
