"""A client's multipart form (an image edit, a transcription's audio), read part by part
and sent on to the upstream as it arrives: no file is held in memory.

Text parts are small and read whole (at most `server.max_body_bytes` of them together).
A file part is streamed to the upstream once the request can be admitted: the model is
known (from the path, or a `model` part before it) and the client sent its text fields
first, as the openai SDK does. A client that sends a file first (the .NET and node
SDKs) has it spooled to a temporary file of the system's (unnamed, so that nothing is
left on disk even if the process dies; `server.upload_spool_dir` says where) until the
form's end, when everything is known. Fields the policies read before the call (an
edit's or a transcription's `prompt`) may not come after a file that streamed on a
deployment with content filters: that request is refused and its upstream body never
completed.

The whole form is held to `server.max_upload_bytes` (413, before the upstream is called
when the client says its length, else as the bytes arrive), each read to
`server.body_timeout_seconds` (408: a client that stalls mid-upload is cut, and the
upstream call with it). The body sent upstream is a new form (a boundary of the
gateway's, the backend's `model`, the client's parts in order, text first), with a
length when all of it is known (spooled) and chunked while a file streams."""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import IO, Any

from aiohttp import BodyPartReader, MultipartReader, web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.payload import Payload

from gateway.config import ServerConfig
from gateway.core.audio_length import Meter
from gateway.core.errors import GatewayError, InvalidRequest, RequestTimeout, RequestTooLarge
from gateway.http.inbound import expect_continue

CHUNK = 64 * 1024
MAX_PARTS = 64  # a form with more parts than any API defines is not one of theirs
_NAME = re.compile(r"[\x21-\x7e]{1,200}")
_MIME = re.compile(r"[A-Za-z0-9!#$&^_.+-]{1,64}/[A-Za-z0-9!#$&^_.+-]{1,64}")
CRLF = b"\r\n"
_CONTROL = dict.fromkeys([*range(0x20), 0x7F])  # str.translate: dropped


class ClientClosed(GatewayError):
    """The client went away while its upload was being read (recorded as 499)."""

    status, code = 499, "client_closed"


@dataclass(slots=True)
class Spooled:
    """A file part kept in a temporary file until the form has been read."""

    name: str
    filename: str
    content_type: str
    file: IO[bytes]
    size: int


