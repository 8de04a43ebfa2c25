"""The hold-back window of one streamed output: generated text reaches the client
only after the filters have seen it together with what follows.

Text is released from the front in whole events, keeping at least `window`
characters back. A cut is made between words, so that a match (an e-mail address,
say) is not released half seen; text without spaces (Chinese, base64, minified
code) is cut wherever the window allows once more than `MAX_WORD` characters
beyond the window have gathered, longer than any real word. Each check scans what
is held plus the last `window` characters released, both bounded, so a stream
costs time linear in its length however it is split into events.
"""

from __future__ import annotations

from typing import Any

from policies.content.filters import Finding

MAX_WORD = 48


class Holdback:
    def __init__(self, window: int) -> None:
        self.window = window
        self.held: list[tuple[dict[str, Any], str]] = []  # (event, its text), oldest first
        self.chars = 0  # length of the held text
        self.tail = ""  # recently released text, scanned again with the next check
        self.released: list[str] = []  # all text released so far (after redaction)

    def hold(self, event: dict[str, Any], text: str) -> None:
        self.held.append((event, text))
        self.chars += len(text)

    @property
    def pending(self) -> str:
        return "".join(text for _, text in self.held)

    @property
    def released_text(self) -> str:
        return "".join(self.released)

    def cut(self, final: bool) -> tuple[int, int]:
        """(characters, events) that may be released now, before looking at findings."""
        if final:
            return self.chars, len(self.held)
        cut = count = 0
        forced = (0, 0)
        at = 0
        for i, (_, text) in enumerate(self.held):
            at += len(text)
            if self.chars - at < self.window:
                break
            forced = (at, i + 1)
            after = self.held[i + 1][1] if i + 1 < len(self.held) else ""
            if text[-1:].isspace() or after[:1].isspace():
                cut, count = at, i + 1
        if count or self.chars < self.window + MAX_WORD:
            return cut, count
        return forced  # a run without spaces, longer than any word: cut it anyway

    def widen(self, cut: int, count: int, findings: list[Finding], offset: int) -> tuple[int, int]:
        """Move the cut past any match that straddles it, so a match is released whole."""
        for f in findings:
            if f.start < offset + cut < f.end:
                while count < len(self.held) and cut < f.end - offset:
                    cut += len(self.held[count][1])
                    count += 1
        return cut, count

    def take(self, count: int) -> tuple[list[tuple[dict[str, Any], str]], str]:
        released = self.held[:count]
        del self.held[:count]
        original = "".join(text for _, text in released)
        self.chars -= len(original)
        return released, original

    def remember(self, original: str, shown: str) -> None:
        self.tail = (self.tail + original)[-self.window:]
        self.released.append(shown)
