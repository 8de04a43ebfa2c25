"""A Responses client (Codex, the openai-agents SDK, `client.responses.create`) on a
backend that speaks only Chat Completions (vLLM, Mistral, Llama, DeepSeek on Foundry):
the request as chat messages, the chat answer and its stream as a Response and its
event sequence (`responses_stream`). The table of what maps, what is refused and what is
passed over, and why, is docs/contract.md §8."""

from __future__ import annotations

from typing import Any, ClassVar

import orjson

from gateway.core.operations import Operation
from gateway.translate.base import Event, StreamTranslator, Target, refuse
from gateway.translate.bound import Answers
from gateway.translate.responses_input import Entry, Part, Request, read
from gateway.translate.responses_stream import ResponseBuilder, obj, response_id, skeleton, usage

API = "Chat Completions"
# finish_reason -> (Responses status, incomplete_details.reason).
STOP: dict[str | None, tuple[str, str | None]] = {
    "stop": ("completed", None),
    "tool_calls": ("completed", None),
    "function_call": ("completed", None),
    "length": ("incomplete", "max_output_tokens"),
    "content_filter": ("incomplete", "content_filter"),
}


class ResponsesToChat(Answers):
    client: ClassVar[Operation] = Operation.RESPONSES
    backend: ClassVar[Operation] = Operation.CHAT

    def request(self, body: dict[str, Any], target: Target) -> dict[str, Any]:
        req = read(body, target, API)
        out: dict[str, Any] = {"messages": messages(req, target)}
        if body.get("stream") is True:
            # The Responses client gets its usage in response.completed: the backend is
            # asked for it, and the usage chunk never reaches the client as such.
            out["stream"] = True
            out["stream_options"] = {"include_usage": True}
        if req.max_output_tokens is not None:
            out["max_tokens"] = req.max_output_tokens
        for name, value in (("temperature", req.temperature), ("top_p", req.top_p),
                            ("reasoning_effort", req.effort), ("user", req.user)):
            if value is not None:
                out[name] = value
        if req.tools:
            out["tools"] = [{"type": "function", "function": {
                "name": t.name, **({"description": t.description} if t.description is not None else {}),
                "parameters": t.parameters,
                **({"strict": t.strict} if t.strict is not None else {})}} for t in req.tools]
            if req.parallel is False:  # true is chat's default: a server that lacks it never sees it
                out["parallel_tool_calls"] = False
        if req.forced is not None:
            out["tool_choice"] = {"type": "function", "function": {"name": req.forced}}
        elif req.choice is not None:
            out["tool_choice"] = req.choice
        if req.format is not None:
            out["response_format"] = response_format(req.format)
        return out

    def answer(self, answer: dict[str, Any], request: dict[str, Any], target: Target) -> dict[str, Any]:
        builder = ResponseBuilder(response_id(target))
        model = answer.get("model")
        builder.begin(skeleton(request, target, model if isinstance(model, str) else None))
        choices = answer.get("choices")
        choice = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) \
            else {}
        message = obj(choice.get("message"))
        _delta(builder, message, whole=True)
        status, reason = STOP.get(choice.get("finish_reason"), ("completed", None))
        builder.finish(status, reason, chat_usage(answer.get("usage")))
        assert builder.response is not None
        return builder.response

    def stream(self, body: dict[str, Any], target: Target) -> StreamTranslator:
        return ChatStream(body, target)


def messages(req: Request, target: Target) -> list[dict[str, Any]]:
    """The entries as chat messages: a function call joins the assistant message before
    it (chat carries calls as that message's `tool_calls`), each output is a `tool`
    message; system and developer items stay where they are, as system messages."""
    out: list[dict[str, Any]] = []
    for entry in req.entries:
        last = out[-1] if out else None
        if entry.role == "system":
            out.append({"role": "system", "content": _text(entry, target, "system")})
        elif entry.role == "user":
            out.append({"role": "user", "content": _content(entry.parts)})
        elif entry.role == "assistant":
            text = _text(entry, target, "assistant")
            if last is not None and last["role"] == "assistant" and not last.get("tool_calls"):
                last["content"] = (last["content"] or "") + text
            else:
                out.append({"role": "assistant", "content": text})
        elif entry.role == "call":
            call = {"id": entry.call_id, "type": "function",
                    "function": {"name": entry.name, "arguments": entry.arguments}}
            if last is not None and last["role"] == "assistant":
                last.setdefault("tool_calls", []).append(call)
            else:
                out.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif entry.role == "result":
            out.append({"role": "tool", "tool_call_id": entry.call_id,
                        "content": _text(entry, target, "function output")})
        # A Claude reasoning block has no place in a chat request: passed over (§8).
    return out


def _text(entry: Entry, target: Target, what: str) -> str:
    if any(p.image is not None for p in entry.parts):
        raise refuse(entry.where, target, f"{API} takes no image in a {what} message")
    return "".join(p.text or "" for p in entry.parts)


def _content(parts: list[Part]) -> str | list[dict[str, Any]]:
    if all(p.image is None for p in parts):
        return "".join(p.text or "" for p in parts)
    return [{"type": "text", "text": p.text} if p.image is None else
            {"type": "image_url", "image_url": {"url": p.image, **({"detail": p.detail} if p.detail
                                                                   else {})}}
            for p in parts]


def response_format(fmt: dict[str, Any]) -> dict[str, Any]:
    if fmt.get("type") == "json_object":
        return {"type": "json_object"}
    schema = {"name": fmt.get("name") or "response", "schema": fmt.get("schema") or {}}
    for key in ("description", "strict"):
        if fmt.get(key) is not None:
            schema[key] = fmt[key]
    return {"type": "json_schema", "json_schema": schema}


