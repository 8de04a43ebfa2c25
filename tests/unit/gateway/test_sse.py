from __future__ import annotations

from gateway.sse import Decoder, encode, has_usage


def feed_all(chunks: list[bytes]) -> list[bytes]:
    decoder = Decoder()
    events: list[bytes] = []
    for chunk in chunks:
        events += decoder.feed(chunk)
    return events + decoder.close()


def test_events_split_anywhere_are_reassembled() -> None:
    stream = b'data: {"a":1}\n\ndata: {"b":2}\n\ndata: [DONE]\n\n'
    for cut in range(1, len(stream)):
        assert feed_all([stream[:cut], stream[cut:]]) == [b'{"a":1}', b'{"b":2}', b"[DONE]"]


def test_crlf_comments_and_other_fields_are_dropped() -> None:
    stream = b': keep-alive\r\nevent: message\r\nid: 7\r\ndata: {"a":1}\r\n\r\nretry: 10\r\n\r\n'
    for cut in range(1, len(stream)):
        assert feed_all([stream[:cut], stream[cut:]]) == [b'{"a":1}']


def test_multi_line_data_and_missing_space() -> None:
    assert feed_all([b"data:{\ndata: }\n\n"]) == [b"{\n}"]


def test_trailing_event_without_blank_line() -> None:
    assert feed_all([b"data: [DONE]"]) == [b"[DONE]"]


def test_encode_and_usage_detection() -> None:
    assert encode(b"{}") == b"data: {}\n\n"
    assert has_usage(b'{"choices":[],"usage":{"prompt_tokens":1}}')
    assert has_usage(b'{"usage" : {"a":1}}')
    assert not has_usage(b'{"choices":[{}],"usage":null}')
