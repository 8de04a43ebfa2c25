"""Images and audio under the gateway's limits, quotas, prices, ledger and filters, as
the openai SDK sees them: a quota on audio seconds reached exactly, images and seconds
priced and written to the ledger (rows per API, CSV, the CLI), an upload over
`server.max_upload_bytes` refused before the upstream sees a byte, and content filters
on image prompts, speech input and transcripts (whole, as text formats, and streamed)."""

from __future__ import annotations

import csv
import datetime
import io
import json
import os
import subprocess
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest
from openai import OpenAI
from sqlalchemy import text

from gateway.database.access import DATABASE
from gateway.simulator import samples
from policies.auth import hash_key
from tests.conftest import GATEWAY, KEY_B, Stack
from tests.integration.media_stack import (
    FORM_TYPE,
    clients,
    form,
    media_config,
    part,
    wait_until,
    with_media,
)

ADMIN_KEY = "admin-key-media"
QUOTA_KEY = "key-team-q"


def limited(sim: str) -> dict[str, Any]:
    config = media_config(sim, ledger={"flush_seconds": 0.1},
                          admin={"api_keys": {"ops": hash_key(ADMIN_KEY)}})
    config["consumers"].append({"name": "team-q", "api_keys": [hash_key(QUOTA_KEY)],
                                "deployments": ["whisper", "gpt-4o-transcribe"],
                                "quotas": {"audio_seconds_per_day": 6}})
    return config