class Upload:
    """One request's form: what was read before the call, and the rest as it streams."""

    def __init__(self, request: web.Request, server: ServerConfig, measures: str | None) -> None:
        self.limit = server.max_upload_bytes
        self.text_limit = server.max_body_bytes
        self.idle = server.body_timeout_seconds
        self.spool_dir = str(server.upload_spool_dir) if server.upload_spool_dir else None
        self.measures = measures
        self.meter = Meter() if measures else None
        self.fields: dict[str, Any] = {}  # text parts: a value, or a list when repeated
        self.spooled: list[Spooled] = []
        self.pending: BodyPartReader | None = None  # the file part that streams
        self.first = b""  # its first bytes, read before the call
        self.checked: frozenset[str] = frozenset()  # fields that may not come late
        self.received = 0  # bytes of the parts so far
        self.text_bytes = 0
        self.parts = 0
        self.done = False  # the form has been read to its end
        self.streaming = False  # a body has begun reading the client's stream
        self._request = request
        self._reader: MultipartReader | None = None

    # --- reading before the call ----------------------------------------------------------
    async def read_head(self, model_known: bool) -> None:
        """Read the form until a file part may stream (the model known, text sent first),
        or to its end (files spooled)."""
        request = self._request
        if request.content_length is not None and request.content_length > self.limit:
            raise self._too_large()
        await expect_continue(request)
        try:
            self._reader = MultipartReader(request.headers, request.content)
        except (AssertionError, KeyError, ValueError):
            raise InvalidRequest("The request body must be multipart/form-data with a "
                                 "boundary.") from None
        texts = 0
        while True:
            part = await self._next()
            if part is None:
                self.done = True
                return
            if part.filename is None:
                self._add(part.name or "", await self._text(part))
                texts += 1
                continue
            if texts and (model_known or isinstance(self.fields.get("model"), str)):
                self.pending = part
                self.first = await self._chunk(part)
                self._measure(part, self.first)
                return
            await self._spool(part)

    def seconds(self) -> float | None:
        """The measured file's length, as far as it is known."""
        return self.meter.seconds() if self.meter is not None else None

    def resendable(self) -> bool:
        """Nothing of the client's stream has been read into a body yet: a body made
        again is the same."""
        return not self.streaming

    # --- the upstream's body ------------------------------------------------------------
    def body(self, model: str) -> FormBody:
        return FormBody(self, model)

    async def produce(self, boundary: bytes, model: str) -> AsyncIterator[bytes]:
        """The upstream's form, chunk by chunk."""
        fields = {"model": model, **{k: v for k, v in self.fields.items() if k != "model"}}
        for name, value in fields.items():
            for item in value if isinstance(value, list) else [value]:
                yield _text_part(boundary, name, item)
        for spooled in self.spooled:
            yield _file_head(boundary, spooled.name, spooled.filename, spooled.content_type)
            spooled.file.seek(0)
            # A spool file was just written: its pages are in the page cache, and a read
            # of one chunk does not hold the loop.
            while chunk := spooled.file.read(CHUNK):
                yield chunk
            yield CRLF
        if self.pending is not None:
            self.streaming = True
            pending = self.pending
            yield _file_head(boundary, pending.name or "", pending.filename or "",
                             _mime(pending)) + self.first
            async for chunk in self._stream_rest(boundary, self.pending):
                yield chunk
        yield b"--" + boundary + b"--" + CRLF

    def size(self, boundary: bytes, model: str) -> int | None:
        """The length of the upstream's form when all of it has been read."""
        if not self.done:
            return None
        fields = {"model": model, **{k: v for k, v in self.fields.items() if k != "model"}}
        total = sum(len(_text_part(boundary, name, item)) for name, value in fields.items()
                    for item in (value if isinstance(value, list) else [value]))
        total += sum(len(_file_head(boundary, s.name, s.filename, s.content_type)) + s.size + 2
                     for s in self.spooled)
        return total + len(boundary) + 6

    def close(self) -> None:
        """The spool files are removed (unnamed: closing them is removing them)."""
        for spooled in self.spooled:
            with contextlib.suppress(OSError):
                spooled.file.close()
        self.spooled = []

    # --- parts ----------------------------------------------------------------------------
    async def _stream_rest(self, boundary: bytes, part: BodyPartReader) -> AsyncIterator[bytes]:
        """The streaming file's bytes, then the parts after it, as they arrive."""
        while chunk := await self._chunk(part):
            self._measure(part, chunk)
            yield chunk
        self._end_measure(part)
        yield CRLF
        while (later := await self._next()) is not None:
            name = later.name or ""
            if later.filename is None:
                value = await self._text(later)
                if name in self.checked:
                    raise InvalidRequest(
                        f"The form's '{name}' part came after a file: on this deployment it is "
                        "checked before the request is sent, so send every text field before "
                        "the files (as the openai SDK does), or the files first.", param=name)
                if name != "model":  # the backend's model was sent first
                    self._add(name, value)
                    yield _text_part(boundary, name, value)
                continue
            yield _file_head(boundary, name, later.filename, _mime(later))
            while chunk := await self._chunk(later):
                self._measure(later, chunk)
                yield chunk
            self._end_measure(later)
            yield CRLF
        self.done = True

    async def _next(self) -> BodyPartReader | None:
        assert self._reader is not None
        if self.parts >= MAX_PARTS:
            raise InvalidRequest(f"The form has more than {MAX_PARTS} parts.")
        part = await self._read(self._reader.next())
        if part is None:
            return None
        if not isinstance(part, BodyPartReader):
            raise InvalidRequest("A form part may not itself be a multipart body.")
        self.parts += 1
        if not part.name or not _NAME.fullmatch(part.name):
            raise InvalidRequest("Every form part needs a name of printable ASCII (at most 200 "
                                 "characters).")
        return part

    async def _text(self, part: BodyPartReader) -> str:
        pieces: list[bytes] = []
        while chunk := await self._chunk(part):
            self.text_bytes += len(chunk)
            if self.text_bytes > self.text_limit:
                raise RequestTooLarge(f"The form's text fields are larger than the "
                                      f"{self.text_limit} bytes allowed.")
            pieces.append(chunk)
        try:
            return b"".join(pieces).decode(part.get_charset("utf-8"))
        except (LookupError, UnicodeDecodeError):
            raise InvalidRequest(f"The form's '{part.name}' part is not valid text.",
                                 param=part.name) from None

    def _add(self, name: str, value: str) -> None:
        held = self.fields.get(name)
        if held is None:
            self.fields[name] = value
        elif isinstance(held, list):
            held.append(value)
        else:
            self.fields[name] = [held, value]

    async def _spool(self, part: BodyPartReader) -> None:
        file = tempfile.TemporaryFile(dir=self.spool_dir)  # noqa: SIM115 (closed by close())
        spooled = Spooled(part.name or "", part.filename or "", _mime(part), file, 0)
        self.spooled.append(spooled)
        while chunk := await self._chunk(part):
            self._measure(part, chunk)
            file.write(chunk)
            spooled.size += len(chunk)
        self._end_measure(part)

    def _measure(self, part: BodyPartReader, chunk: bytes) -> None:
        if self.meter is not None and part.name == self.measures:
            self.meter.feed(chunk)

    def _end_measure(self, part: BodyPartReader) -> None:
        if self.meter is not None and part.name == self.measures:
            self.meter.end()

    async def _chunk(self, part: BodyPartReader) -> bytes:
        chunk: bytes = await self._read(part.read_chunk(CHUNK))
        self.received += len(chunk)
        if self.received > self.limit:
            raise self._too_large()
        return chunk

    async def _read(self, step: Any) -> Any:
        """One read of the client's body, within the body timeout; its failures as the
        gateway's errors (they may surface through the upstream call: see
        `gateway.upstream.client.call`)."""
        try:
            async with asyncio.timeout(self.idle):
                return await step
        except TimeoutError:
            raise RequestTimeout(f"The upload stalled: nothing arrived for "
                                 f"{self.idle:g} s.") from None
        except OSError:  # ConnectionResetError: the client is gone
            raise ClientClosed("The client closed its connection during the upload.") from None
        except (ValueError, AssertionError, web.HTTPException, HttpProcessingError):
            # (A part's bad header: aiohttp's message quotes it, so it goes nowhere.)
            raise InvalidRequest("The request body is not a valid multipart/form-data body.") \
                from None

    def _too_large(self) -> RequestTooLarge:
        return RequestTooLarge(f"The upload is larger than the {self.limit} bytes allowed "
                               "(server.max_upload_bytes).")


