"""Chat Completions (`/chat/completions`): OpenAI's, Azure OpenAI's and the Azure AI
model inference API's shape. Streams are strict `data: <json>` events ending
with `data: [DONE]`; a block ends a stream with a `content_filter` finish."""

from __future__ import annotations

import re
from collections.abc import Hashable
from typing import Any, ClassVar

import orjson
from pydantic import BaseModel, ConfigDict, StrictBool, StrictFloat, StrictInt, StrictStr

from gateway.apis.base import Api, JsonObject, ModelRoute, StoresNothing
from gateway.apis.shapes import (
    as_int,
    data_event,
    items,
    loads,
    openai_stream_error,
    schema_slots,
    usage_counts,
)
from gateway.core.flavours import Flavour
from gateway.core.operations import Operation
from policies import Usage
from policies.wire import Results, Slot, Text

DONE = b"[DONE]"
DONE_EVENT = b"data: [DONE]\n\n"
# Generated text in a raw chunk: message content, legacy completion text, tool-call
# arguments, refusals and reasoning, as JSON string bodies (escapes kept).
_OUTPUT = re.compile(
    rb'"(?:content|text|arguments|refusal|reasoning_content)"\s*:\s*"((?:[^"\\]|\\.)*)"')
PER_MESSAGE = 4  # role and separators around each message (OpenAI's own accounting: 3-4)
REPLY_PRIMING = 3


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")
    include_usage: StrictBool | None = None


class Generation(BaseModel):
    model_config = ConfigDict(extra="allow")
    model: StrictStr | None = None
    user: StrictStr | None = None
    stream: StrictBool | None = None
    stream_options: StreamOptions | None = None
    max_tokens: StrictInt | None = None
    n: StrictInt | None = None
    # Strict: a number (an integer will do), never a string or a bool.
    temperature: StrictFloat | None = None
    top_p: StrictFloat | None = None


class ChatBody(Generation):
    messages: list[JsonObject]
    max_completion_tokens: StrictInt | None = None
    tools: list[JsonObject] | None = None
    functions: list[JsonObject] | None = None


COMMON = frozenset({"model", "user", "stream", "stream_options", "n", "seed", "stop",
                    "temperature", "top_p"})


