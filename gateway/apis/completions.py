"""Legacy text Completions (`/completions`): chat's streaming and answer shapes,
with a `prompt` (a string or a list of them) and `choices[].text`."""

from __future__ import annotations

from typing import Any

from pydantic import StrictInt, StrictStr

from gateway.apis.base import ModelRoute
from gateway.apis.chat import COMMON, ChatCompletions, Generation
from gateway.core.flavours import Flavour
from gateway.core.operations import Operation
from policies.wire import Slot


class CompletionBody(Generation):
    prompt: StrictStr | list[Any]
    best_of: StrictInt | None = None


class Completions(ChatCompletions):
    name = "completions"
    gen_ai_operation = "text_completion"
    operation = Operation.COMPLETIONS
    Body = CompletionBody
    known = COMMON | {"prompt", "best_of", "echo", "frequency_penalty", "logit_bias", "logprobs",
                      "max_tokens", "presence_penalty", "suffix"}

    def prompt_texts(self, body: dict[str, Any]) -> list[Slot]:
        prompt = body.get("prompt")
        if isinstance(prompt, str):
            return [(body, "prompt")]
        if isinstance(prompt, list):
            return [(prompt, i) for i, v in enumerate(prompt) if isinstance(v, str)]
        return []

    def prompt_parts(self, body: dict[str, Any]) -> list[Any]:
        return [body.get("prompt"), body.get("suffix")]

    def prompt_framing(self, body: dict[str, Any]) -> int:
        return 1

    def max_output_tokens(self, body: dict[str, Any]) -> int | None:
        limit = body.get("max_tokens")
        return limit if isinstance(limit, int) else None


COMPLETIONS = Completions()

ROUTES = (
    ModelRoute("/openai/deployments/{deployment}/completions", COMPLETIONS, Flavour.AZURE_OPENAI),
    ModelRoute("/openai/v1/completions", COMPLETIONS, Flavour.OPENAI),
    ModelRoute("/v1/completions", COMPLETIONS, Flavour.OPENAI),
)