def test_a_quota_on_audio_seconds_is_reached_exactly(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack(limited)
    client = OpenAI(base_url=stack.url + "/v1", api_key=QUOTA_KEY, max_retries=0)
    two_seconds = ("two.wav", samples.wav(2.0), "audio/wav")
    client.audio.transcriptions.create(model="whisper", file=two_seconds)  # usage: 2 seconds
    # No usage in a text answer: the file's own length counts.
    client.audio.transcriptions.create(model="whisper", file=two_seconds, response_format="text")
    client.audio.transcriptions.create(model="gpt-4o-transcribe", file=two_seconds)  # tokens
    assert stack.metrics.limiter.quota_used[("team-q", "all", "audio_seconds_per_day")] == 1.0
    upstream = stack.sim.count
    with pytest.raises(openai.RateLimitError) as refused:
        client.audio.transcriptions.create(model="whisper", file=two_seconds)
    assert refused.value.code == "quota_exceeded"
    assert refused.value.response.headers["x-should-retry"] == "false"
    assert "audio_seconds_per_day" in refused.value.message
    assert stack.sim.count == upstream  # refused before the upstream
    log = [line for line in stack.access_log() if line["consumer"] == "team-q"]
    assert [line["audio_seconds"] for line in log if line["status"] == 200] == [2, 2, 2]


def admin_get(stack: Stack, path: str, **headers: str) -> Any:
    request = urllib.request.Request(stack.url + path, headers={"api-key": ADMIN_KEY, **headers})
    with urllib.request.urlopen(request, timeout=30) as answer:
        body = answer.read().decode()
        return json.loads(body) if answer.headers.get_content_type() == "application/json" else body


def test_a_ledger_row_with_images_and_seconds_and_their_cost(
        make_stack: Callable[..., Stack], tmp_path: Path) -> None:
    stack = make_stack(limited)
    client = clients(stack)["openai"]
    client.images.generate(model="dall-e-3", prompt="A lighthouse", n=2, quality="hd",
                           size="1792x1024")  # 2 x 0.12
    client.audio.transcriptions.create(model="whisper",  # 8 s x 0.0001
                                       file=("talk.wav", samples.wav(7.3), "audio/wav"),
                                       response_format="srt")
    with client.audio.speech.with_streaming_response.create(
            model="tts-1", voice="alloy", input="Hello there") as speech:  # 11 x 15 / 10^6
        speech.read()

    def complete() -> Any:  # the ledger trails the requests by its flush interval
        report = admin_get(stack, "/admin/v1/usage?group_by=day")
        return report if report["totals"]["requests"] == 3 else None

    report = wait_until(complete)
    rows = {r["deployment"]: r for r in report["data"]}
    assert (rows["dall-e-3"]["images"], rows["dall-e-3"]["cost_micros"]) == (2, 240_000)
    assert (rows["whisper"]["audio_seconds"], rows["whisper"]["cost_micros"]) == (8, 800)
    assert (rows["tts-1"]["characters"], rows["tts-1"]["cost_micros"]) == (11, 165)
    assert report["totals"]["images"] == 2 and report["totals"]["cost"] == pytest.approx(0.240965)
    table = admin_get(stack, "/admin/v1/usage?group_by=day", Accept="text/csv")
    lines = list(csv.DictReader(io.StringIO(table)))
    assert {(r["deployment"], r["images"], r["audio_seconds"], r["characters"]) for r in lines} >= {
        ("dall-e-3", "2", "0", "0"), ("whisper", "0", "8", "0"), ("tts-1", "0", "0", "11")}

    async def stored() -> list[tuple[Any, ...]]:  # each row names the client's API and the backend's
        async with stack.app[DATABASE].engine.connect() as c:
            found = (await c.execute(text(
                "SELECT deployment, api, backend_api, images, audio_seconds FROM usage "
                "ORDER BY deployment"))).all()
        return [tuple(r) for r in found]

    assert stack.run(stored()) == [
        ("dall-e-3", "images.generations", "images/generations", 2, 0),
        ("tts-1", "audio.speech", "audio/speech", 0, 0),
        ("whisper", "audio.transcriptions", "audio/transcriptions", 0, 8)]
    units = stack.metrics.media_units.values
    assert units[("dall-e-3", "team-b", "images")] == 2
    assert units[("whisper", "team-b", "audio_seconds")] == 8

    path = tmp_path / "gw.json"  # the team CLI's report, on the same database
    path.write_text(json.dumps(stack.config.model_dump(mode="json", exclude_unset=True)))
    day = datetime.datetime.now(datetime.UTC)
    report_csv = subprocess.run(
        [*GATEWAY, "usage", "--config", str(path), "--from", (day - datetime.timedelta(days=1))
         .isoformat(), "--to", (day + datetime.timedelta(days=1)).isoformat(), "--csv"],
        capture_output=True, text=True, timeout=60, env=os.environ.copy())
    assert report_csv.returncode == 0, report_csv.stderr
    cli_rows = {r["deployment"]: r for r in csv.DictReader(io.StringIO(report_csv.stdout))}
    assert cli_rows["dall-e-3"]["images"] == "2" and cli_rows["whisper"]["audio_seconds"] == "8"


def test_an_upload_over_the_limit_is_refused_before_the_upstream_sees_a_byte(
        make_stack: Callable[..., Stack]) -> None:
    stack = make_stack(with_media(server={"forward_request_headers": ["x-sim-*"],
                                          "max_upload_bytes": 50_000}))
    big = ("long.wav", samples.wav(2.0), "audio/wav")  # 96 KB
    for name, client in clients(stack).items():
        with pytest.raises(openai.APIStatusError) as refused:
            client.audio.transcriptions.create(model="whisper", file=big)
        assert refused.value.status_code == 413, name
        assert refused.value.code == "request_too_large"
        assert "max_upload_bytes" in refused.value.message
    assert not [r for r in stack.sim.records if r.operation.startswith("audio/")]
    small = clients(stack)["openai"].audio.transcriptions.create(
        model="whisper", file=("short.wav", samples.wav(0.5), "audio/wav"))
    assert small.text


async def test_an_upload_without_a_length_is_cut_as_it_passes_the_limit(
        make_stack: Callable[..., Stack]) -> None:
    stack = make_stack(with_media(server={"max_upload_bytes": 200_000}))
    head = form(part("model", "whisper"))[: -len(b"--test-boundary-0123456789--\r\n")]

    async def chunked() -> Any:  # no Content-Length: the size is known only as it arrives
        yield head + part("file", b"", "a.wav", "audio/wav")[:-2]
        for _ in range(60):
            yield bytes(8192)

    async with aiohttp.ClientSession() as s, s.post(
            stack.url + "/v1/audio/transcriptions", data=chunked(),
            headers={"api-key": KEY_B, "Content-Type": FORM_TYPE}) as r:
        assert r.status == 413
        assert (await r.json())["error"]["code"] == "request_too_large"
    record = wait_until(lambda: next((r for r in stack.sim.records if r.ended), None))
    assert record.outcome == "cancelled" and record.upload_bytes <= 200_000  # never completed


def filtered(sim: str) -> dict[str, Any]:
    config = media_config(sim, content_filters={"strict": [
        {"type": "blocklist", "terms": ["forbidden plan"]}, {"type": "pii", "action": "redact"}]},
        content_holdback_chars=16)
    config["server"]["forward_request_headers"] = ["x-sim-*"]
    for deployment in config["deployments"]:
        if deployment["name"] in ("gpt-image-1", "whisper", "gpt-4o-transcribe", "tts-1"):
            deployment["content_filter"] = "strict"
    return config


@pytest.mark.parametrize("kind", ["openai", "azure"])
def test_a_blocked_image_prompt(kind: str, make_stack: Callable[..., Stack]) -> None:
    stack = make_stack(filtered)
    client = clients(stack)[kind]
    with pytest.raises(openai.BadRequestError) as blocked:
        client.images.generate(model="gpt-image-1", prompt="Draw the Forbidden Plan")
    assert blocked.value.code == "content_filter"
    body: Any = blocked.value.body
    assert body["innererror"] == {"code": "ResponsibleAIPolicyViolation", "content_filter_result": {
        "custom_blocklist": {"filtered": True, "severity": "high"}}}
    assert body["inner_error"]["content_filter_results"]["custom_blocklist"]["filtered"] is True
    with pytest.raises(openai.BadRequestError) as edit:  # a form's prompt, before its file
        client.images.edit(model="gpt-image-1", prompt="the forbidden plan",
                           image=("a.png", samples.png(), "image/png"))
    assert edit.value.code == "content_filter"
    with pytest.raises(openai.BadRequestError) as speech:
        client.audio.speech.create(model="tts-1", voice="alloy", input="Read the forbidden plan")
    assert speech.value.code == "content_filter"
    assert stack.sim.count == 0  # none reached the upstream
    assert [line["error"] for line in stack.access_log()] == ["content_filter"] * 3


def test_transcripts_are_filtered_whole_as_text_and_streamed(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack(filtered)
    client = clients(stack)["openai"]
    audio = ("a.wav", samples.wav(1.0), "audio/wav")

    def reply(words: str) -> dict[str, str]:
        return {"x-sim-reply": words}

    with pytest.raises(openai.BadRequestError) as blocked:
        client.audio.transcriptions.create(model="whisper", file=audio,
                                           extra_headers=reply("the forbidden plan is here"))
    assert blocked.value.code == "content_filter" and "transcript" in blocked.value.message
    srt = client.audio.transcriptions.create(model="whisper", file=audio, response_format="srt",
                                             extra_headers=reply("write to jane@example.com now"))
    assert isinstance(srt, str) and "jane@example.com" not in srt and "00:00:00,000 -->" in srt
    verbose = client.audio.transcriptions.create(
        model="whisper", file=audio, response_format="verbose_json",
        extra_headers=reply("mail jane@example.com today"))
    assert "jane@example.com" not in verbose.text and "jane@example.com" not in verbose.segments[0].text
    events = list(client.audio.transcriptions.create(
        model="gpt-4o-transcribe", file=audio, stream=True,
        extra_headers=reply("mail jane@example.com today please")))
    done = next(e for e in events if e.type == "transcript.text.done")
    assert "jane@example.com" not in done.text  # type: ignore[union-attr]
    streamed = "".join(e.delta for e in events if e.type == "transcript.text.delta")  # type: ignore[union-attr]
    assert streamed == done.text  # type: ignore[union-attr]
    with pytest.raises(openai.APIError, match="filtered"):
        list(client.audio.transcriptions.create(
            model="gpt-4o-transcribe", file=audio, stream=True,
            extra_headers=reply("this is the forbidden plan for today and more words")))
