"""`/responses/compact` on a backend that does not serve it (a chat-only or Claude
deployment, or Azure's api-version Responses route): the gateway compacts. The backend's
model is asked, in its own API, to summarise the conversation (the request's input,
then one more user turn asking for a hand-off summary; its tools kept, with tool_choice
none, since Messages wants the tools of the tool calls in the history); the answer
has the Responses compaction shape: the conversation's most recent user messages, then
one `compaction` item whose `encrypted_content` carries the summary (`opaque`), which
the Responses pairs read as a user turn in later requests. Codex uses `output` as its
new history verbatim."""

from __future__ import annotations

from typing import Any, ClassVar

from gateway.core.errors import UpstreamError
from gateway.core.operations import Operation
from gateway.translate import opaque, responses_chat, responses_messages
from gateway.translate.base import StreamTranslator, Target
from gateway.translate.bound import Answers
from gateway.translate.responses_stream import response_id

PROMPT = (
    "Context checkpoint. Write a summary of this whole conversation for whoever continues "
    "it, who will see only your summary and the user's latest messages: the user's goals and "
    "constraints; what has been done and what was found (files, commands, results, errors); "
    "the decisions taken and why; what is left to do, and the next step. Be specific and "
    "complete but brief. Answer with the summary only, and call no tool."
)
# The user messages kept beside the summary, newest first, about 20k tokens of them.
KEEP_CHARS = 80_000
# What of the compact request is carried into the summarising request.
_CARRIED = ("instructions", "tools", "parallel_tool_calls", "reasoning", "previous_response_id",
            "prompt_cache_key")


def summarising(body: dict[str, Any]) -> dict[str, Any]:
    """The compact request as a Responses request that asks for the summary."""
    given = body.get("input")
    items: list[Any] = ([{"role": "user", "content": given}] if isinstance(given, str)
                        else list(given) if isinstance(given, list) else [])
    out: dict[str, Any] = {k: body[k] for k in _CARRIED if body.get(k) is not None}
    out["input"] = [*items, {"role": "user", "content": PROMPT}]
    out["store"] = False
    if out.get("tools"):
        out["tool_choice"] = "none"
    return out


def kept_messages(body: dict[str, Any], ident: str) -> list[dict[str, Any]]:
    """The request's own user messages (not its developer or system ones, nor earlier
    compactions: the summary covers those), the newest that fit KEEP_CHARS, in order."""
    given = body.get("input")
    items = [{"role": "user", "content": given}] if isinstance(given, str) else given or []
    kept: list[dict[str, Any]] = []
    size = 0
    for item in reversed(items if isinstance(items, list) else []):
        if not isinstance(item, dict) or item.get("role") != "user" or item.get("type") not in (
                None, "message"):
            continue
        content = item.get("content")
        parts = [{"type": "input_text", "text": content}] if isinstance(content, str) else [
            p for p in content or [] if isinstance(p, dict) and p.get("type") == "input_text"]
        size += sum(len(str(p.get("text", ""))) for p in parts)
        if not parts or size > KEEP_CHARS:
            break
        kept.append({"type": "message", "role": "user", "content": parts, "status": "completed"})
    kept.reverse()
    return [{"id": f"msg_{ident.removeprefix('resp_')}{n:02x}", **item} for n, item in enumerate(kept)]


def _summary(response: dict[str, Any]) -> str:
    texts = [part.get("text", "") for item in response.get("output") or []
             if isinstance(item, dict) and item.get("type") == "message"
             for part in item.get("content") or [] if isinstance(part, dict)
             and part.get("type") == "output_text"]
    return "".join(str(t) for t in texts).strip()


class _Compaction(Answers):
    """Compaction through a Responses request, translated on by `via` (or sent as is
    to a backend that speaks Responses)."""

    client: ClassVar[Operation] = Operation.COMPACT
    via: ClassVar[Answers | None] = None

    def request(self, body: dict[str, Any], target: Target) -> dict[str, Any]:
        asked = summarising(body)
        return asked if self.via is None else self.via.request(asked, target)

    def answer(self, answer: dict[str, Any], request: dict[str, Any], target: Target) -> dict[str, Any]:
        response = answer if self.via is None else self.via.answer(answer, {}, target)
        summary = _summary(response)
        if not summary:
            raise UpstreamError("The backend's model answered the compaction with no summary.")
        compaction = {"id": "cmp_" + response_id(target).removeprefix("resp_"), "type": "compaction",
                      "encrypted_content": opaque.encode(opaque.SUMMARY, {"text": summary})}
        return {"id": response_id(target), "object": "response.compaction",
                "created_at": target.created,
                "output": [*kept_messages(request, response_id(target)), compaction],
                "usage": response.get("usage")}

    def stream(self, body: dict[str, Any], target: Target) -> StreamTranslator:
        raise AssertionError("compaction is never streamed")  # the adapter never streams


class CompactToResponses(_Compaction):
    backend: ClassVar[Operation] = Operation.RESPONSES


class CompactToChat(_Compaction):
    backend: ClassVar[Operation] = Operation.CHAT
    via = responses_chat.TRANSLATOR


class CompactToMessages(_Compaction):
    backend: ClassVar[Operation] = Operation.MESSAGES
    via = responses_messages.TRANSLATOR


TRANSLATORS = (CompactToResponses(), CompactToChat(), CompactToMessages())
