"""Server-sent events: incremental decoding of what upstream sends, and the one
strict form the gateway sends (`data: <json>\\n\\n`, nothing else)."""

from __future__ import annotations

import re

DONE = b"[DONE]"
DONE_EVENT = b"data: [DONE]\n\n"
# A usage object (not `"usage":null`) somewhere in the event.
_USAGE_OBJECT = re.compile(rb'"usage"\s*:\s*\{')
_NEWLINES = re.compile(rb"\r\n|\r")


# A chat delta or completion text that is not empty: one generated token, as
# upstreams stream them.
_CONTENT = re.compile(rb'"(?:content|text)"\s*:\s*"[^"]')


def has_content(data: bytes) -> bool:
    return _CONTENT.search(data) is not None


def encode(data: bytes) -> bytes:
    return b"data: " + data + b"\n\n"


def has_usage(data: bytes) -> bool:
    return _USAGE_OBJECT.search(data) is not None


class Decoder:
    """Feeds raw chunks, yields the data of each complete event.

    Partial lines are kept across chunks; comments, `event:`/`id:`/`retry:`
    lines and CR line endings are dropped, since the azure-ai-inference parser
    rejects them; multi-line data is joined with a newline as the SSE spec says.
    """

    __slots__ = ("_buffer", "_data")

    def __init__(self) -> None:
        self._buffer = b""
        self._data: list[bytes] = []

    def feed(self, chunk: bytes) -> list[bytes]:
        buffer = self._buffer + chunk
        tail = b""
        if b"\r" in buffer:
            if buffer.endswith(b"\r"):  # may be the first half of a CRLF
                buffer, tail = buffer[:-1], b"\r"
            buffer = _NEWLINES.sub(b"\n", buffer)
        lines = buffer.split(b"\n")
        self._buffer = lines.pop() + tail
        events: list[bytes] = []
        for line in lines:
            if not line:
                if self._data:
                    events.append(b"\n".join(self._data))
                    self._data = []
            elif line.startswith(b"data:"):
                value = line[5:]
                self._data.append(value[1:] if value.startswith(b" ") else value)
            # anything else (comments, event:, id:, retry:) is not forwarded
        return events

    def close(self) -> list[bytes]:
        """Whatever complete event is left when the upstream ends without a blank line."""
        rest = self.feed(b"\n\n") if (self._buffer or self._data) else []
        self._buffer = b""
        return rest
