"""`POST /responses/compact` (OpenAI's "Compact a response", Azure Foundry's "Compact a
conversation"): a conversation in, the items that replace it out, as
`{"id", "object": "response.compaction", "created_at", "output": [...], "usage"}`.
Codex calls it on long sessions and uses `output` verbatim as its new history (it keeps
user and assistant messages and `compaction` items). The request is a Responses
request without generation settings: `model`, `input`, `instructions`,
`previous_response_id`, and (Codex) the `tools`, `reasoning` and `text` of its turns.
No streams, nothing stored. A backend without it natively is compacted by the gateway
(`gateway.translate.compact`)."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, StrictBool, StrictStr

from gateway.apis.base import Api, JsonObject, ModelRoute, NeverStreams
from gateway.apis.responses import RESPONSES, responses_usage
from gateway.core.flavours import Flavour
from gateway.core.operations import Operation
from policies import Usage
from policies.wire import Results, Slot, Text


class CompactBody(BaseModel):
    model_config = ConfigDict(extra="allow")
    model: StrictStr | None = None
    input: StrictStr | list[Any] | None = None
    instructions: StrictStr | None = None
    previous_response_id: StrictStr | None = None
    tools: list[JsonObject] | None = None
    parallel_tool_calls: StrictBool | None = None


class Compact(NeverStreams, Api):
    name = "responses.compact"
    operation = Operation.COMPACT
    gen_ai_operation = "chat"
    generates = True
    Body: ClassVar[type[BaseModel]] = CompactBody
    known = frozenset({
        "model", "input", "instructions", "previous_response_id", "tools", "parallel_tool_calls",
        "reasoning", "text", "service_tier", "prompt_cache_key", "prompt_cache_retention",
        "prompt_cache_options", "image",
    })

    # --- prompt: the conversation, as the Responses API has it ---------------------------
    def prompt_texts(self, body: dict[str, Any]) -> list[Slot]:
        return RESPONSES.prompt_texts(body)

    def prompt_parts(self, body: dict[str, Any]) -> list[Any]:
        return RESPONSES.prompt_parts(body)

    def prompt_framing(self, body: dict[str, Any]) -> int:
        return RESPONSES.prompt_framing(body)

    def max_output_tokens(self, body: dict[str, Any]) -> int | None:
        return None  # the service decides how long the compaction is

    def outputs(self, body: dict[str, Any]) -> int:
        return 1

    # --- stored: it may continue a stored response, and stores nothing itself ------------
    def previous_response(self, body: dict[str, Any]) -> str | None:
        return RESPONSES.previous_response(body)

    def stores(self, body: dict[str, Any]) -> bool:
        return False

    def stored_id(self, body: dict[str, Any]) -> str | None:
        return None

    def pending(self, body: dict[str, Any]) -> bool:
        return False

    # --- the answer ------------------------------------------------------------------------
    def usage(self, body: dict[str, Any]) -> Usage | None:
        return responses_usage(body.get("usage"))

    def answer_error(self, body: dict[str, Any]) -> bool:
        return isinstance(body.get("error"), dict) and body.get("object") != "response.compaction"

    def completion_texts(self, body: dict[str, Any]) -> list[Text]:
        # The output is the client's own messages and opaque state: nothing generated
        # that a filter could read (a gateway-made summary is inside the opaque state).
        return []

    def block_completion(self, body: dict[str, Any], key: Hashable, result: Results) -> None:
        """Nothing generated a filter could block."""

    def annotate(self, body: dict[str, Any], prompt: Results, outputs: dict[Hashable, Results]) -> None:
        """No place for filter results in this shape."""

    def answer_facts(self, body: dict[str, Any]) -> tuple[str, tuple[str, ...]]:
        return "", ()


COMPACT = Compact()

ROUTES = (
    ModelRoute("/v1/responses/compact", COMPACT, Flavour.OPENAI),
    ModelRoute("/openai/v1/responses/compact", COMPACT, Flavour.OPENAI),
    ModelRoute("/openai/responses/compact", COMPACT, Flavour.AZURE_OPENAI),
)
