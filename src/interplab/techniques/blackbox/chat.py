"""Chat prompts read from the tokenizer's own chat template: plain turns, prefills and personas.

A chat model only behaves as trained when its prompt is laid out by its template, so every prompt
here is rendered by the tokenizer's ``chat_template`` (never a hand-written layout):

1. `ChatTemplate.of(model)` checks that the tokenizer has a template and that it renders a probe
   conversation with every role's content in order; a missing or broken template is an error,
   not a fallback to plain text.
2. ``prompt(messages)`` renders the conversation and opens the assistant's turn (the template's
   own generation prompt).
3. ``prefill(messages, text, role)`` puts ``text`` in the mouth of ``role`` (the assistant, the
   user for persona sampling, or any role the template accepts): it renders the conversation with
   one more ``role`` message holding a sentinel and cuts the text at the sentinel, so the prompt
   is exactly the template's layout up to where that message's content begins, followed by
   ``text`` (no end-of-turn marker). A model sampled from there continues speaking as ``role``.

The prompt is tokenised as one string, as ``apply_chat_template`` does, so prompt + continuation +
end-of-turn has the same tokens as the full conversation rendered by the template (the tests
check this token by token).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from interplab.core.model import Model
from interplab.errors import UserError

Message = Mapping[str, str]
_SENTINEL = "\u2063interplab-sentinel\u2063"


class ChatTemplateError(UserError):
    """A tokenizer without a usable chat template, or messages the template cannot render."""


@dataclass(frozen=True)
class ChatTemplate:
    """A tokenizer's chat template, checked once; renders prompts, prefills and personas."""

    tokenizer: Any
    end_of_turn: str  # the text the template puts after a message's content (e.g. "<|im_end|>\n")

    @classmethod
    def of(cls, model: Model) -> ChatTemplate:
        """Returns the model's chat template, or an error saying why it cannot be used."""
        tok = model.tokenizer
        if tok is None:
            raise ChatTemplateError("this model has no tokenizer; chat prompts need one")
        if not getattr(tok, "chat_template", None):
            raise ChatTemplateError(
                f"the tokenizer of {model.info.name} has no chat_template: chat prompts, prefills "
                "and personas need an instruct model whose tokenizer defines one (a base model "
                "takes plain text prompts)"
            )
        probe = [{"role": "user", "content": "u1"}, {"role": "assistant", "content": "a1"}]
        text = _render(tok, probe, add_generation_prompt=False)
        if text.find("u1") < 0 or text.find("a1") < text.find("u1"):
            raise ChatTemplateError(
                f"the chat template of {model.info.name} does not render a user and an assistant "
                f"message in order (it rendered {text[:200]!r})"
            )
        end = text[text.rfind("a1") + 2 :]
        return cls(tok, end)

    def render(self, messages: Sequence[Message], *, add_generation_prompt: bool = False) -> str:
        """Returns the conversation as the template lays it out (with the assistant's turn
        opened when ``add_generation_prompt``)."""
        return _render(
            self.tokenizer, _check(messages), add_generation_prompt=add_generation_prompt
        )

    def prompt(self, messages: Sequence[Message]) -> str:
        """Returns the conversation followed by the opening of the assistant's reply."""
        return self.render(messages, add_generation_prompt=True)

    def prefill(self, messages: Sequence[Message], text: str, *, role: str = "assistant") -> str:
        """Returns the conversation followed by a ``role`` message that starts with ``text`` and
        is left open, so a continuation is that role speaking (token forcing / persona)."""
        if not isinstance(text, str):
            raise ChatTemplateError(f"a prefill is a string, got {type(text).__name__}")
        full = _render(
            self.tokenizer,
            [*_check(messages), {"role": role, "content": _SENTINEL}],
            add_generation_prompt=False,
        )
        cut = full.find(_SENTINEL)
        if cut < 0:
            raise ChatTemplateError(
                f"the chat template dropped a {role!r} message; roles it renders: "
                "system, user, assistant (as the template defines)"
            )
        return full[:cut] + text

    def ids(self, text: str) -> list[int]:
        """Returns the token ids of a rendered prompt (one string, specials parsed, no extra BOS)."""
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])


def _check(messages: Sequence[Message]) -> list[dict[str, str]]:
    if isinstance(messages, str | bytes) or not isinstance(messages, Sequence):
        raise ChatTemplateError(
            "messages are a list of {'role': ..., 'content': ...} dicts, e.g. "
            "[{'role': 'user', 'content': 'Hi'}]"
        )
    out: list[dict[str, str]] = []
    for i, m in enumerate(messages):
        if not isinstance(m, Mapping) or not isinstance(m.get("role"), str):
            raise ChatTemplateError(f"message {i} needs a string 'role' and 'content', got {m!r}")
        if not isinstance(m.get("content"), str):
            raise ChatTemplateError(f"message {i} ({m['role']}) needs string 'content'")
        out.append({"role": m["role"], "content": m["content"]})
    return out


def _render(tok: Any, messages: list[dict[str, str]], *, add_generation_prompt: bool) -> str:
    try:
        text = tok.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=add_generation_prompt
        )
    except Exception as e:  # jinja raises its own types for templates that reject a message
        raise ChatTemplateError(f"the chat template could not render the messages: {e}") from None
    if not isinstance(text, str):
        raise ChatTemplateError(f"the chat template returned {type(text).__name__}, not text")
    return text


def user(content: str) -> dict[str, str]:
    """Returns a user message."""
    return {"role": "user", "content": content}


def assistant(content: str) -> dict[str, str]:
    """Returns an assistant message."""
    return {"role": "assistant", "content": content}


__all__ = ["ChatTemplate", "ChatTemplateError", "Message", "assistant", "user"]
