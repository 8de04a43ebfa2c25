"""A Chat Completions client on an Anthropic Messages backend (a Claude alias reached
with the openai SDK): the chat request in Messages' shape, Claude's whole answer and its
stream back in Chat Completions' shape, event by event.

Claude's thinking reaches the chat client as `reasoning_content` (the text) and
`thinking_blocks` (the blocks, signatures included) on the assistant message; an
assistant message that brings `thinking_blocks` back is sent to Claude with them first,
unchanged, so that a tool loop with extended thinking works. Every chat field is mapped,
refused, or passed over with its reason written beside it (the *_PASSED tables;
docs/contract.md §8)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from gateway.core.operations import Operation
from gateway.translate.anthropic_chat import (
    EFFORT_BUDGET,
    MIN_BUDGET,
    TIERS,
    TO_FINISH,
    anthropic_tools,
    chat_usage,
    document_block,
    image_block,
    parse_event,
    screen,
    text_block,
    tool_call,
    tool_use,
)
from gateway.translate.base import Event, StreamTranslator, Target, Translator, refuse


def _unset(value: Any) -> bool:
    return not value


# Fields Anthropic has no counterpart for: accepted at their default value (the test),
# refused with the reason otherwise.
DEFAULT_ONLY: dict[str, tuple[Callable[[Any], bool], str]] = {
    "n": (lambda v: v == 1, "Anthropic generates one answer per request"),
    "logprobs": (_unset, "Anthropic returns no log probabilities"),
    "top_logprobs": (_unset, "Anthropic returns no log probabilities"),
    "frequency_penalty": (_unset, "Anthropic has no repetition penalties"),
    "presence_penalty": (_unset, "Anthropic has no repetition penalties"),
    "logit_bias": (_unset, "Anthropic has no token biases"),
    "modalities": (lambda v: v == ["text"], "Claude answers in text only"),
    "store": (_unset, "Anthropic stores no completions"),
    "response_format": (lambda v: isinstance(v, dict) and v.get("type") == "text",
                        "Anthropic's structured outputs need a beta header and model support that a "
                        "translated request cannot promise; describe the format in the prompt or use a tool"),
}
MAPPED = frozenset({
    "model", "messages", "stream", "stream_options", "max_tokens", "max_completion_tokens",
    "temperature", "top_p", "stop", "tools", "tool_choice", "parallel_tool_calls",
    "reasoning_effort", "user", "safety_identifier", "service_tier", *DEFAULT_ONLY,
})
PASSED = {
    "seed": "OpenAI's determinism is best effort and Anthropic has no seed; the answer is the "
            "same kind of answer without it",
    "prediction": "a latency hint (predicted output); Anthropic has none, and the answer does "
                  "not depend on it",
    "prompt_cache_key": "a routing hint for OpenAI's automatic cache; Claude caches at the "
                        "`cache_control` breakpoints the request carries",
    "metadata": "labels OpenAI keeps with stored completions (`store`); Anthropic's metadata "
                "holds only user_id, which comes from `user`",
    "user_security_context": "Azure's Defender for Cloud context; Anthropic has no counterpart "
                             "and the answer does not depend on it",
}
REFUSED = {
    "functions": "the deprecated functions API is not translated; send `tools`",
    "function_call": "the deprecated functions API is not translated; send `tool_choice`",
    "audio": "Claude does not generate audio",
    "data_sources": "Azure On Your Data runs only on Azure OpenAI",
    "web_search_options": "web search is an OpenAI built-in tool",
    "verbosity": "Anthropic has no verbosity setting",
}
MESSAGE_KEYS = {
    "system": frozenset({"role", "content"}),
    "developer": frozenset({"role", "content"}),
    "user": frozenset({"role", "content"}),
    "assistant": frozenset({"role", "content", "tool_calls", "refusal", "thinking_blocks"}),
    "tool": frozenset({"role", "content", "tool_call_id"}),
}
MESSAGE_PASSED = {
    "name": "Anthropic messages have no participant names",
    "reasoning_content": "unsigned reasoning cannot go back to Claude; `thinking_blocks` carry it",
    "annotations": "citations of an earlier answer, which the model does not read",
}
MESSAGE_REFUSED = {
    "audio": "Claude takes no audio from earlier answers",
    "function_call": "the deprecated functions API is not translated; send `tool_calls`",
}
PART_PASSED = {"image_url": {"detail": "Claude sizes images itself"}}


class ChatToMessages(Translator):
    client = Operation.CHAT
    backend = Operation.MESSAGES

    def request(self, body: dict[str, Any], target: Target) -> dict[str, Any]:
        screen(body, MAPPED, PASSED, REFUSED, "", target)
        _defaults(body, target)
        system, turns = _conversation(body.get("messages") or [], target)
        out: dict[str, Any] = {"messages": turns}
        if system:
            out["system"] = system
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        out["max_tokens"] = limit if isinstance(limit, int) else target.default_max_tokens
        _thinking(body, out, isinstance(limit, int), target)
        temperature = body.get("temperature")
        if temperature is not None:
            if not isinstance(temperature, (int, float)) or temperature > 1:
                raise refuse("temperature", target, "Anthropic takes a temperature from 0 to 1")
            out["temperature"] = temperature
        if body.get("top_p") is not None:
            out["top_p"] = body["top_p"]
        stop = body.get("stop")
        if stop:
            out["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
        anthropic_tools(body, out, target)
        user = body.get("safety_identifier") or body.get("user")
        if isinstance(user, str) and user:
            out["metadata"] = {"user_id": user}
        tier = body.get("service_tier")
        if tier is not None:
            if tier not in TIERS:
                raise refuse("service_tier", target, "Anthropic's tiers are auto and standard_only "
                             "(chat's auto and default)")
            out["service_tier"] = TIERS[tier]
        if body.get("stream") is True:
            out["stream"] = True
        return out

    def response(self, body: dict[str, Any], target: Target) -> dict[str, Any]:
        texts: list[str] = []
        calls: list[dict[str, Any]] = []
        thinking: list[dict[str, Any]] = []
        for block in body.get("content") or []:
            kind = block.get("type") if isinstance(block, dict) else None
            if kind == "text":
                texts.append(str(block.get("text") or ""))
            elif kind == "tool_use":
                calls.append(tool_call(block))
            elif kind in ("thinking", "redacted_thinking"):
                thinking.append(block)
            # Other blocks (server tools' results) answer only server tools, which no
            # chat request can ask for.
        message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) or (None if calls else ""),
                                   "refusal": None}
        if calls:
            message["tool_calls"] = calls
        if thinking:
            message["reasoning_content"] = "".join(str(b.get("thinking") or "") for b in thinking)
            message["thinking_blocks"] = thinking
        reason = body.get("stop_reason")
        finish = TO_FINISH.get(reason, "stop") if isinstance(reason, str) else "stop"
        out: dict[str, Any] = {
            "id": body.get("id"), "object": "chat.completion", "created": target.created,
            "model": body.get("model") or target.model,
            "choices": [{"index": 0, "message": message, "logprobs": None,
                         "finish_reason": finish}],
        }
        if isinstance(body.get("usage"), dict):
            out["usage"] = chat_usage(body["usage"])
        return out

    def stream(self, body: dict[str, Any], target: Target) -> StreamTranslator:
        options = body.get("stream_options")
        return ChatStream(target, isinstance(options, dict) and options.get("include_usage") is True)


def _defaults(body: dict[str, Any], target: Target) -> None:
    for name, (default, why) in DEFAULT_ONLY.items():
        value = body.get(name)
        if value is not None and not default(value):
            raise refuse(name, target, why)


def _thinking(body: dict[str, Any], out: dict[str, Any], limited: bool, target: Target) -> None:
    """reasoning_effort -> thinking with a budget from EFFORT_BUDGET. Both APIs count
    thinking within the output limit: a client's limit bounds the budget (Anthropic wants
    it below max_tokens); without one, the deployment's default is left for the answer."""
    effort = body.get("reasoning_effort")
    if effort is None or effort == "none":
        return
    budget = EFFORT_BUDGET.get(effort) if isinstance(effort, str) else None
    if budget is None:
        raise refuse("reasoning_effort", target, f"efforts are {', '.join(['none', *EFFORT_BUDGET])}")
    if limited:
        budget = min(budget, out["max_tokens"] - 1)
        if budget < MIN_BUDGET:
            raise refuse("reasoning_effort", target, f"Claude's least thinking budget is {MIN_BUDGET} "
                         f"tokens, within max_tokens {out['max_tokens']}")
    else:
        out["max_tokens"] += budget
    out["thinking"] = {"type": "enabled", "budget_tokens": budget}


