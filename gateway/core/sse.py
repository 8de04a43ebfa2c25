"""Server-sent events from upstreams: incremental decoding into whole events.

How the gateway frames events for its clients is each API adapter's business
(`gateway.apis`): strict `data:` lines for chat, `event:` + `data:` for the
Responses and Anthropic APIs.
"""

from __future__ import annotations

import re

_NEWLINES = re.compile(rb"\r\n|\r")

Event = tuple[bytes | None, bytes]  # (the `event:` name if one was given, the data)


class EventTooLarge(ValueError):
    """An upstream line or event longer than the limit: refused while it arrives."""


class Decoder:
    """Feeds raw chunks, yields each complete event as (name, data).

    Partial lines are kept across chunks as pieces, so that each byte is handled
    once however the upstream splits its lines; a line or event over `limit` bytes
    is refused as soon as it passes the limit. Comments, `id:` and `retry:` lines
    are dropped, CR and CRLF line endings read as LF, and multi-line data is joined
    with a newline as the SSE spec says. An event name lasts until its event ends.
    """

    __slots__ = ("_cr", "_data", "_limit", "_name", "_partial", "_partial_size", "_size")

    def __init__(self, limit: int = 1 << 20) -> None:
        self._partial: list[bytes] = []  # the line being read, in pieces
        self._partial_size = 0
        self._cr = False  # the last chunk ended in CR: it may be half of a CRLF
        self._data: list[bytes] = []
        self._size = 0  # bytes of data in the event being read
        self._name: bytes | None = None
        self._limit = limit

    def feed(self, chunk: bytes) -> list[Event]:
        if self._cr:
            chunk, self._cr = b"\r" + chunk, False
        if b"\r" in chunk:
            if chunk.endswith(b"\r"):
                chunk, self._cr = chunk[:-1], True
            chunk = _NEWLINES.sub(b"\n", chunk)
        if b"\n" not in chunk:
            self._keep(chunk)
            return []
        lines = chunk.split(b"\n")
        if self._partial:
            lines[0] = b"".join(self._partial) + lines[0]
            self._partial, self._partial_size = [], 0
        self._keep(lines.pop())
        events: list[Event] = []
        for line in lines:
            if not line:
                if self._data:
                    events.append((self._name, b"\n".join(self._data)))
                    self._data = []
                    self._size = 0
                self._name = None
            elif line.startswith(b"data:"):
                value = line[5:]
                self._size += len(value)
                if self._size > self._limit:
                    raise EventTooLarge(f"The upstream sent an event larger than {self._limit} bytes.")
                self._data.append(value[1:] if value.startswith(b" ") else value)
            elif line.startswith(b"event:"):
                self._name = line[6:].strip() or None
            # anything else (comments, id:, retry:) is not forwarded
        return events

    def _keep(self, piece: bytes) -> None:
        if piece:
            self._partial.append(piece)
            self._partial_size += len(piece)
            if self._partial_size > self._limit:
                raise EventTooLarge(f"The upstream sent a line longer than {self._limit} bytes.")

    def close(self) -> list[Event]:
        """Whatever complete event is left when the upstream ends without a blank line."""
        if self._cr:
            self._cr = False
            return self.feed(b"\n\n")
        return self.feed(b"\n\n") if (self._partial or self._data) else []