def chat_usage(counts: Any) -> dict[str, Any] | None:
    """Chat usage in the Responses names. Chat's prompt_tokens already include the cached
    ones (`prompt_tokens_details.cached_tokens`, DeepSeek's `prompt_cache_hit_tokens`),
    as Responses' input_tokens do: they are counted once."""
    if not isinstance(counts, dict) or not isinstance(counts.get("prompt_tokens"), int):
        return None
    details = counts.get("prompt_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, dict) else None
    cached = cached if isinstance(cached, int) else counts.get("prompt_cache_hit_tokens")
    done = counts.get("completion_tokens_details")
    reasoning = done.get("reasoning_tokens") if isinstance(done, dict) else None
    return usage(counts["prompt_tokens"], cached if isinstance(cached, int) else 0,
                 _int(counts.get("completion_tokens")), _int(reasoning))


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _delta(builder: ResponseBuilder, delta: dict[str, Any], whole: bool = False) -> list[Event]:
    """A chat message (whole) or a stream chunk's delta, into the builder."""
    events: list[Event] = []
    reasoning = delta.get("reasoning_content") or delta.get("reasoning")  # DeepSeek / vLLM
    if isinstance(reasoning, str) and reasoning:
        events += builder.thinking(reasoning)
    content = delta.get("content")
    if isinstance(content, str) and content:
        events += builder.text(content)
    elif isinstance(content, list):  # Mistral's reasoning models: typed chunks
        for part in content:
            if not isinstance(part, dict):
                continue
            if part.get("type") == "text" and isinstance(part.get("text"), str):
                events += builder.text(part["text"])
            elif part.get("type") == "thinking" and isinstance(part.get("thinking"), list):
                events += builder.thinking("".join(
                    t.get("text", "") for t in part["thinking"] if isinstance(t, dict)))
    if isinstance(delta.get("refusal"), str) and delta["refusal"]:
        events += builder.refusal(delta["refusal"])
    for i, call in enumerate(delta.get("tool_calls") or []):
        if not isinstance(call, dict):
            continue
        key = i if whole else call.get("index", 0)
        function = obj(call.get("function"))
        if key not in builder.calls:
            given = call.get("id")
            ident = given if isinstance(given, str) and given \
                else f"call_{builder.ident.removeprefix('resp_')}{len(builder.output):02x}"
            events += builder.call(ident, str(function.get("name") or ""), key)
        arguments = function.get("arguments")
        events += builder.arguments(arguments if isinstance(arguments, str) else "", key)
    return events


class ChatStream(StreamTranslator):
    """A chat stream as a Responses stream: the items close at the finish_reason, the
    terminal event waits for the usage chunk (it follows) and comes at [DONE] or EOF."""

    def __init__(self, body: dict[str, Any], target: Target) -> None:
        self.body, self.target = body, target
        self.builder = ResponseBuilder(response_id(target))
        self.reason: str | None = None
        self.counts: Any = None

    def _begin(self, model: Any) -> list[Event]:
        if self.builder.response is not None:  # begun: the skeleton is made once
            return []
        return self.builder.begin(skeleton(self.body, self.target,
                                           model if isinstance(model, str) and model else None))

    def feed(self, name: bytes | None, data: bytes) -> list[Event]:
        if data.strip() == b"[DONE]":
            return self.close()
        chunk = orjson.loads(data)
        if not isinstance(chunk, dict):
            raise ValueError("not a JSON object")  # the relay ends the stream with an error
        text = self._text_only(chunk)
        if text is not None:
            return self.builder.text(text)
        error = chunk.get("error")
        if isinstance(error, dict):
            return [*self._begin(None), *self.builder.fail(
                str(error.get("code") or error.get("type") or "upstream_error"),
                str(error.get("message") or "The backend failed."))]
        model = chunk.get("model")
        events = self._begin(model)
        self._answered_by(model)
        choices = chunk.get("choices")
        for choice in choices if isinstance(choices, list) else []:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            if isinstance(choice.get("delta"), dict):
                events += _delta(self.builder, choice["delta"])
            if isinstance(choice.get("finish_reason"), str):
                self.reason = choice["finish_reason"]
                status, _ = STOP.get(self.reason, ("completed", None))
                events += self.builder.end_item("incomplete" if status == "incomplete" else "completed")
        if isinstance(chunk.get("usage"), dict):
            self.counts = chunk["usage"]
        return events

    def _text_only(self, chunk: dict[str, Any]) -> str | None:
        """The text of a chunk that carries text and nothing else, once the response has
        begun: nearly every chunk of a stream, and the general path's many checks were
        most of this translation's cost. None for any other chunk (the general path)."""
        choices = chunk.get("choices")
        if self.builder.response is None or type(choices) is not list or len(choices) != 1 \
                or "error" in chunk or chunk.get("usage") is not None:
            return None
        choice = choices[0]
        delta = choice.get("delta") if type(choice) is dict else None
        if type(delta) is not dict or len(delta) != 1 or choice.get("finish_reason") is not None \
                or choice.get("index", 0) != 0:
            return None
        text = delta.get("content")
        if type(text) is not str or not text:
            return None
        self._answered_by(chunk.get("model"))
        return text

    def _answered_by(self, model: Any) -> None:
        # Azure's first event (prompt filter results) names no model: the answer's final
        # form names the one that answered.
        if isinstance(model, str) and model and self.builder.response is not None:
            self.builder.response["model"] = model

    def close(self) -> list[Event]:
        events = self._begin(None)
        if self.builder.finished:
            return events
        if self.reason is None:
            return [*events, *self.builder.fail(
                "upstream_error", "The backend's stream ended before saying why it stopped.")]
        status, reason = STOP.get(self.reason, ("completed", None))
        return [*events, *self.builder.finish(status, reason, chat_usage(self.counts))]


TRANSLATOR = ResponsesToChat()
