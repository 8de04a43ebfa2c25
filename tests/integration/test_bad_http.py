"""What the HTTP parser refuses, and bytes that are not what they claim, still get
the contract's JSON error with a request id, the right status, and never an echo
of what was sent; a request next to them is served as if nothing happened."""

from __future__ import annotations

import asyncio
import gzip
import json
from typing import Any

import aiohttp
import orjson
import pytest

from tests.conftest import KEY_A, Stack

BODY = b'{"model":"chat","messages":[{"role":"user","content":"hi"}]}'
SECRET = b"s3cr3t-value-in-a-header"


def post(headers: list[tuple[bytes, bytes]], body: bytes = BODY,
         path: bytes = b"/v1/chat/completions") -> bytes:
    head = b"".join(k + b": " + v + b"\r\n" for k, v in headers)
    return (b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + head
            + b"Content-Length: %d\r\n\r\n" % len(body) + body)


KEY = (b"api-key", KEY_A.encode())
CASES: list[tuple[str, bytes, int, str]] = [
    ("header name with a control byte",
     b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-" + SECRET + b"\x01: v\r\n"
     b"Content-Length: 2\r\n\r\n{}", 400, "invalid_request"),
    ("a header over the limit", post([(b"Authorization", b"Bearer " + SECRET * 2000)]), 431,
     "request_headers_too_large"),
    ("too many headers", post([(b"x-h%d" % i, SECRET) for i in range(300)]), 431,
     "request_headers_too_large"),
    ("a bad chunk size", b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\napi-key: " + KEY[1]
     + b"\r\nTransfer-Encoding: chunked\r\n\r\n" + SECRET + b"\r\nabc\r\n0\r\n\r\n", 400,
     "invalid_request"),
    ("Content-Length and Transfer-Encoding", b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
     b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, "invalid_request"),
    ("a credential that is not UTF-8", post([(b"api-key", b"\xff\xfe" + SECRET)]), 401,
     "invalid_api_key"),
    ("a model header that is not UTF-8",
     post([KEY, (b"x-ms-model-mesh-model-name", b"\xff" + SECRET)], b'{"messages":[]}',
          b"/models/chat/completions"), 400, "invalid_request"),
    ("a gzip body that is not gzip", post([KEY, (b"Content-Encoding", b"gzip")], SECRET), 400,
     "invalid_request"),
    ("an unknown Content-Encoding", post([KEY, (b"Content-Encoding", b"x-" + SECRET)]), 415,
     "unsupported_content_encoding"),
    ("JSON nested too deep", post([KEY], b'{"model":"chat","messages":' + b"[" * 65 + b"]" * 65
                                  + b"}"), 400, "invalid_request"),
    ("300,000 messages", post([KEY], orjson.dumps(
        {"model": "chat", "messages": [{"role": "user", "content": "x"}] * 300_000})), 400,
     "invalid_request"),
]


async def exchange(stack: Stack, raw: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", int(stack.url.rsplit(":", 1)[1]))
    writer.write(raw)
    try:
        answer = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    return answer


@pytest.mark.parametrize(("case", "raw", "status", "code"), CASES, ids=[c[0] for c in CASES])
async def test_bad_http_gets_the_contract_error(stack: Stack, case: str, raw: bytes, status: int,
                                                 code: str) -> None:
    normal = asyncio.ensure_future(_normal(stack))
    answer = await exchange(stack, raw)
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0]
    assert status_line.split(b" ")[1] == str(status).encode(), answer[:200]
    headers = head.lower()
    assert b"content-type: application/json" in headers and b"x-request-id:" in headers
    assert b"server: model-gateway" in headers and b"aiohttp" not in headers
    error = json.loads(body)["error"]
    assert error["code"] == code and error["message"]
    assert SECRET not in answer  # nothing of what was sent comes back
    assert await normal == 200  # the request beside it is unaffected
    assert stack.sim.count == 1  # and only that one reached the upstream


async def _normal(stack: Stack) -> int:
    async with aiohttp.ClientSession() as session, session.post(
            stack.url + "/v1/chat/completions", data=BODY,
            headers={"api-key": KEY_A, "Content-Type": "application/json"}) as r:
        await r.read()
        return r.status


async def test_a_gzip_body_that_is_gzip_is_served(stack: Stack) -> None:
    answer = await exchange(stack, post([KEY, (b"Content-Encoding", b"gzip"),
                                         (b"Content-Type", b"application/json")],
                                        gzip.compress(BODY)))
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]


def test_no_parser_message_reaches_the_log(stack: Stack, caplog: Any) -> None:
    asyncio.run(exchange(stack, CASES[0][1]))
    assert SECRET.decode() not in caplog.text


async def test_a_body_that_is_not_its_encoding_is_one_clean_400_and_no_traceback(
        stack: Stack, caplog: pytest.LogCaptureFixture) -> None:
    """gzip that is not gzip: a 400 in the contract's shape, the connection closed after
    it, and nothing logged as an unhandled exception (aiohttp drained the broken body
    after the answer and logged the decoder's error with a traceback)."""
    import logging

    caplog.set_level(logging.DEBUG)
    answer = await exchange(stack, post([KEY, (b"Content-Encoding", b"gzip")], SECRET))
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert await _normal(stack) == 200  # and the gateway goes on serving
    unhandled = [r for r in caplog.records if r.exc_info or "Unhandled" in r.getMessage()]
    assert not unhandled, [(r.name, r.getMessage()) for r in unhandled]
