"""Black-box techniques: chat-template prompts, batched sampling, elicitation, CoT resampling."""

from interplab.techniques.blackbox.chat import ChatTemplate, ChatTemplateError, assistant, user
from interplab.techniques.blackbox.elicitation import (
    ElicitationConfig,
    Method,
    build_prompts,
    elicit,
)
from interplab.techniques.blackbox.generation import (
    GenerationError,
    Samples,
    SamplingConfig,
    pick,
    sample,
)
from interplab.techniques.blackbox.resampling import (
    extract_answer,
    prompt_sweep,
    sentences,
    thought_anchors,
)

__all__ = [
    "ChatTemplate",
    "ChatTemplateError",
    "ElicitationConfig",
    "GenerationError",
    "Method",
    "Samples",
    "SamplingConfig",
    "assistant",
    "build_prompts",
    "elicit",
    "extract_answer",
    "pick",
    "prompt_sweep",
    "sample",
    "sentences",
    "thought_anchors",
    "user",
]
