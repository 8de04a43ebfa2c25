"""Translators whose whole answer depends on the client's request, not only on the
backend's answer: a Responses answer echoes the request's settings (`instructions`,
`tools`, `previous_response_id`, `metadata`, ...), a compaction keeps the request's user
messages. `Translator.response` is given the backend's answer alone, so these
translators say `answer(answer, request, target)`, and the model call binds the request
to them (`Bound`) before the answer is relayed; unbound, `response` still gives a
valid answer, with the API's defaults where the request would be echoed."""

from __future__ import annotations

import abc
from typing import Any

from gateway.translate.base import StreamTranslator, Target, Translator


class Answers(Translator):
    @abc.abstractmethod
    def answer(self, answer: dict[str, Any], request: dict[str, Any], target: Target) -> dict[str, Any]:
        """The backend's whole answer to `request` (the client's body) in the client's API."""

    def response(self, body: dict[str, Any], target: Target) -> dict[str, Any]:
        return self.answer(body, {}, target)


class Bound(Translator):
    """`inner` with the request it answers."""

    def __init__(self, inner: Answers, request: dict[str, Any]) -> None:
        self.inner, self.request_body = inner, request
        self.client, self.backend = inner.client, inner.backend  # type: ignore[misc]

    def request(self, body: dict[str, Any], target: Target) -> dict[str, Any]:
        return self.inner.request(body, target)

    def response(self, body: dict[str, Any], target: Target) -> dict[str, Any]:
        return self.inner.answer(body, self.request_body, target)

    def stream(self, body: dict[str, Any], target: Target) -> StreamTranslator:
        return self.inner.stream(body, target)


def bind(translator: Translator, request: dict[str, Any]) -> Translator:
    return Bound(translator, request) if isinstance(translator, Answers) else translator