class ChatCompletions(StoresNothing, Api):
    name = "chat.completions"
    operation = Operation.CHAT
    gen_ai_operation = "chat"
    generates = True
    Body: ClassVar[type[BaseModel]] = ChatBody
    CHUNK: ClassVar[str] = "chat.completion.chunk"  # a streamed chunk's `object`
    known = COMMON | {
        "messages", "max_tokens", "max_completion_tokens", "frequency_penalty",
        "presence_penalty", "logit_bias", "logprobs", "top_logprobs", "response_format",
        "tools", "tool_choice", "parallel_tool_calls", "functions", "function_call",
        "modalities", "audio", "prediction", "reasoning_effort", "service_tier", "store",
        "metadata", "data_sources", "verbosity", "web_search_options", "prompt_cache_key",
        "safety_identifier", "user_security_context",
    }

    def is_stream(self, body: dict[str, Any]) -> bool:
        return body.get("stream") is True

    def ask_stream_usage(self, body: dict[str, Any]) -> bool:
        options = body.get("stream_options")
        if isinstance(options, dict) and options.get("include_usage"):
            return False
        body["stream_options"] = {**(options if isinstance(options, dict) else {}),
                                  "include_usage": True}
        return True

    # --- prompt -----------------------------------------------------------------------
    def prompt_texts(self, body: dict[str, Any]) -> list[Slot]:
        slots: list[Slot] = []
        for message in items(body.get("messages")):
            if not isinstance(message, dict):
                continue
            content = message.get("content")
            if isinstance(content, str):
                slots.append((message, "content"))
            elif isinstance(content, list):
                slots += [(part, key) for part in content if isinstance(part, dict)
                          for key in ("text", "refusal") if isinstance(part.get(key), str)]
            for key in ("name", "refusal"):  # an assistant's earlier refusal is text too
                if isinstance(message.get(key), str):
                    slots.append((message, key))
            for call in items(message.get("tool_calls")):
                function = call.get("function") if isinstance(call, dict) else None
                if isinstance(function, dict) and isinstance(function.get("arguments"), str):
                    slots.append((function, "arguments"))
            legacy = message.get("function_call")
            if isinstance(legacy, dict) and isinstance(legacy.get("arguments"), str):
                slots.append((legacy, "arguments"))
        for tool in items(body.get("tools")):
            function = tool.get("function") if isinstance(tool, dict) else None
            if isinstance(function, dict):
                _function_texts(function, slots)
        for function in items(body.get("functions")):
            if isinstance(function, dict):
                _function_texts(function, slots)
        response_format = body.get("response_format")
        if isinstance(response_format, dict) and isinstance(response_format.get("json_schema"), dict):
            schema = response_format["json_schema"]
            schema_slots(schema, slots)
        return slots

    def prompt_parts(self, body: dict[str, Any]) -> list[Any]:
        return [body.get("messages"), body.get("tools"), body.get("functions")]

    def prompt_framing(self, body: dict[str, Any]) -> int:
        messages = body.get("messages")
        return PER_MESSAGE * (len(messages) if isinstance(messages, list) else 0) + REPLY_PRIMING

    def max_output_tokens(self, body: dict[str, Any]) -> int | None:
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        return limit if isinstance(limit, int) else None

    def outputs(self, body: dict[str, Any]) -> int:
        n = body.get("n")
        return n if isinstance(n, int) and n > 0 else 1

    # --- whole answers ----------------------------------------------------------------
    def usage(self, body: dict[str, Any]) -> Usage | None:
        return openai_usage(body.get("usage"))

    def answer_error(self, body: dict[str, Any]) -> bool:
        return isinstance(body.get("error"), dict) and "choices" not in body

    def completion_texts(self, body: dict[str, Any]) -> list[Text]:
        texts: list[Text] = []
        for i, choice in enumerate(_choices(body)):
            message = choice.get("message")
            if isinstance(message, dict):
                if isinstance(message.get("content"), str):
                    texts.append(Text(i, (message, "content")))
                for call in items(message.get("tool_calls")):
                    function = call.get("function") if isinstance(call, dict) else None
                    if isinstance(function, dict) and isinstance(function.get("arguments"), str):
                        texts.append(Text(i, (function, "arguments")))
            elif isinstance(choice.get("text"), str):
                texts.append(Text(i, (choice, "text")))
        return texts

    def block_completion(self, body: dict[str, Any], key: Hashable, result: Results) -> None:
        choices = _choices(body)
        if not isinstance(key, int) or key >= len(choices):
            return
        choice = choices[key]
        message = choice.get("message")
        if isinstance(message, dict):
            message["content"] = ""
            message.pop("tool_calls", None)
        else:
            choice["text"] = ""
        choice["finish_reason"] = "content_filter"

    def annotate(self, body: dict[str, Any], prompt: Results, outputs: dict[Hashable, Results]) -> None:
        # Azure's places: per-choice content_filter_results, prompt_filter_results.
        for i, choice in enumerate(_choices(body)):
            choice["content_filter_results"] = outputs.get(i, {})
        body["prompt_filter_results"] = [{"prompt_index": 0, "content_filter_results": prompt}]

    # --- streams ----------------------------------------------------------------------
    def is_end(self, data: bytes) -> bool:
        return data == DONE

    def stream_usage(self, event: dict[str, Any], usage: Usage | None) -> Usage | None:
        return openai_usage(event.get("usage")) or usage

    def drop_event(self, event: dict[str, Any], strip_usage: bool) -> bool:
        # The usage-only chunk the gateway asked for and the client did not.
        return strip_usage and "usage" in event and not event.get("choices")

    def output_text(self, data: bytes) -> list[bytes]:
        return _OUTPUT.findall(data)

    def end(self) -> bytes:
        return DONE_EVENT

    def encode(self, name: bytes | None, data: bytes) -> bytes:
        return data_event(data)

    def stream_final(self, event: dict[str, Any]) -> list[Text]:
        return []  # no closing event repeats the text

    def is_keepalive(self, event: dict[str, Any]) -> bool:
        return False

    def stream_error(self, code: str, message: str, last: bytes) -> bytes:
        return openai_stream_error(code, message)

    def stream_delta(self, event: dict[str, Any]) -> Text | None:
        choices = event.get("choices")
        if not isinstance(choices, list) or len(choices) != 1 or not isinstance(choices[0], dict):
            return None
        choice = choices[0]
        if choice.get("finish_reason"):
            return None
        index = as_int(choice.get("index"))
        delta = choice.get("delta")
        if isinstance(delta, dict):
            if isinstance(delta.get("content"), str) and delta["content"]:
                return Text(index, (delta, "content"))
            calls = delta.get("tool_calls")
            if isinstance(calls, list) and len(calls) == 1 and isinstance(calls[0], dict):
                function = calls[0].get("function")
                if isinstance(function, dict) and isinstance(function.get("arguments"), str) \
                        and function["arguments"]:
                    return Text((index, "tool", as_int(calls[0].get("index"))),
                                (function, "arguments"))
            return None
        if isinstance(choice.get("text"), str) and choice["text"]:
            return Text(index, (choice, "text"))
        return None

    def blocked_end(self, first: bytes, last: bytes, result: Results) -> bytes:
        """Azure's own ending: a chunk whose finish_reason is content_filter, then [DONE]."""
        try:
            template = loads(last) if last else {}
        except orjson.JSONDecodeError:
            template = {}
        chunk = {
            "id": template.get("id", ""), "object": template.get("object") or self.CHUNK,
            "created": template.get("created", 0), "model": template.get("model", ""),
            "choices": [self.blocked_choice(result)],
        }
        if "system_fingerprint" in template:  # the keys of the chunks before it
            chunk["system_fingerprint"] = template["system_fingerprint"]
        return self.encode(None, orjson.dumps(chunk)) + DONE_EVENT

    def blocked_choice(self, result: Results) -> dict[str, Any]:
        """The choice of that chunk: no text, a content_filter finish."""
        return {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "content_filter",
                "content_filter_results": result}


def _function_texts(function: dict[str, Any], slots: list[Slot]) -> None:
    for key in ("name", "description"):
        if isinstance(function.get(key), str):
            slots.append((function, key))
    parameters = function.get("parameters")
    if isinstance(parameters, (dict, list)):
        schema_slots(parameters, slots)


def _choices(body: dict[str, Any]) -> list[dict[str, Any]]:
    choices = body.get("choices")
    return [c for c in choices if isinstance(c, dict)] if isinstance(choices, list) else []


def openai_usage(usage: Any) -> Usage | None:
    """Chat, completions and embeddings usage."""
    return usage_counts(usage, "prompt_tokens", "completion_tokens", "prompt_tokens_details",
                        "completion_tokens_details")


CHAT = ChatCompletions()

ROUTES = (
    ModelRoute("/models/chat/completions", CHAT, Flavour.AZURE_INFERENCE, model_from_headers=True),
    ModelRoute("/openai/deployments/{deployment}/chat/completions", CHAT, Flavour.AZURE_OPENAI),
    ModelRoute("/openai/v1/chat/completions", CHAT, Flavour.OPENAI),
    ModelRoute("/v1/chat/completions", CHAT, Flavour.OPENAI),
)
