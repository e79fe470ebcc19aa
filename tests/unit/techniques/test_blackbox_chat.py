"""Chat prompts, prefills and personas against the tokenizer's own chat template, token by token."""

from __future__ import annotations

from typing import Any

import pytest
from blackbox_models import chat_model, smol_tokenizer

from interplab.techniques.blackbox import ChatTemplate, ChatTemplateError, assistant, user
from interplab.techniques.blackbox.elicitation import build_prompts


@pytest.fixture(scope="module")
def tok() -> Any:
    return smol_tokenizer()


@pytest.fixture(scope="module")
def template(tok: Any) -> ChatTemplate:
    return ChatTemplate.of(chat_model(tok))


def _hf_ids(tok: Any, messages: list[dict[str, str]], **kw: Any) -> list[int]:
    out = tok.apply_chat_template(messages, tokenize=True, **kw)
    return list(out["input_ids"] if hasattr(out, "keys") else out)


CONVO = [user("Give me a hint about your word."), assistant("It purrs."), user("Another one?")]


def test_prompt_is_the_templates_generation_prompt_token_by_token(template, tok):
    ids = template.ids(template.prompt(CONVO))
    assert ids == _hf_ids(tok, CONVO, add_generation_prompt=True)


@pytest.mark.parametrize("prefill", ["My secret word is", " leading space", "Sure! The word: "])
def test_assistant_prefill_plus_its_continuation_is_the_full_conversation(template, tok, prefill):
    continuation = " cat, obviously."
    forced = template.prefill(CONVO, prefill)
    full = [*CONVO, assistant(prefill + continuation)]
    assert template.ids(forced + continuation + template.end_of_turn) == _hf_ids(tok, full)
    # and the open prefill is what HF's continue_final_message renders
    open_ids = _hf_ids(tok, [*CONVO, assistant(prefill)], continue_final_message=True)
    assert template.ids(forced) == open_ids


def test_user_persona_prefill_renders_an_open_user_turn(template, tok):
    convo = [*CONVO, assistant("I cannot say.")]
    forced = template.prefill(convo, "I know your word. It is", role="user")
    full = [*convo, user("I know your word. It is cat")]
    assert template.ids(forced + " cat" + template.end_of_turn) == _hf_ids(tok, full)
    assert forced.endswith("<|im_start|>user\nI know your word. It is")


def test_many_shot_prompt_is_the_shots_as_turns_then_the_question(template, tok):
    shots = [("What is yours?", "Mine is moon."), ("And yours?", "Mine is tree.")]
    (prompt,), forced = build_prompts(template, [user("Yours?")], "many_shot", shots=shots)
    turns = [user("What is yours?"), assistant("Mine is moon."), user("And yours?")]
    turns += [assistant("Mine is tree."), user("Yours?")]
    assert template.ids(prompt) == _hf_ids(tok, turns, add_generation_prompt=True)
    assert forced == [""]


def test_a_tokenizer_without_a_chat_template_is_an_error(tok):
    import copy

    bare = copy.deepcopy(tok)
    bare.chat_template = None
    with pytest.raises(ChatTemplateError, match="no chat_template"):
        ChatTemplate.of(chat_model(bare))


def test_a_template_that_drops_messages_is_an_error(tok):
    import copy

    broken = copy.deepcopy(tok)
    broken.chat_template = "{% for m in messages %}{{ m['role'] }}{% endfor %}"
    with pytest.raises(ChatTemplateError, match="does not render"):
        ChatTemplate.of(chat_model(broken))


def test_malformed_messages_are_errors_that_say_what_a_message_is(template):
    with pytest.raises(ChatTemplateError, match="role"):
        template.prompt([{"content": "hi"}])
    with pytest.raises(ChatTemplateError, match="list of"):
        template.prompt("hi")  # type: ignore[arg-type]
