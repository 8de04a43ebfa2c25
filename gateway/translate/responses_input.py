"""A Responses request read for a backend of another API (`responses_chat`,
`responses_messages`, and the compaction the gateway does, `compact`): its input items
as one ordered list of entries (system text, user and assistant messages, function
calls and their outputs, Claude's reasoning blocks), its tools and settings. What no
backend of another API can carry is refused here, once for every pair, naming the
field; what a pair's backend cannot carry, the pair refuses. docs/contract.md §8 has
the table."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gateway.apis.responses import RESPONSES
from gateway.translate import opaque
from gateway.translate.base import Target, refuse

# A compaction item the gateway made, as the backend reads it later (a user turn).
SUMMARY_INTRO = ("[The earlier part of this conversation was compacted. Summary of it, "
                 "written for you to continue the work:]\n\n")
# The only `include` value a translated answer honours: reasoning state is always in
# the reasoning items it returns (Claude needs its blocks back).
INCLUDABLE = frozenset({"reasoning.encrypted_content"})
EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh")
# Fields that cannot be carried whatever the backend: why, and the value that is fine.
_NOT_CARRIED: dict[str, tuple[str, tuple[Any, ...]]] = {
    "background": ("background responses run on OpenAI's or Azure's servers", (False, None)),
    "conversation": ("the Conversations API is not served by the gateway", (None,)),
    "prompt": ("stored prompt templates live on OpenAI's servers", (None,)),
    "max_tool_calls": ("the backend cannot cap built-in tool calls", (None,)),
    "truncation": ("the backend does not truncate a context that is too long", ("disabled", None)),
    "top_logprobs": ("log probabilities are not translated", (0, None)),
}
# Read elsewhere, or passed over with the reason in docs/contract.md §8.
_READ = frozenset({
    "model", "input", "instructions", "stream", "max_output_tokens", "store",
    "previous_response_id", "tools", "tool_choice", "parallel_tool_calls", "reasoning", "text",
    "temperature", "top_p", "include", "metadata", "user", "safety_identifier",
    "stream_options", "prompt_cache_key", "prompt_cache_retention", "service_tier",
    *_NOT_CARRIED,
})
assert RESPONSES.known == _READ, "every field of the Responses API has a place here"
# Fields some clients send beyond the API's own, passed over: Codex's `client_metadata`
# (ids for OpenAI's own logs), `prompt_cache_options` (OpenAI's cache breakpoints).
_PASSED = frozenset({"client_metadata", "prompt_cache_options"})


@dataclass(slots=True)
class Part:
    """A piece of a message: text, or an image (a URL or a data: URL)."""

    text: str | None = None
    image: str | None = None
    detail: str | None = None


@dataclass(slots=True)
class Entry:
    """One input item. `role` is system (system and developer messages, and the
    instructions), user, assistant, call (a function call the model made), result (a
    function's output) or thought (a Claude reasoning block, decoded)."""

    role: str
    parts: list[Part] = field(default_factory=list)
    call_id: str = ""
    name: str = ""
    arguments: str = ""
    block: dict[str, Any] = field(default_factory=dict)
    where: str = ""  # the item's path in the request, for error messages


@dataclass(slots=True)
class Tool:
    name: str
    description: str | None
    parameters: dict[str, Any]
    strict: bool | None  # as the client said; None when it said nothing


@dataclass(slots=True)
class Request:
    entries: list[Entry]
    tools: list[Tool]
    choice: str | None  # auto, none, required; or None
    forced: str | None  # the function tool_choice names
    parallel: bool | None
    max_output_tokens: int | None
    temperature: float | None
    top_p: float | None
    effort: str | None
    format: dict[str, Any] | None  # text.format when it is json_schema or json_object
    user: str | None  # user, else safety_identifier: who the end user is


def read(body: dict[str, Any], target: Target, backend: str) -> Request:
    """The request, or UnsupportedParameter for the first field that cannot go to
    `backend` (the API's name, for the message)."""
    for name in body:
        if name not in _READ and name not in _PASSED:
            raise refuse(name, target, f"it is not a Responses field the gateway can carry to {backend}")
    for name, (why, fine) in _NOT_CARRIED.items():
        if body.get(name) not in fine:
            raise refuse(name, target, why)
    include = body.get("include") or []
    for i, value in enumerate(include if isinstance(include, list) else [include]):
        if value not in INCLUDABLE:
            raise refuse(f"include[{i}]", target, f"{backend} answers have no {value}")
    entries: list[Entry] = []
    if isinstance(body.get("instructions"), str) and body["instructions"]:
        entries.append(Entry("system", [Part(text=body["instructions"])], where="instructions"))
    given = body.get("input")
    if isinstance(given, str):
        entries.append(Entry("user", [Part(text=given)], where="input"))
    elif isinstance(given, list):
        for i, item in enumerate(given):
            entry = _item(item, f"input[{i}]", target)
            if entry is not None:
                entries.append(entry)
    choice, forced = _tool_choice(body.get("tool_choice"), target)
    reasoning = body.get("reasoning")
    effort = reasoning.get("effort") if isinstance(reasoning, dict) else None
    if effort is not None and effort not in EFFORTS:
        raise refuse("reasoning.effort", target, f"'{effort}' is not a reasoning effort")
    user = body.get("user") or body.get("safety_identifier")
    return Request(
        entries=entries, tools=_tools(body.get("tools"), target), choice=choice, forced=forced,
        parallel=body.get("parallel_tool_calls") if isinstance(body.get("parallel_tool_calls"), bool)
        else None,
        max_output_tokens=body.get("max_output_tokens"), temperature=_number(body, "temperature"),
        top_p=_number(body, "top_p"), effort=effort, format=_format(body.get("text"), target),
        user=user if isinstance(user, str) else None)


def _number(body: dict[str, Any], name: str) -> float | None:
    value = body.get(name)
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _item(item: Any, where: str, target: Target) -> Entry | None:
    if not isinstance(item, dict):
        raise refuse(where, target, "an input item must be an object")
    kind, role = item.get("type"), item.get("role")
    if kind in (None, "message") and role is not None:
        if role not in ("user", "assistant", "system", "developer"):
            raise refuse(f"{where}.role", target, f"'{role}' is not a message role")
        return Entry("system" if role in ("system", "developer") else role,
                     _parts(item.get("content"), f"{where}.content", target), where=where)
    if kind == "function_call":
        arguments = item.get("arguments")
        return Entry("call", call_id=_text(item, "call_id", where, target),
                     name=_text(item, "name", where, target),
                     arguments=arguments if isinstance(arguments, str) else "{}", where=where)
    if kind == "function_call_output":
        output = item.get("output")
        parts = [Part(text=output)] if isinstance(output, str) else _parts(output, f"{where}.output",
                                                                            target)
        return Entry("result", parts, call_id=_text(item, "call_id", where, target), where=where)
    if kind == "reasoning":
        block = opaque.decode(opaque.CLAUDE, item.get("encrypted_content"))
        # Reasoning of another model (an upstream's encrypted state, or none) has nothing
        # this backend can read: it is passed over, as §8 says.
        return Entry("thought", block=block, where=where) if block is not None else None
    if kind in ("compaction", "compaction_summary"):
        summary = opaque.decode(opaque.SUMMARY, item.get("encrypted_content"))
        if summary is None or not isinstance(summary.get("text"), str):
            raise refuse(f"{where}.encrypted_content", target,
                         "this compaction was made by another service and only it can read it")
        return Entry("user", [Part(text=SUMMARY_INTRO + summary["text"])], where=where)
    if kind == "compaction_trigger":
        raise refuse(f"{where}.type", target, "compaction inside a response is not done on a "
                     "translated backend; POST /responses/compact does it")
    if kind == "item_reference":
        raise refuse(f"{where}.type", target, "items are not referenced by id on a translated backend")
    raise refuse(f"{where}.type", target, f"'{kind}' items belong to tools the backend does not have")


def _text(item: dict[str, Any], name: str, where: str, target: Target) -> str:
    value = item.get(name)
    if not isinstance(value, str) or not value:
        raise refuse(f"{where}.{name}", target, "it must be a non-empty string")
    return value


def _parts(content: Any, where: str, target: Target) -> list[Part]:
    if isinstance(content, str):
        return [Part(text=content)]
    if not isinstance(content, list):
        raise refuse(where, target, "content must be a string or a list of parts")
    parts = []
    for j, part in enumerate(content):
        here = f"{where}[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text", "text") and isinstance(part.get("text"), str):
            parts.append(Part(text=part["text"]))
        elif kind == "refusal" and isinstance(part.get("refusal"), str):
            parts.append(Part(text=part["refusal"]))  # the model's own earlier refusal, as text
        elif kind == "input_image":
            url = part.get("image_url")
            if not isinstance(url, str) or not url:
                raise refuse(f"{here}.file_id" if part.get("file_id") else here, target,
                             "images are carried by URL or data: URL (the Files API is not served)")
            parts.append(Part(image=url, detail=part.get("detail")))
        elif kind == "input_audio":
            raise refuse(here, target, "audio input is not translated")
        elif kind == "input_file":
            raise refuse(here, target, "file inputs are not translated")
        else:
            raise refuse(here, target, f"'{kind}' is not a content part the backend has")
    return parts


