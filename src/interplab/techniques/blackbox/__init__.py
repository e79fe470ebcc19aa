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
    "pick",
    "sample",
    "user",
]
