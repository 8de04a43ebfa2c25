"""A Chat Completions client on a Responses backend (models Azure serves only on the
Responses API: codex-mini, gpt-5-pro, o3-pro): the chat request as a Responses
request, the response as a chat completion, and its event stream as chat chunks, one
for each text, refusal, reasoning or tool-call-argument delta, as they come.

What maps, what is refused and what is passed over (with why) is the table in
docs/contract.md §8; the comments here say why where the table cannot."""

from __future__ import annotations

from typing import Any

from gateway.core.operations import Operation
from gateway.translate import responses_wire as wire
from gateway.translate.base import Event, StreamTranslator, Target, Translator, refuse

# Chat fields that have no counterpart on the Responses API: refused unless their value
# is one that asks for nothing (then they mean what the backend does anyway).
_NEUTRAL: dict[str, tuple[tuple[Any, ...], str]] = {
    "n": ((None, 1), "the Responses API generates one output per request"),
    "stop": ((None, "", []), "the Responses API has no stop sequences"),
    "seed": ((None,), "the Responses API has no seed"),
    "frequency_penalty": ((None, 0), "the Responses API has no frequency penalty"),
    "presence_penalty": ((None, 0), "the Responses API has no presence penalty"),
    "logit_bias": ((None, {}), "the Responses API has no logit bias"),
    "logprobs": ((None, False), "log probabilities are not translated"),
    "top_logprobs": ((None, 0), "log probabilities are not translated"),
    "functions": ((None, []), "the deprecated functions API is not translated: send tools"),
    "function_call": ((None,), "the deprecated functions API is not translated: send tool_choice"),
    "modalities": ((None, ["text"]), "audio output is not translated"),
    "audio": ((None,), "audio output is not translated"),
    "prediction": ((None,), "the Responses API has no predicted outputs"),
    "store": ((None, False), "a chat completion stored for evals has no counterpart there"),
    "data_sources": ((None,), "On Your Data is an extension of Azure's Chat Completions"),
    "web_search_options": ((None,), "web search is not translated"),
    "user_security_context": ((None,), "it is an extension of Azure's Chat Completions"),
}
# The same name and meaning on both APIs.
_SAME = ("parallel_tool_calls", "metadata", "user", "safety_identifier", "prompt_cache_key",
         "service_tier", "stream")
_MAPPED = frozenset({"model", "messages", "max_tokens", "max_completion_tokens", "tools",
                     "tool_choice", "response_format", "verbosity", "reasoning_effort",
                     "stream_options", "temperature", "top_p", *_SAME, *_NEUTRAL})
# Message keys passed over: what an assistant message's answer carried, echoed back.
# Reasoning cannot go back to a Responses model without its encrypted content, which a
# chat message has no place for: the model reasons again.
_ECHOED = frozenset({"reasoning_content", "annotations"})


def _text(content: Any, where: str, target: Target) -> str:
    """A system, developer, assistant or tool message's content: a string or text parts."""
    if content is None or isinstance(content, str):
        return content or ""
    texts = []
    for j, part in enumerate(content if isinstance(content, list) else []):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif kind == "refusal" and isinstance(part.get("refusal"), str):
            texts.append(part["refusal"])  # history: what was said, whatever it was
        else:
            raise refuse(f"{where}.content[{j}]", target, f"a {kind} part has no place here")
    return "".join(texts)


def _user_content(content: Any, where: str, target: Target) -> str | list[dict[str, Any]]:
    if isinstance(content, str):
        return content
    parts: list[dict[str, Any]] = []
    for j, part in enumerate(content if isinstance(content, list) else []):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            parts.append({"type": "input_text", "text": part["text"]})
        elif kind == "image_url" and isinstance(part.get("image_url"), dict):
            image = part["image_url"]
            parts.append(wire.image_part(image.get("url"), image.get("detail")))
        elif kind == "file" and isinstance(part.get("file"), dict):
            parts.append({"type": "input_file", **{k: v for k, v in part["file"].items()
                                                   if k in ("file_id", "file_data", "filename")}})
        else:
            why = "audio input is not translated" if kind == "input_audio" else \
                f"a {kind} part has no counterpart on the Responses API"
            raise refuse(f"{where}.content[{j}]", target, why)
    return parts


def _check_keys(message: dict[str, Any], allowed: frozenset[str], where: str, target: Target) -> None:
    for key, value in message.items():
        if key not in allowed and key not in _ECHOED and value is not None:
            why = ("the Responses API has no participant names" if key == "name"
                   else "the Responses API has no such message field")
            raise refuse(f"{where}.{key}", target, why)