class FormBody(Payload):
    """The upstream's form as an aiohttp payload: written as the client's parts arrive."""

    _autoclose = True

    def __init__(self, upload: Upload, model: str) -> None:
        self.boundary = ("model-gateway-" + secrets.token_hex(16)).encode()
        super().__init__(b"", content_type=self.content_type_value)
        self.upload, self.model = upload, model
        self._size = upload.size(self.boundary, model)
        self._deadline: asyncio.Timeout | None = None
        self._seconds = 0.0

    @property
    def content_type_value(self) -> str:
        return f"multipart/form-data; boundary={self.boundary.decode()}"

    def paced_by(self, deadline: asyncio.Timeout, seconds: float) -> None:
        self._deadline, self._seconds = deadline, seconds

    async def write(self, writer: AbstractStreamWriter) -> None:
        await self.write_with_length(writer, None)

    async def write_with_length(self, writer: AbstractStreamWriter,
                                content_length: int | None) -> None:
        loop = asyncio.get_running_loop()
        async for chunk in self.upload.produce(self.boundary, self.model):
            await writer.write(chunk)
            if self._deadline is not None:
                self._deadline.reschedule(loop.time() + self._seconds)

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        raise TypeError("an upload is streamed, never decoded whole")


def _quoted(value: str) -> str:
    """A value for a Content-Disposition quoted string, as browsers write it: control
    characters dropped (a client's filename must not break the upstream's form), `"`
    escaped, at most 255 characters."""
    kept = value.translate(_CONTROL)[:255]
    return kept.replace('"', "%22").replace("\\", "\\\\")


def _text_part(boundary: bytes, name: str, value: str) -> bytes:
    return (b"--" + boundary + CRLF
            + f'Content-Disposition: form-data; name="{_quoted(name)}"'.encode() + CRLF + CRLF
            + value.encode() + CRLF)


def _file_head(boundary: bytes, name: str, filename: str, content_type: str) -> bytes:
    return (b"--" + boundary + CRLF
            + f'Content-Disposition: form-data; name="{_quoted(name)}"; '
              f'filename="{_quoted(filename)}"'.encode() + CRLF
            + f"Content-Type: {content_type}".encode() + CRLF + CRLF)


def _mime(part: BodyPartReader) -> str:
    """The part's media type as the client gave it (parameters dropped), if it is one."""
    given = part.headers.get("Content-Type", "").split(";")[0].strip()
    return given if _MIME.fullmatch(given) else "application/octet-stream"

