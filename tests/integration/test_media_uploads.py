"""Uploads as they stream through the gateway: the layouts clients send (text first, so
the file streams on; file first, so it waits in a spool file), a 25 MB upload that
leaves the gateway's memory alone, a client that stalls mid-upload cut by the body
timeout with nothing left open upstream or on disk, failover only while the body can
be sent again, errors in each route's shape, and the spans of the GenAI conventions."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest

from gateway.simulator import samples
from policies.auth import hash_key
from tests.conftest import (
    GATEWAY,
    KEY_B,
    Stack,
    free_port,
    start_simulator,
    wait_up,
)
from tests.integration.media_stack import (
    BOUNDARY,
    FORM_TYPE,
    clients,
    form,
    media_config,
    part,
    wait_until,
    with_media,
)
from tests.integration.test_telemetry import Receiver, attributes

MB = 1_000_000


def post(stack: Stack, path: str, body: bytes, content_type: str = FORM_TYPE,
         **headers: str) -> tuple[int, Any]:
    request = urllib.request.Request(stack.url + path, data=body, method="POST", headers={
        "api-key": KEY_B, "Content-Type": content_type, **headers})
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            raw = answer.read()
            return answer.status, json.loads(raw) if answer.headers.get_content_type() == \
                "application/json" else raw
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_text_first_streams_on_and_file_first_waits_in_a_spool(
        make_stack: Callable[..., Stack]) -> None:
    stack = make_stack(with_media())
    audio = samples.wav(2.0)
    text_first = form(part("model", "whisper"), part("response_format", "json"),
                      part("file", audio, "a.wav", "audio/wav"))
    status, answer = post(stack, "/v1/audio/transcriptions", text_first)
    assert status == 200 and answer["usage"] == {"type": "duration", "seconds": 2}
    streamed = stack.sim.records[-1]
    assert streamed.headers.get("transfer-encoding") == "chunked"  # sent as it arrived
    assert streamed.upload_bytes == len(audio) + len("whisper-1") + len("json")
    # The .NET and node SDKs' layout: the file first, the model after it.
    file_first = form(part("file", audio, "a.wav", "audio/wav"), part("model", "whisper"))
    status, answer = post(stack, "/v1/audio/transcriptions", file_first)
    assert status == 200 and answer["usage"]["seconds"] == 2
    spooled = stack.sim.records[-1]
    assert int(spooled.headers["content-length"]) > len(audio)  # all of it known: a length
    assert "transfer-encoding" not in spooled.headers
    # The deployment form takes the model from its path, wherever a model part is.
    status, _ = post(stack, "/openai/deployments/whisper/audio/transcriptions?api-version=x",
                     form(part("file", audio, "a.wav", "audio/wav")))
    assert status == 200 and stack.sim.records[-1].body["model"] == "whisper-1"


def test_a_prompt_after_a_streamed_file_is_refused_where_filters_read_it(
        make_stack: Callable[..., Stack]) -> None:
    config = with_media(content_filters={"strict": [{"type": "blocklist", "terms": ["zorp"]}]})
    stack = make_stack(lambda sim: {**config(sim), "deployments": [
        {**d, "content_filter": "strict"} if d["name"] == "whisper" else d
        for d in config(sim)["deployments"]]})
    def late(model: str) -> bytes:
        return form(part("model", model), part("file", samples.wav(1.0), "a.wav", "audio/wav"),
                    part("prompt", "zorp"))

    status, error = post(stack, "/v1/audio/transcriptions", late("whisper"))
    assert status == 400 and error["error"]["param"] == "prompt"
    assert "before the files" in error["error"]["message"]
    # Its body never completed: the upstream may have begun reading it, never answered it.
    wait_until(lambda: all(r.ended for r in stack.sim.records))
    assert all(r.outcome == "cancelled" for r in stack.sim.records)
    # Where no filter reads it, a late prompt is passed on.
    status, _ = post(stack, "/v1/audio/transcriptions", late("gpt-4o-transcribe"))
    assert status == 200 and stack.sim.records[-1].body["prompt"] == "zorp"


def test_errors_in_each_routes_shape(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack(with_media())
    audio = part("file", samples.wav(0.2), "a.wav", "audio/wav")
    status, error = post(stack, "/openai/deployments/nowhere/audio/transcriptions?api-version=x",
                         form(audio))
    assert status == 404 and error["error"]["code"] == "DeploymentNotFound"
    status, error = post(stack, "/v1/audio/transcriptions", form(audio))
    assert status == 400 and error["error"]["code"] == "no_model_name"
    status, error = post(stack, "/v1/audio/transcriptions", b'{"model": "whisper"}',
                         "application/json")
    assert status == 400 and "multipart/form-data" in error["error"]["message"]
    status, error = post(stack, "/v1/audio/transcriptions", b"--nonsense", FORM_TYPE)
    assert status == 400 and error["error"]["code"] == "invalid_request"
    status, error = post(stack, "/v1/audio/speech", b'{"model": "tts-1", "voice": "alloy"}',
                         "application/json")
    assert status == 400 and error["error"]["param"] == "input"
    status, error = post(stack, "/v1/images/variations", b"{}", "application/json")
    assert status == 404


def test_failover_only_while_the_body_can_be_sent_again(make_stack: Callable[..., Stack]) -> None:
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens: refused before a byte

    def config(sim: str) -> dict[str, Any]:
        made = media_config(sim)
        azure = {"type": "api-key", "key_env": "TEST_UPSTREAM_KEY"}
        made["deployments"].append({"name": "whisper-ha", "model": "whisper-1", "backends": [
            {"url": closed, "provider": "azure-openai", "deployment": "w", "priority": 0,
             "name": "gone"},
            {"url": sim, "provider": "azure-openai", "deployment": "w1", "priority": 1,
             "name": "first", "auth": azure},
            {"url": sim, "provider": "azure-openai", "deployment": "w2", "priority": 2,
             "name": "second", "auth": azure}]})
        return made

    stack = make_stack(config)
    client = clients(stack)["openai"]
    answer = client.audio.transcriptions.create(model="whisper-ha",
                                                file=("a.wav", samples.wav(1.0), "audio/wav"))
    assert answer.text and stack.sim.records[-1].path.startswith("/openai/deployments/w1/")
    # A 429 after the upload streamed: the body cannot be sent again, the 429 is the answer.
    before = len(stack.sim.records)
    with pytest.raises(openai.RateLimitError):
        client.audio.transcriptions.create(model="whisper-ha", extra_headers=QUICK_429,
                                           file=("a.wav", samples.wav(1.0), "audio/wav"))
    assert [r.path.split("/")[3] for r in list(stack.sim.records)[before:]] == ["w1"]
    # Spooled (file first), it can: the next backend is tried.
    before = len(stack.sim.records)
    status, _ = post(stack, "/v1/audio/transcriptions",
                     form(part("file", samples.wav(1.0), "a.wav", "audio/wav"),
                          part("model", "whisper-ha")), **QUICK_429)
    assert status == 429
    tried = list(stack.sim.records)[before:]
    assert [r.path.split("/")[3] for r in tried] == ["w1", "w2"]
    assert tried[0].upload_bytes == tried[1].upload_bytes > 32_000  # sent again, whole


# A 429 whose cooldown is over at once: the next request tries the same backends again.
QUICK_429 = {"x-sim-fault": "429", "x-sim-retry-after-ms": "1"}


def _spool_fds(folder: Path) -> list[str]:
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(folder)):
            found.append(target)
    return found


@pytest.mark.parametrize("layout", ["text-first", "file-first"])
def test_a_client_that_stalls_mid_upload_is_cut(layout: str, make_stack: Callable[..., Stack],
                                                tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    stack = make_stack(with_media(server={"body_timeout_seconds": 1, "upload_spool_dir": str(spool)}))
    # Enough for the gateway to begin (a text-first upload is then on its way upstream).
    head = part("file", b"", "a.wav", "audio/wav")[:-2] + samples.wav(10.0)[:300_000]
    sent = part("model", "whisper") + head if layout == "text-first" else head
    host, port = stack.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as s:
        s.sendall((f"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: {host}\r\napi-key: {KEY_B}\r\n"
                   f"Content-Type: {FORM_TYPE}\r\nContent-Length: 2000000\r\n\r\n").encode() + sent)
        if layout == "file-first":  # its file waits in the spool while the client stalls
            wait_until(lambda: _spool_fds(spool))
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            chunk = s.recv(65536)
            if not chunk:
                break
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert b'"code":"request_timeout"' in answer and b"stalled" in answer
    if layout == "text-first":  # the upstream call had begun: it is cancelled with the client
        record = wait_until(lambda: stack.sim.records[-1] if stack.sim.records
                            and stack.sim.records[-1].ended else None)
        assert record.outcome == "cancelled" and record.upload_bytes < 2_000_000
    else:
        assert not stack.sim.records  # the model came too late for any upstream call
    wait_until(lambda: not _spool_fds(spool))
    assert list(spool.iterdir()) == []
    assert wait_until(lambda: [line for line in stack.access_log()
                               if line["error"] == "request_timeout"])


def test_speech_cut_off_upstream_cuts_the_client(make_stack: Callable[..., Stack]) -> None:
    def config(sim: str) -> dict[str, Any]:
        made = media_config(sim)
        for d in made["deployments"]:
            if d["name"] == "tts-1":
                d["backends"][0]["timeouts"] = {"idle": 1}
        return made

    stack = make_stack(config)
    client = clients(stack)["openai"]
    # The transport's error, whichever the client's HTTP library calls it.
    with pytest.raises(Exception) as cut, client.audio.speech.with_streaming_response.create(
            model="tts-1", voice="alloy", input="x" * 200,
            extra_headers={"x-sim-fault": "stall"}) as speech:
        speech.read()
    assert not isinstance(cut.value, AssertionError)
    line = wait_until(lambda: [entry for entry in stack.access_log() if entry["deployment"] == "tts-1"])
    assert line[0]["error"] == "upstream_timeout" and line[0]["status"] == 200


# --- a gateway process of its own ---------------------------------------------------------
def _rss_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(field)


@pytest.fixture
def gateway(tmp_path: Path, background: list[subprocess.Popen[str]],
            upstream_keys: None) -> Iterator[tuple[str, subprocess.Popen[str], str]]:
    sim = start_simulator(background)
    config = media_config(sim)
    config["server"] = {**config["server"], "host": "127.0.0.1", "port": free_port()}
    path = tmp_path / "gw.json"
    path.write_text(json.dumps(config))
    proc = subprocess.Popen([*GATEWAY, "serve", "--config", str(path)], text=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    background.append(proc)
    url = f"http://127.0.0.1:{config['server']['port']}"
    wait_up(url, proc)
    yield url, proc, sim


async def _file_first(url: str, path: Path) -> dict[str, Any]:
    async def body() -> AsyncIterator[bytes]:
        yield part("file", b"", "big.wav", "audio/wav")[:-2]
        with path.open("rb") as f:
            while chunk := f.read(256 * 1024):
                yield chunk
        yield b"\r\n" + part("model", "whisper") + f"--{BOUNDARY}--\r\n".encode()

    async with aiohttp.ClientSession() as s, s.post(
            url + "/v1/audio/transcriptions", data=body(),
            headers={"api-key": KEY_B, "Content-Type": FORM_TYPE}) as r:
        assert r.status == 200, await r.text()
        answer: dict[str, Any] = await r.json()
        return answer


def test_a_25_mb_upload_leaves_the_gateways_memory_alone(
        gateway: tuple[str, subprocess.Popen[str], str], tmp_path: Path) -> None:
    url, proc, _ = gateway
    big = tmp_path / "big.wav"
    samples.write_wav(big, 25 * MB)
    seconds = (25 * MB - 44) // 2 / 24000
    client = openai.OpenAI(base_url=url + "/v1", api_key=KEY_B, max_retries=0, timeout=120)
    # Warm: every code path of an upload is loaded before memory is measured.
    client.audio.transcriptions.create(model="whisper", file=("a.wav", samples.wav(1.0), "audio/wav"))
    for send in ("text first (streamed on)", "file first (spooled)"):
        before = _rss_kb(proc.pid, "VmRSS")
        Path(f"/proc/{proc.pid}/clear_refs").write_text("5")  # the peak starts again from now
        if send.startswith("text"):
            with big.open("rb") as audio:
                answer = client.audio.transcriptions.create(model="whisper", file=audio)
            got = answer.usage.seconds  # type: ignore[union-attr]
        else:
            got = asyncio.run(_file_first(url, big))["usage"]["seconds"]
        assert got == -(-seconds // 1)  # the whole file reached the upstream
        grown = (_rss_kb(proc.pid, "VmHWM") - before) / 1024
        assert grown < 5, f"{send}: the gateway's RSS grew by {grown:.1f} MB"


def test_spans_on_the_genai_conventions(receiver: tuple[Receiver, str], tmp_path: Path,
                                        background: list[subprocess.Popen[str]]) -> None:
    received, endpoint = receiver
    sim = start_simulator(background)
    config = {"server": {"host": "127.0.0.1", "port": free_port()},
              "consumers": [{"name": "team", "api_keys": [hash_key("otel-media")],
                             "deployments": ["*"]}],
              "deployments": [{"name": "gpt-image-1", "model": "gpt-image-1", "backends": [
                  {"url": sim + "/v1", "provider": "openai"}]},
                  {"name": "whisper", "model": "whisper-1", "backends": [
                      {"url": sim + "/v1", "provider": "openai"}]}]}
    path = tmp_path / "gw.json"
    path.write_text(json.dumps(config))
    env = {**os.environ, "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_BSP_SCHEDULE_DELAY": "100",
           "OTEL_METRIC_EXPORT_INTERVAL": "300"}
    proc = subprocess.Popen([*GATEWAY, "serve", "--config", str(path)], env=env, text=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    background.append(proc)
    url = f"http://127.0.0.1:{config['server']['port']}"  # type: ignore[index]
    wait_up(url, proc)
    client = openai.OpenAI(base_url=url + "/v1", api_key="otel-media", max_retries=0)
    client.images.generate(model="gpt-image-1", prompt="A secret red hat", n=2)
    client.audio.transcriptions.create(model="whisper", file=("a.wav", samples.wav(3.0), "audio/wav"))

    def servers() -> list[Any]:
        found = [s for _, s in received.spans if s.kind == s.SPAN_KIND_SERVER
                 and attributes(s).get("gateway.api")]
        return found if len(found) >= 2 else []

    image, audio = sorted(wait_until(servers), key=lambda s: s.start_time_unix_nano)
    a = attributes(image)
    assert image.name == "generate_content gpt-image-1"
    assert (a["gen_ai.operation.name"], a["gen_ai.output.type"]) == ("generate_content", "image")
    assert a["gateway.media.images"] == 2 and a["gen_ai.usage.output_tokens"] == 2 * 4160
    assert a["gateway.api"] == "images.generations"
    b = attributes(audio)
    assert (b["gen_ai.output.type"], b["gateway.media.audio_seconds"]) == ("text", 3)
    assert b"secret red hat" not in received.raw