# --- the conversation -------------------------------------------------------------------
def _conversation(messages: list[Any], target: Target) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Chat messages -> (Anthropic system blocks, turns). System and developer messages go
    to `system` in order, wherever they stood; tool messages become tool_result blocks of
    a user turn; consecutive turns of one role are merged, as Anthropic wants them
    alternating from a user turn."""
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        role = message.get("role") if isinstance(message, dict) else None
        if not isinstance(message, dict) or role not in MESSAGE_KEYS:
            raise refuse(f"{where}.role", target, "Anthropic takes system, developer, user, assistant "
                         "and tool messages (the deprecated function role is not translated)")
        screen(message, MESSAGE_KEYS[role], MESSAGE_PASSED, MESSAGE_REFUSED, where, target)
        content = message.get("content")
        if role in ("system", "developer"):
            system += _parts(content, where, target, texts_only=True)
            continue
        if role == "user":
            blocks = _parts(content, where, target)
        elif role == "tool":
            blocks = [{"type": "tool_result", "tool_use_id": message.get("tool_call_id"),
                       "content": _tool_content(content, where, target)}]
            role = "user"
        else:
            blocks = _assistant(message, where, target)
        if not blocks:
            continue  # an empty message says nothing, and Anthropic refuses empty turns
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"] += blocks
        else:
            turns.append({"role": role, "content": blocks})
    if not turns or turns[0]["role"] != "user":
        raise refuse("messages", target, "Anthropic wants the conversation to start with a user "
                     "message (after any system messages)")
    if turns[-1]["role"] == "assistant":
        raise refuse(f"messages[{len(messages) - 1}]", target, "Claude would continue a final "
                     "assistant message (a prefill), where chat answers it with a new one")
    return system, turns


def _parts(content: Any, where: str, target: Target, texts_only: bool = False) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if content is None:
        return []
    if not isinstance(content, list):
        raise refuse(f"{where}.content", target, "content is a string or a list of parts")
    blocks: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        here = f"{where}.content[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if not isinstance(part, dict):
            raise refuse(here, target, "a content part is an object")
        if kind == "text":
            screen(part, frozenset({"type", "text", "cache_control"}), {}, {}, here, target)
            if part.get("text"):
                blocks.append(text_block(part))
        elif kind == "image_url" and not texts_only:
            screen(part, frozenset({"type", "image_url", "cache_control"}), {}, {}, here, target)
            if isinstance(part.get("image_url"), dict):
                screen(part["image_url"], frozenset({"url"}), PART_PASSED["image_url"], {},
                       f"{here}.image_url", target)
            blocks.append(image_block(part, here, target))
        elif kind == "file" and not texts_only:
            blocks.append(document_block(part, here, target))
        else:
            raise refuse(f"{here}.type", target, f"a {kind!r} part has no Anthropic counterpart here")
    return blocks


def _tool_content(content: Any, where: str, target: Target) -> str | list[dict[str, Any]]:
    if isinstance(content, str) or content is None:
        return content or ""
    return _parts(content, where, target, texts_only=True)


def _assistant(message: dict[str, Any], where: str, target: Target) -> list[dict[str, Any]]:
    """An assistant message: its thinking blocks first and as they came (Claude checks their
    signatures), then its text, then its tool calls as tool_use blocks, ids kept."""
    blocks: list[dict[str, Any]] = []
    for j, block in enumerate(message.get("thinking_blocks") or []):
        if not isinstance(block, dict) or block.get("type") not in ("thinking", "redacted_thinking"):
            raise refuse(f"{where}.thinking_blocks[{j}]", target, "thinking blocks are Claude's "
                         "thinking and redacted_thinking blocks")
        # `index` is what the translated stream numbered them by, for the openai SDK's
        # accumulator; it is not part of the block.
        blocks.append({k: v for k, v in block.items() if k != "index"})
    content = message.get("content")
    if isinstance(content, list):  # a refusal the model gave is text it said
        content = [{"type": "text", "text": p.get("refusal")}
                   if isinstance(p, dict) and p.get("type") == "refusal" else p for p in content]
    blocks += _parts(content, where, target, texts_only=True)
    if isinstance(message.get("refusal"), str) and message["refusal"]:
        blocks.append({"type": "text", "text": message["refusal"]})
    return blocks + [tool_use(call, f"{where}.tool_calls[{j}]", target)
                     for j, call in enumerate(message.get("tool_calls") or [])]


# --- the stream -------------------------------------------------------------------------
class ChatStream(StreamTranslator):
    """Claude's stream -> chat chunks: text_delta -> content, input_json_delta -> tool-call
    arguments (a tool_use block's start opens its call, id and name), thinking_delta ->
    reasoning_content and, once the block ends, the whole block (its signature) in
    thinking_blocks; message_delta -> the finish, message_stop -> the usage chunk."""

    def __init__(self, target: Target, usage_wanted: bool) -> None:
        self.target, self.usage_wanted = target, usage_wanted
        self.id, self.model = "", target.model
        self.usage: dict[str, Any] = {}
        # Claude's block index -> its kind and state: tool call number, whether arguments
        # went out, the thinking text and signature so far.
        self.blocks: dict[int, dict[str, Any]] = {}
        self.calls = self.thoughts = 0
        self.ended = self.finished = False
        self._around: tuple[bytes, bytes] | None = None  # see _text

    def _text(self, text: str) -> Event:
        """_chunk({"content": text}), byte for byte, from the bytes around the text made
        once per stream: a text delta is nearly every event of a stream, and building
        and dumping the whole chunk for each was most of what this translation cost."""
        if self._around is None:
            head, tail = self._chunk({"content": ""})[1].split(b'"content":""')
            self._around = head + b'"content":', tail
        head, tail = self._around
        return None, head + orjson.dumps(text) + tail

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> Event:
        return None, orjson.dumps({
            "id": self.id, "object": "chat.completion.chunk", "created": self.target.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]})

    def feed(self, name: bytes | None, data: bytes) -> list[Event]:
        if self.ended:
            return []
        event = parse_event(data)
        kind = event.get("type")
        if kind == "content_block_delta":  # first: nearly every event is one
            return self._delta(event)
        if kind == "message_start":
            message = event.get("message") or {}
            self.id = str(message.get("id") or "")
            self.model = str(message.get("model") or self.model)
            self._around = None
            self.usage.update(message.get("usage") or {})
            return [self._chunk({"role": "assistant", "content": "", "refusal": None})]
        if kind == "content_block_start":
            return self._start(event)
        if kind == "content_block_stop":
            return self._stop(event)
        if kind == "message_delta":
            self.finished = True
            # Its usage replaces message_start's field by field (output_tokens always,
            # input and cache counts when it carries them).
            self.usage.update(event.get("usage") or {})
            reason = (event.get("delta") or {}).get("stop_reason")
            return [self._chunk({}, TO_FINISH.get(reason, "stop") if isinstance(reason, str) else "stop")]
        if kind == "message_stop":
            self.ended = True
            return [self._usage()] if self.usage_wanted else []
        if kind == "error":
            self.ended = True
            error = event.get("error") or {}
            return [(None, orjson.dumps({"error": {
                "message": error.get("message") or "The upstream stream failed.",
                "type": error.get("type") or "api_error", "code": error.get("type"), "param": None}}))]
        return []  # ping, and events this translation does not know

    def _usage(self) -> Event:
        return None, orjson.dumps({"id": self.id, "object": "chat.completion.chunk",
                                   "created": self.target.created, "model": self.model,
                                   "choices": [], "usage": chat_usage(self.usage)})

    def _start(self, event: dict[str, Any]) -> list[Event]:
        block = event.get("content_block") or {}
        kind = block.get("type")
        state: dict[str, Any] = {"kind": kind}
        self.blocks[_index(event)] = state
        if kind == "tool_use":
            state.update(call=self.calls, sent=False, input=block.get("input") or {})
            self.calls += 1
            return [self._chunk({"tool_calls": [{"index": state["call"], "id": block.get("id"),
                                                 "type": "function",
                                                 "function": {"name": block.get("name"), "arguments": ""}}]})]
        if kind == "thinking":
            state.update(thinking=str(block.get("thinking") or ""),
                         signature=str(block.get("signature") or ""))
            return [self._chunk({"reasoning_content": state["thinking"]})] if state["thinking"] else []
        if kind == "redacted_thinking":
            state["block"] = block
        if kind == "text" and block.get("text"):
            return [self._chunk({"content": block["text"]})]
        return []

    def _delta(self, event: dict[str, Any]) -> list[Event]:
        delta = event.get("delta") or {}
        kind = delta.get("type")
        if kind == "text_delta":
            text = delta.get("text")
            return [self._text(text)] if isinstance(text, str) and text else []
        state = self.blocks.get(_index(event)) or {}
        if kind == "input_json_delta" and delta.get("partial_json") and "call" in state:
            state["sent"] = True
            return [self._chunk({"tool_calls": [{"index": state["call"],
                                                 "function": {"arguments": delta["partial_json"]}}]})]
        if kind == "thinking_delta" and delta.get("thinking") and "thinking" in state:
            state["thinking"] += delta["thinking"]
            return [self._chunk({"reasoning_content": delta["thinking"]})]
        if kind == "signature_delta" and "signature" in state:
            state["signature"] += str(delta.get("signature") or "")
        return []  # citations and deltas of blocks a chat client has no place for

    def _stop(self, event: dict[str, Any]) -> list[Event]:
        state = self.blocks.get(_index(event)) or {}
        if "call" in state and not state["sent"]:
            # A call without arguments: chat clients parse "{}", never "".
            arguments = orjson.dumps(state["input"]).decode()
            return [self._chunk({"tool_calls": [{"index": state["call"],
                                                 "function": {"arguments": arguments}}]})]
        block: dict[str, Any] | None = None
        if state.get("kind") == "thinking":
            block = {"type": "thinking", "thinking": state["thinking"], "signature": state["signature"]}
        elif state.get("kind") == "redacted_thinking":
            block = dict(state["block"])
        if block is None:
            return []
        # Numbered, so that the openai SDK's stream accumulator files each block apart.
        self.thoughts += 1
        return [self._chunk({"thinking_blocks": [{"index": self.thoughts - 1, **block}]})]

    def close(self) -> list[Event]:
        if self.ended or not self.id:
            return []
        self.ended = True
        if self.finished:  # the answer was whole; only message_stop was missing
            return [self._usage()] if self.usage_wanted else []
        return [(None, orjson.dumps({"error": {
            "message": "The upstream stream ended before its last event.", "type": "server_error",
            "code": "upstream_error", "param": None}}))]


def _index(event: dict[str, Any]) -> int:
    index = event.get("index")
    return index if isinstance(index, int) else 0


TRANSLATOR = ChatToMessages()