_PLAIN = frozenset({"role", "content"})
_ASSISTANT = frozenset({"role", "content", "tool_calls", "refusal"})
_TOOL = frozenset({"role", "content", "tool_call_id"})


def _input(messages: list[dict[str, Any]], target: Target) -> tuple[str | None, list[dict[str, Any]]]:
    """(instructions, input items): the leading system and developer messages are the
    instructions; later ones stay where they are, as messages of their role."""
    instructions: list[str] = []
    items: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        where, role = f"messages[{i}]", message.get("role")
        if role in ("system", "developer"):
            _check_keys(message, _PLAIN, where, target)
            text = _text(message.get("content"), where, target)
            if not items:
                instructions.append(text)
            else:
                items.append({"type": "message", "role": role, "content": text})
        elif role == "user":
            _check_keys(message, _PLAIN, where, target)
            items.append({"type": "message", "role": "user",
                          "content": _user_content(message.get("content"), where, target)})
        elif role == "assistant":
            _check_keys(message, _ASSISTANT, where, target)
            text = _text(message.get("content"), where, target) + (message.get("refusal") or "")
            if text:
                items.append({"type": "message", "role": "assistant", "content": text})
            for j, call in enumerate(message.get("tool_calls") or []):
                function = wire.obj(call).get("function")
                if call.get("type", "function") != "function" or not isinstance(function, dict):
                    raise refuse(f"{where}.tool_calls[{j}]", target, "only function calls are translated")
                items.append({"type": "function_call", "call_id": call.get("id"),
                              "name": function.get("name"), "arguments": function.get("arguments", "")})
        elif role == "tool":
            _check_keys(message, _TOOL, where, target)
            items.append({"type": "function_call_output", "call_id": message.get("tool_call_id"),
                          "output": _text(message.get("content"), where, target)})
        else:
            raise refuse(f"{where}.role", target, f"a {role} message has no counterpart there")
    return ("\n\n".join(instructions) if instructions else None), items


def _tools(tools: list[Any], target: Target) -> list[dict[str, Any]]:
    out = []
    for i, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) else None
        if tool.get("type") != "function" or not isinstance(function, dict):
            raise refuse(f"tools[{i}]", target, "only function tools are translated")
        out.append(wire.function_tool(function.get("name"), function.get("description"),
                                      function.get("parameters"), function.get("strict")))
    return out


def _tool_choice(choice: Any, target: Target) -> Any:
    if isinstance(choice, str):
        return choice  # auto, none, required: the same words
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind == "function" and isinstance(choice.get("function"), dict):
        return {"type": "function", "name": choice["function"].get("name")}
    if kind == "allowed_tools" and isinstance(choice.get("allowed_tools"), dict):
        allowed = choice["allowed_tools"]
        return {"type": "allowed_tools", "mode": allowed.get("mode"),
                "tools": [{"type": "function", "name": (t.get("function") or {}).get("name")}
                          for t in allowed.get("tools") or [] if isinstance(t, dict)]}
    raise refuse("tool_choice", target, "only function tools are translated")


def _text_format(response_format: Any, target: Target) -> dict[str, Any]:
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind in ("text", "json_object"):
        return {"type": kind}
    if kind == "json_schema" and isinstance(response_format.get("json_schema"), dict):
        schema = response_format["json_schema"]
        return {"type": "json_schema", "name": schema.get("name", "response"),
                **{k: schema[k] for k in ("schema", "strict", "description") if k in schema}}
    raise refuse("response_format", target, f"a {kind} format has no counterpart there")


