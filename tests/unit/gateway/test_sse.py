from __future__ import annotations

import pytest

from gateway.apis.base import Api
from gateway.core.sse import Decoder, Event, EventTooLarge


def feed_all(chunks: list[bytes], limit: int = 1 << 20) -> list[Event]:
    decoder = Decoder(limit)
    events: list[Event] = []
    for chunk in chunks:
        events += decoder.feed(chunk)
    return events + decoder.close()


def datas(chunks: list[bytes]) -> list[bytes]:
    return [data for _, data in feed_all(chunks)]


def test_events_split_anywhere_are_reassembled() -> None:
    stream = b'data: {"a":1}\n\ndata: {"b":2}\n\ndata: [DONE]\n\n'
    for cut in range(1, len(stream)):
        assert datas([stream[:cut], stream[cut:]]) == [b'{"a":1}', b'{"b":2}', b"[DONE]"]


def test_crlf_comments_and_other_fields_are_dropped_names_kept() -> None:
    stream = b': keep-alive\r\nevent: message\r\nid: 7\r\ndata: {"a":1}\r\n\r\nretry: 10\r\n\r\n'
    for cut in range(1, len(stream)):
        assert feed_all([stream[:cut], stream[cut:]]) == [(b"message", b'{"a":1}')]


def test_an_event_name_lasts_for_its_event_only() -> None:
    stream = b"event: a\ndata: 1\n\ndata: 2\n\n"
    assert feed_all([stream]) == [(b"a", b"1"), (None, b"2")]


def test_multi_line_data_and_missing_space() -> None:
    assert datas([b"data:{\ndata: }\n\n"]) == [b"{\n}"]


def test_trailing_event_without_blank_line() -> None:
    assert datas([b"data: [DONE]"]) == [b"[DONE]"]
    assert datas([b"data: 1\r"]) == [b"1"]


def test_a_line_that_never_ends_is_refused_at_the_limit() -> None:
    decoder = Decoder(limit=1000)
    for _ in range(100):
        assert decoder.feed(b"data: xxxx") == []  # 1,000 bytes: still within the limit
    with pytest.raises(EventTooLarge):
        decoder.feed(b"data: xxxx")
    with pytest.raises(EventTooLarge):
        feed_all([b"data: " + b"x" * 600 + b"\n", b"data: " + b"x" * 600 + b"\n\n"], limit=1000)


def test_usage_detection() -> None:
    assert Api.may_carry_usage(b'{"choices":[],"usage":{"prompt_tokens":1}}')
    assert Api.may_carry_usage(b'{"usage" : {"a":1}}')
    assert not Api.may_carry_usage(b'{"choices":[{}],"usage":null}')
