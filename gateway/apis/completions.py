"""Legacy text Completions (`/completions`): chat's streaming and answer shapes,
with a `prompt` (a string or a list of them) and `choices[].text`."""

from __future__ import annotations

from typing import Any

from pydantic import StrictInt, StrictStr

from gateway.apis.base import ModelRoute
from gateway.apis.chat import COMMON, ChatCompletions, Generation
from gateway.core.flavours import Flavour
from gateway.core.operations import Operation
from policies.wire import Results, Slot


class CompletionBody(Generation):
    prompt: StrictStr | list[Any]
    suffix: StrictStr | None = None
    best_of: StrictInt | None = None


class Completions(ChatCompletions):
    name = "completions"
    gen_ai_operation = "text_completion"
    operation = Operation.COMPLETIONS
    Body = CompletionBody
    CHUNK = "text_completion"
    known = COMMON | {"prompt", "best_of", "echo", "frequency_penalty", "logit_bias", "logprobs",
                      "max_tokens", "presence_penalty", "suffix"}

    def prompt_texts(self, body: dict[str, Any]) -> list[Slot]:
        prompt = body.get("prompt")
        slots: list[Slot] = []
        if isinstance(prompt, str):
            slots.append((body, "prompt"))
        elif isinstance(prompt, list):  # strings, or token arrays (not text)
            slots += [(prompt, i) for i, v in enumerate(prompt) if isinstance(v, str)]
        if isinstance(body.get("suffix"), str):  # the text after the insertion
            slots.append((body, "suffix"))
        return slots

    def prompt_parts(self, body: dict[str, Any]) -> list[Any]:
        return [body.get("prompt"), body.get("suffix")]

    def prompt_framing(self, body: dict[str, Any]) -> int:
        return 1

    def max_output_tokens(self, body: dict[str, Any]) -> int | None:
        limit = body.get("max_tokens")
        return limit if isinstance(limit, int) else None

    def outputs(self, body: dict[str, Any]) -> int:
        # best_of completions are generated (and billed), n of them returned.
        best_of = body.get("best_of")
        return max(super().outputs(body), best_of if isinstance(best_of, int) else 0)

    def blocked_choice(self, result: Results) -> dict[str, Any]:
        return {"text": "", "index": 0, "logprobs": None, "finish_reason": "content_filter",
                "content_filter_results": result}


COMPLETIONS = Completions()

ROUTES = (
    ModelRoute("/openai/deployments/{deployment}/completions", COMPLETIONS, Flavour.AZURE_OPENAI),
    ModelRoute("/openai/v1/completions", COMPLETIONS, Flavour.OPENAI),
    ModelRoute("/v1/completions", COMPLETIONS, Flavour.OPENAI),
)