class ChatToResponses(Translator):
    client = Operation.CHAT
    backend = Operation.RESPONSES

    def request(self, body: dict[str, Any], target: Target) -> dict[str, Any]:
        for key, value in body.items():
            if key not in _MAPPED:
                raise refuse(key, target, "it is not a Chat Completions field the gateway translates")
            if key in _NEUTRAL and value not in _NEUTRAL[key][0]:
                raise refuse(key, target, _NEUTRAL[key][1])
        instructions, items = _input(body.get("messages") or [], target)
        out: dict[str, Any] = {"input": items}
        if instructions is not None:
            out["instructions"] = instructions
        out.update({k: body[k] for k in _SAME if body.get(k) is not None})
        wire.sampling(body, out)
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        if isinstance(limit, int):
            out["max_output_tokens"] = wire.max_output(limit)
        if body.get("tools"):
            out["tools"] = _tools(body["tools"], target)
        if body.get("tool_choice") is not None:
            out["tool_choice"] = _tool_choice(body["tool_choice"], target)
        text: dict[str, Any] = {}
        if body.get("response_format") is not None:
            text["format"] = _text_format(body["response_format"], target)
        if body.get("verbosity") is not None:
            text["verbosity"] = body["verbosity"]
        if text:
            out["text"] = text
        if body.get("reasoning_effort") is not None:
            out["reasoning"] = {"effort": body["reasoning_effort"]}
        options = body.get("stream_options")
        if isinstance(options, dict):
            # include_usage asks for nothing there: every Responses stream ends with usage.
            extra = set(options) - {"include_usage", "include_obfuscation"}
            if extra:
                raise refuse(f"stream_options.{sorted(extra)[0]}", target, "it has no counterpart there")
            if options.get("include_obfuscation") is not None:
                out["stream_options"] = {"include_obfuscation": options["include_obfuscation"]}
        return wire.fixed(out)

    def response(self, body: dict[str, Any], target: Target) -> dict[str, Any]:
        ended = wire.ending(body)
        if ended == "failed":
            raise wire.failed(body)
        texts: list[str] = []
        refusals: list[str] = []
        reasoning: list[str] = []
        calls: list[dict[str, Any]] = []
        for item in body.get("output") or []:
            kind = item.get("type") if isinstance(item, dict) else None
            if kind == "message":
                parts = wire.message_parts(item)
                text = "".join(t for k, t in parts if k == "text")
                if text:
                    texts.append(text)
                refusals += [t for k, t in parts if k == "refusal"]
            elif kind == "reasoning" and (shown := wire.reasoning_text(item)):
                reasoning.append(shown)
            elif kind == "function_call":
                calls.append({"id": item.get("call_id") or item.get("id"), "type": "function",
                              "function": {"name": item.get("name"),
                                           "arguments": item.get("arguments") or ""}})
        message: dict[str, Any] = {"role": "assistant",
                                   "content": wire.SEPARATOR.join(texts) if texts else None,
                                   "refusal": "".join(refusals) or None}
        if calls:
            message["tool_calls"] = calls
        if reasoning:
            message["reasoning_content"] = wire.SEPARATOR.join(reasoning)
        answer: dict[str, Any] = {
            "id": chat_id(body.get("id")), "object": "chat.completion",
            "created": body.get("created_at") or target.created,
            "model": body.get("model") or target.model,
            "choices": [{"index": 0, "message": message, "logprobs": None,
                         "finish_reason": finish_reason(ended, bool(calls))}]}
        counts = wire.counts(body.get("usage"))
        if counts is not None:
            answer["usage"] = chat_usage(counts)
        if isinstance(body.get("service_tier"), str):
            answer["service_tier"] = body["service_tier"]
        return answer

    def stream(self, body: dict[str, Any], target: Target) -> StreamTranslator:
        return ChatStream(target)


def chat_id(ident: Any) -> str:
    """The completion's id: the backend response's, so that the two can be matched."""
    return "chatcmpl-" + (ident if isinstance(ident, str) else "").removeprefix("resp_")


def finish_reason(ended: str, called: bool) -> str:
    """The table of docs/contract.md §8: completed -> stop (tool_calls when a function
    was called), incomplete for max_output_tokens -> length, for content_filter ->
    content_filter."""
    if ended == "completed":
        return "tool_calls" if called else "stop"
    return "content_filter" if ended == "content_filter" else "length"


def chat_usage(c: wire.Counts) -> dict[str, Any]:
    # Both APIs count cached tokens inside the prompt and reasoning inside the output:
    # the details repeat them, they are not added.
    return {"prompt_tokens": c.input, "completion_tokens": c.output,
            "total_tokens": c.input + c.output,
            "prompt_tokens_details": {"cached_tokens": c.cached},
            "completion_tokens_details": {"reasoning_tokens": c.reasoning}}


# What opens a stream: response.created, or in_progress from a server that skips it.
_OPENING = ("response.created", "response.in_progress")