def _tools(tools: Any, target: Target) -> list[Tool]:
    found = []
    for i, tool in enumerate(tools or []):
        kind = tool.get("type") if isinstance(tool, dict) else None
        if kind != "function":
            raise refuse(f"tools[{i}].type", target,
                         f"the built-in tool '{kind}' runs on OpenAI's servers; only function tools "
                         "are translated")
        name = tool.get("name")
        if not isinstance(name, str) or not name:
            raise refuse(f"tools[{i}].name", target, "a function tool needs a name")
        params = tool.get("parameters")
        found.append(Tool(name, tool.get("description") if isinstance(tool.get("description"), str)
                          else None,
                          params if isinstance(params, dict) else {"type": "object", "properties": {}},
                          tool.get("strict") if isinstance(tool.get("strict"), bool) else None))
    return found


def _tool_choice(choice: Any, target: Target) -> tuple[str | None, str | None]:
    if choice is None or choice in ("auto", "none", "required"):
        return choice, None
    if isinstance(choice, dict) and choice.get("type") == "function" and isinstance(choice.get("name"), str):
        return None, choice["name"]
    kind = choice.get("type") if isinstance(choice, dict) else choice
    raise refuse("tool_choice", target, f"'{kind}' names a tool choice only OpenAI's servers have")


def _format(text: Any, target: Target) -> dict[str, Any] | None:
    fmt = text.get("format") if isinstance(text, dict) else None
    if fmt is None or (isinstance(fmt, dict) and fmt.get("type") == "text"):
        return None
    if isinstance(fmt, dict) and fmt.get("type") in ("json_schema", "json_object"):
        return fmt
    raise refuse("text.format", target, "it is not a format the backend has")
