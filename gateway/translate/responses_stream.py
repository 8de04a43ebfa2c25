"""The Responses answer a translator makes of a backend of another API, whole or as the
event sequence a native stream has: `response.created`, `response.in_progress`, each
output item (`output_item.added`, its parts and deltas, `output_item.done`), then
`response.completed` or `response.incomplete` (or `error` + `response.failed`), every
event with its `sequence_number`, `output_index`, `content_index` / `summary_index` and
`item_id` (tests/fixtures/contract/responses-stream*.sse). One builder for every pair
whose client speaks Responses (`responses_chat`, `responses_messages`) and for replaying
a stored response (`replay`): whole answers are built by the same calls, their events
ignored, so a whole answer and a stream of the same output cannot differ.

Ids the gateway makes say so (`resp_gw_...`, items `msg_gw_...`): upstream ids are
`resp_` + hex, so the two never collide and `gateway.http.stored` can tell which store
holds one."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from gateway.translate.base import Event, Target

GATEWAY_ID = "resp_gw_"


def response_id(target: Target) -> str:
    """One id per request (the gateway's request id is 128 random bits): a failover to
    another backend keeps it."""
    return GATEWAY_ID + target.request_id


def is_gateway_id(ident: str) -> bool:
    return ident.startswith(GATEWAY_ID)


def usage(prompt: int, cached: int, output: int, reasoning: int, written: int = 0) -> dict[str, Any]:
    """A Responses usage object; `prompt` includes the `cached` tokens (read from the
    prompt cache) and the `written` ones (written to it), `output` the `reasoning` ones,
    as the Responses API counts them."""
    return {"input_tokens": prompt,
            "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": written},
            "output_tokens": output, "output_tokens_details": {"reasoning_tokens": reasoning},
            "total_tokens": prompt + output}


def obj(value: Any) -> dict[str, Any]:
    """A JSON object, or an empty one for anything else (a wire value is untrusted)."""
    return value if isinstance(value, dict) else {}


def skeleton(body: dict[str, Any], target: Target, model: str | None) -> dict[str, Any]:
    """The Response object as it stands before any output: the request's settings
    echoed as the Responses API echoes them."""
    reasoning, text = obj(body.get("reasoning")), obj(body.get("text"))
    return {
        "id": response_id(target), "object": "response", "created_at": target.created,
        "status": "in_progress", "background": False, "error": None, "incomplete_details": None,
        "instructions": body.get("instructions"), "max_output_tokens": body.get("max_output_tokens"),
        "max_tool_calls": body.get("max_tool_calls"), "model": model or target.model, "output": [],
        "parallel_tool_calls": body.get("parallel_tool_calls") is not False,
        "previous_response_id": body.get("previous_response_id"),
        "prompt_cache_key": body.get("prompt_cache_key"),
        "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")},
        "safety_identifier": body.get("safety_identifier"), "service_tier": "default",
        "store": body.get("store") is not False, "temperature": body.get("temperature", 1.0),
        "text": {"format": text.get("format") or {"type": "text"},
                 "verbosity": text.get("verbosity") or "medium"},
        "tool_choice": body.get("tool_choice", "auto"), "tools": body.get("tools") or [],
        "top_logprobs": body.get("top_logprobs") or 0, "top_p": body.get("top_p", 1.0),
        "truncation": body.get("truncation") or "disabled", "usage": None,
        "user": body.get("user"), "metadata": body.get("metadata") or {},
    }


@dataclass(slots=True)
class _Open:
    """The output item being generated."""

    index: int
    item: dict[str, Any]
    key: Any = None  # a chat tool call's `index`, to find it again
    part: dict[str, Any] | None = None  # the content (or summary) part being generated
    pieces: list[str] = field(default_factory=list)  # that part's text so far
    # An output_text part's delta event around its sequence number and its text (text).
    around: tuple[bytes, bytes, bytes] | None = None


class ResponseBuilder:
    """One answer's output items and events, in order. Items are generated one at a
    time, as every backend generates them (Anthropic's blocks, a chat stream's content
    then its tool calls): opening an item closes the one before."""

    def __init__(self, ident: str) -> None:
        self.ident = ident
        self.seq = 0
        self.response: dict[str, Any] | None = None
        self.output: list[dict[str, Any]] = []
        self.open: _Open | None = None
        self.calls: dict[Any, int] = {}  # a tool call's key -> its output index
        self.finished = False

    def _event(self, kind: str, **fields: Any) -> Event:
        data = {"type": kind, "sequence_number": self.seq, **fields}
        self.seq += 1
        return kind.encode(), orjson.dumps(data)

    def _delta_fields(self, delta: str, **extra: Any) -> dict[str, Any]:
        """A delta event's fields after its sequence number: where it goes, its text."""
        assert self.open is not None
        where = ({"summary_index": len(self.open.item["summary"]) - 1}
                 if self.open.item["type"] == "reasoning"
                 else {"content_index": len(self.open.item["content"]) - 1})
        return {"item_id": self.open.item["id"], "output_index": self.open.index, **where,
                "delta": delta, **extra}

    def _item_id(self, prefix: str) -> str:
        return f"{prefix}_{self.ident.removeprefix('resp_')}{len(self.output):02x}"

    # --- start --------------------------------------------------------------------------
    def begin(self, response: dict[str, Any]) -> list[Event]:
        """response.created and response.in_progress, once; `response` is the skeleton."""
        if self.response is not None:
            return []
        self.response = response
        return [self._event("response.created", response=response),
                self._event("response.in_progress", response=response)]

    def _add(self, item: dict[str, Any], key: Any = None) -> list[Event]:
        events = self.end_item()
        self.open = _Open(len(self.output), item, key)
        self.output.append(item)
        return [*events, self._event("response.output_item.added", output_index=self.open.index,
                                     item=self._in_progress(item))]

    @staticmethod
    def _in_progress(item: dict[str, Any]) -> dict[str, Any]:
        shown = {**item, "status": "in_progress"} if item["type"] != "reasoning" else dict(item)
        if item["type"] == "message":
            shown["content"] = []
        elif item["type"] == "function_call":
            shown["arguments"] = ""
        elif item["type"] == "reasoning":
            shown["summary"] = []
            shown.pop("encrypted_content", None)
        return shown

    # --- messages -----------------------------------------------------------------------
    def open_message(self, ident: str | None = None) -> list[Event]:
        return self._add({"id": ident or self._item_id("msg"), "type": "message",
                          "status": "in_progress", "content": [], "role": "assistant"})

    def _part(self, kind: str) -> list[Event]:
        """The message's current part is of `kind` (output_text or refusal)."""
        events: list[Event] = []
        if self.open is None or self.open.item["type"] != "message":
            events += self.open_message()
        assert self.open is not None
        if self.open.part is not None and self.open.part["type"] == kind:
            return events
        events += self._end_part()
        part = ({"type": "output_text", "annotations": [], "logprobs": [], "text": ""}
                if kind == "output_text" else {"type": "refusal", "refusal": ""})
        self.open.part = part
        self.open.item["content"].append(part)
        return [*events, self._event("response.content_part.added", item_id=self.open.item["id"],
                                     output_index=self.open.index,
                                     content_index=len(self.open.item["content"]) - 1,
                                     part=dict(part))]

    def text(self, delta: str) -> list[Event]:
        open_ = self.open
        if open_ is None or open_.part is None or open_.part["type"] != "output_text":
            events = self._part("output_text")
            return [*events, self._delta("response.output_text.delta", delta, logprobs=[])]
        # The part goes on: nearly every event of a stream. Its event is made from the
        # bytes around its sequence number and its text (the same bytes _delta's would
        # be), as building and dumping the whole event for each was most of the cost.
        if open_.around is None:
            model = orjson.dumps({"type": "response.output_text.delta", "sequence_number": 0,
                                  **self._delta_fields("", logprobs=[])})
            head, _, rest = model.partition(b'"sequence_number":0')
            middle, _, tail = rest.partition(b'"delta":""')
            open_.around = head + b'"sequence_number":', middle + b'"delta":', tail
        head, middle, tail = open_.around
        open_.pieces.append(delta)
        self.seq += 1
        return [(b"response.output_text.delta",
                 head + str(self.seq - 1).encode() + middle + orjson.dumps(delta) + tail)]

    def refusal(self, delta: str) -> list[Event]:
        events = self._part("refusal")
        return [*events, self._delta("response.refusal.delta", delta)]

    def _delta(self, kind: str, delta: str, **extra: Any) -> Event:
        assert self.open is not None
        self.open.pieces.append(delta)
        return self._event(kind, **self._delta_fields(delta, **extra))

    # --- reasoning ----------------------------------------------------------------------
    def open_reasoning(self, ident: str | None = None) -> list[Event]:
        return self._add({"id": ident or self._item_id("rs"), "type": "reasoning", "summary": []})

    def thinking(self, delta: str) -> list[Event]:
        """Reasoning text, as the reasoning item's summary."""
        events: list[Event] = []
        if self.open is None or self.open.item["type"] != "reasoning":
            events += self.open_reasoning()
        assert self.open is not None
        if self.open.part is None:
            self.open.part = {"type": "summary_text", "text": ""}
            self.open.item["summary"].append(self.open.part)
            events.append(self._event(
                "response.reasoning_summary_part.added", item_id=self.open.item["id"],
                output_index=self.open.index, summary_index=len(self.open.item["summary"]) - 1,
                part=dict(self.open.part)))
        return [*events, self._delta("response.reasoning_summary_text.delta", delta)]

    def seal(self, encrypted: str) -> list[Event]:
        """The open reasoning item's opaque state (opened if none is)."""
        events: list[Event] = []
        if self.open is None or self.open.item["type"] != "reasoning":
            events += self.open_reasoning()
        assert self.open is not None
        self.open.item["encrypted_content"] = encrypted
        return events

    # --- function calls -----------------------------------------------------------------
    def call(self, call_id: str, name: str, key: Any = None, ident: str | None = None) -> list[Event]:
        events = self._add({"id": ident or self._item_id("fc"), "type": "function_call",
                            "status": "in_progress", "arguments": "", "call_id": call_id,
                            "name": name}, key)
        self.calls[key] = len(self.output) - 1
        return events

    def arguments(self, delta: str, key: Any = None) -> list[Event]:
        if not delta:
            return []
        open_ = self.open
        if open_ is not None and open_.item["type"] == "function_call" and open_.key == key:
            open_.pieces.append(delta)
            return [self._event("response.function_call_arguments.delta", item_id=open_.item["id"],
                                output_index=open_.index, delta=delta)]
        index = self.calls.get(key)
        if index is None:
            return []  # arguments of a call never opened: a broken stream, nothing to attach to
        # A call already closed (deltas of two calls interleaved, which no backend seen
        # does): the delta still goes to its item, and the final answer holds it.
        item = self.output[index]
        item["arguments"] += delta
        return [self._event("response.function_call_arguments.delta", item_id=item["id"],
                            output_index=index, delta=delta)]

    # --- ends ---------------------------------------------------------------------------
    def _end_part(self) -> list[Event]:
        open_ = self.open
        if open_ is None or open_.part is None:
            return []
        part, text = open_.part, "".join(open_.pieces)
        open_.part, open_.pieces, open_.around = None, [], None
        ids = {"item_id": open_.item["id"], "output_index": open_.index}
        if part["type"] == "summary_text":
            part["text"] = text
            index = {"summary_index": len(open_.item["summary"]) - 1}
            return [self._event("response.reasoning_summary_text.done", **ids, **index, text=text),
                    self._event("response.reasoning_summary_part.done", **ids, **index, part=part)]
        index = {"content_index": len(open_.item["content"]) - 1}
        if part["type"] == "refusal":
            part["refusal"] = text
            done = self._event("response.refusal.done", **ids, **index, refusal=text)
        else:
            part["text"] = text
            done = self._event("response.output_text.done", **ids, **index, text=text, logprobs=[])
        return [done, self._event("response.content_part.done", **ids, **index, part=part)]

    def end_item(self, status: str = "completed") -> list[Event]:
        """Close the item being generated, if any."""
        open_ = self.open
        if open_ is None:
            return []
        item = open_.item
        if item["type"] == "function_call":
            item["arguments"] = "".join(open_.pieces) or "{}"  # no input at all is an empty object
            events = [self._event("response.function_call_arguments.done", item_id=item["id"],
                                  output_index=open_.index, arguments=item["arguments"])]
        else:
            events = self._end_part()
        if item["type"] != "reasoning":
            item["status"] = status
        self.open = None
        return [*events, self._event("response.output_item.done", output_index=open_.index, item=item)]

    def final(self, status: str, reason: str | None, usage_: dict[str, Any] | None) -> dict[str, Any]:
        assert self.response is not None
        return {**self.response, "status": status,
                "incomplete_details": {"reason": reason} if status == "incomplete" else None,
                "output": self.output, "usage": usage_}

    def finish(self, status: str, reason: str | None, usage_: dict[str, Any] | None) -> list[Event]:
        """The terminal event: `completed`, or `incomplete` with its reason."""
        if self.finished:
            return []
        self.finished = True
        events = self.end_item("incomplete" if status == "incomplete" else "completed")
        kind = "response.incomplete" if status == "incomplete" else "response.completed"
        self.response = self.final(status, reason, usage_)
        return [*events, self._event(kind, response=self.response)]

    def fail(self, code: str, message: str) -> list[Event]:
        """A backend error after the stream began: an `error` event (the nested shape the
        live API sends, which the openai SDK raises on) with the backend's code, then
        `response.failed`, whose error code is one of the Responses API's."""
        if self.finished:
            return []
        self.finished = True
        events = self.end_item("incomplete")
        error = {"type": "server_error", "code": code, "message": message, "param": None}
        kind = "rate_limit_exceeded" if "rate_limit" in code else "server_error"
        failed = {**self.final("failed", None, None), "error": {"code": kind, "message": message}}
        self.response = failed
        return [*events, self._event("error", error=error),
                self._event("response.failed", response=failed)]


def replay(stored: dict[str, Any], after: int | None = None) -> list[Event]:
    """The events of a stored response, as a stream of it would have had them (each
    text in one delta): what `GET /responses/{id}?stream=true` answers; `after` is the
    client's `starting_after` sequence number."""
    builder = ResponseBuilder(str(stored.get("id", "")))
    events = builder.begin({**stored, "status": "in_progress", "output": [], "usage": None,
                            "incomplete_details": None})
    for item in stored.get("output") or []:
        events += _replay_item(builder, item)
        if builder.open is not None:
            builder.open.item.update(item)  # the stored item as it was, ids and status included
        events += builder.end_item(str(item.get("status") or "completed"))
    status = str(stored.get("status") or "completed")
    details = stored.get("incomplete_details")
    reason = details.get("reason") if isinstance(details, dict) else None
    events += builder.finish(status, reason, stored.get("usage"))
    return [e for e in events if after is None or orjson.loads(e[1])["sequence_number"] > after]


def _replay_item(builder: ResponseBuilder, item: dict[str, Any]) -> list[Event]:
    kind, ident = item.get("type"), item.get("id")
    if kind == "message":
        events = builder.open_message(ident)
        for part in item.get("content") or []:
            if part.get("type") == "refusal":
                events += builder.refusal(str(part.get("refusal", "")))
            else:
                events += builder.text(str(part.get("text", "")))
        return events
    if kind == "reasoning":
        events = builder.open_reasoning(ident)
        for part in item.get("summary") or []:
            events += builder.thinking(str(part.get("text", "")))
            events += builder._end_part()
        return events
    if kind == "function_call":
        return [*builder.call(str(item.get("call_id")), str(item.get("name")), ident=ident),
                *builder.arguments(str(item.get("arguments", "")))]
    return []