class ChatStream(StreamTranslator):
    """Responses events in, chat chunks out. Tool calls are numbered in the order they
    start (chat's `index`), whatever their output_index."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.id = chat_id("")
        self.model, self.created = target.model, target.created
        self.started = self.over = False
        self.calls: dict[int, int] = {}  # output_index -> tool-call index
        self.argued: set[int] = set()  # output_index of calls whose arguments were sent
        self.text_at: Any = None  # where the last text (or reasoning) delta came from
        self.thought_at: Any = None

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> Event:
        return None, wire.dumps({
            "id": self.id, "object": "chat.completion.chunk", "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]})

    def feed(self, name: bytes | None, data: bytes) -> list[Event]:
        event = wire.loads(data)
        if self.over:
            return []
        kind = event.get("type")
        index = event.get("output_index")
        if kind in _OPENING and isinstance(event.get("response"), dict) and not self.started:
            response = event["response"]
            self.id = chat_id(response.get("id"))
            self.model = response.get("model") or self.model
            self.created = response.get("created_at") or self.created
            self.started = True
            return [self._chunk({"role": "assistant", "content": "", "refusal": None})]
        if kind == "response.output_text.delta" and isinstance(event.get("delta"), str):
            gap = wire.SEPARATOR if self.text_at not in (None, index) else ""
            self.text_at = index
            return [self._chunk({"content": gap + event["delta"]})]
        if kind == "response.refusal.delta" and isinstance(event.get("delta"), str):
            return [self._chunk({"refusal": event["delta"]})]
        if kind in ("response.reasoning_summary_text.delta", "response.reasoning_text.delta") \
                and isinstance(event.get("delta"), str):
            at = (index, kind, event.get("summary_index", event.get("content_index")))
            gap = wire.SEPARATOR if self.thought_at not in (None, at) else ""
            self.thought_at = at
            return [self._chunk({"reasoning_content": gap + event["delta"]})]
        if kind == "response.output_item.added" and isinstance(event.get("item"), dict) \
                and event["item"].get("type") == "function_call" and isinstance(index, int):
            item = event["item"]
            self.calls[index] = len(self.calls)
            opened = {"index": self.calls[index], "id": item.get("call_id") or item.get("id"),
                      "type": "function", "function": {"name": item.get("name"), "arguments": ""}}
            out = [self._chunk({"tool_calls": [opened]})]
            if item.get("arguments"):  # a server that sends the arguments whole
                out += self._arguments(index, item["arguments"])
            return out
        if kind == "response.function_call_arguments.delta" and isinstance(event.get("delta"), str):
            return self._arguments(index, event["delta"])
        if kind in ("response.function_call_arguments.done", "response.output_item.done"):
            # Arguments that came only whole, never as deltas, still reach the client.
            item = wire.obj(event.get("item")) or event
            arguments = item.get("arguments")
            if index in self.calls and index not in self.argued and isinstance(arguments, str) \
                    and arguments:
                return self._arguments(index, arguments)
            return []
        if kind in ("response.completed", "response.incomplete") and isinstance(event.get("response"), dict):
            return self._end(event["response"])
        if kind == "response.failed" and isinstance(event.get("response"), dict):
            return self._fail(event["response"])
        if kind == "error":
            return self._fail(event)
        return []  # in_progress, content parts, *.done repeating what was sent

    def _arguments(self, index: Any, piece: str) -> list[Event]:
        if index not in self.calls or not piece:
            return []
        self.argued.add(index)
        return [self._chunk({"tool_calls": [{"index": self.calls[index],
                                             "function": {"arguments": piece}}]})]

    def _usage(self, response: dict[str, Any]) -> list[Event]:
        counts = wire.counts(response.get("usage"))
        if counts is None:
            return []
        # choices [] with the usage: what a chat stream ends with when include_usage is
        # set; the relay removes it when only the gateway wanted it.
        return [(None, wire.dumps({"id": self.id, "object": "chat.completion.chunk",
                                   "created": self.created, "model": self.model, "choices": [],
                                   "usage": chat_usage(counts)}))]

    def _end(self, response: dict[str, Any]) -> list[Event]:
        self.over = True
        reason = finish_reason(wire.ending(response), bool(self.calls))
        return [self._chunk({}, reason), *self._usage(response)]

    def _fail(self, holder: dict[str, Any]) -> list[Event]:
        self.over = True
        code, message = wire.error_of(holder)
        usage = self._usage(holder) if holder.get("object") == "response" else []
        error = {"error": {"message": message, "type": "server_error", "code": code, "param": None}}
        return [*usage, (None, wire.dumps(error))]

    def close(self) -> list[Event]:
        if not self.started or self.over:
            return []  # nothing at all is the relay's to report; an ending was sent
        return self._fail({"error": {"code": "upstream_error",
                                     "message": "The upstream stream ended before the response did."}})


TRANSLATOR = ChatToResponses()
