"""Rate limits and content filters on the Responses and Anthropic shapes: settlement
exact against each API's usage (streams and client aborts included), and filters
that read every text and end a blocked stream the way each API's clients expect."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import anthropic
import openai
import pytest
from anthropic import Anthropic
from openai import OpenAI

from tests.conftest import KEY_A, Stack
from tests.integration.test_anthropic_api import with_claude
from tests.integration.test_responses_api import with_responses
from tests.waiting import until

CAPACITY = 100_000


def both(sim: str) -> dict[str, Any]:
    config = with_responses(sim)
    config["deployments"].append(with_claude(sim)["deployments"][-1])
    config["consumers"][0]["deployments"] += ["claude-sonnet-4-5"]
    return config


def limited(sim: str) -> dict[str, Any]:
    config = both(sim)
    config["consumers"][0]["limits"] = {"tokens_per_minute": 1, "burst": {"tokens": CAPACITY}}
    return config


def filtered(sim: str) -> dict[str, Any]:
    config = both(sim)
    config["content_filters"] = {"strict": [
        {"type": "blocklist", "terms": ["forbidden plan"]}, {"type": "pii", "kinds": ["email"]}]}
    config["content_holdback_chars"] = 16
    for deployment in config["deployments"][-2:]:
        deployment["content_filter"] = "strict"
    return config


def remaining(headers: Any) -> int:
    return int(headers["x-ratelimit-remaining-tokens"])


async def _post(session: aiohttp.ClientSession, url: str, body: dict[str, Any],
                **headers: str) -> tuple[int, bytes, Any]:
    async with session.post(url, json=body, headers={"api-key": KEY_A, **headers}) as r:
        return r.status, await r.read(), r.headers


@pytest.mark.parametrize("api", ["responses", "messages"])
async def test_settlement_is_exact_streamed_plain_and_aborted(make_stack: Any, api: str) -> None:
    stack: Stack = make_stack(limited)
    if api == "responses":
        url = stack.url + "/v1/responses"
        body: dict[str, Any] = {"model": "gpt-5-mini", "input": "Hello there", "max_output_tokens": 100}
        marker = b"response.output_text.delta"
    else:
        url = stack.url + "/anthropic/v1/messages"
        body = {"model": "claude-sonnet-4-5", "max_tokens": 100,
                "messages": [{"role": "user", "content": "Hello there"}]}
        marker = b"text_delta"
    async with aiohttp.ClientSession() as session:
        for streamed in (False, True):
            status, _, _ = await _post(session, url, {**body, "stream": streamed})
            assert status == 200
        # A client that leaves in the middle of a slow stream.
        r = await session.post(url, json={**body, "stream": True},
                               headers={"api-key": KEY_A, "x-sim-token-ms": "80"})
        await r.content.readuntil(marker)
        r.close()
        # Settled once its access-log line is written (the middleware writes it after
        # the settlement). Counting what the upstream sent may first load the tokenizer,
        # which takes a while on a busy machine: the test waits for the event, not a time.
        await until(lambda: any(line["status"] == 499 for line in stack.access_log()),
                    what="the aborted stream settled")
        # The upstream was cancelled when the client left, not left to generate its 16
        # tokens (1.3 s at 80 ms each) for nobody.
        assert stack.sim.records[-1].outcome == "cancelled"
        status, _, headers = await _post(session, url, {**body, "stream": False})
    log = [line for line in stack.access_log() if line["status"] in (200, 499)]
    plain, streamed_line, aborted, _probe = log
    for line in (plain, streamed_line):
        # The upstream's own count: its words of "Hello there", its 16 tokens of reply.
        assert (line["prompt_tokens"], line["completion_tokens"]) == (2, 16), line
    assert 0 < aborted["completion_tokens"] < 16 and aborted["status"] == 499
    used = sum(line["prompt_tokens"] + line["completion_tokens"] for line in (plain, streamed_line, aborted))
    # The probe's reservation: its prompt estimate plus its max tokens, not yet settled.
    probe_reserved = CAPACITY - used - remaining(headers)
    assert 100 < probe_reserved < 200


def test_a_blocked_term_in_a_responses_input_item(make_stack: Any) -> None:
    stack: Stack = make_stack(filtered)
    c = OpenAI(base_url=stack.url + "/v1", api_key=KEY_A, max_retries=0)
    with pytest.raises(openai.BadRequestError) as err:
        c.responses.create(model="gpt-5-mini", input=[
            {"role": "user", "content": [{"type": "input_text", "text": "Tell me"},
                                         {"type": "input_text", "text": "the Forbidden  Plan"}]}])
    assert err.value.code == "content_filter"
    with pytest.raises(openai.BadRequestError):
        c.responses.create(model="gpt-5-mini", instructions="Explain the forbidden plan", input="hi")
    assert stack.sim.count == 0


def _events(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for block in raw.decode().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "data" in lines:
            out.append((lines.get("event", ""), json.loads(lines["data"])))
    return out


REPLY = "the plan is a forbidden plan and more words follow here"


async def test_responses_stream_blocked_across_deltas_ends_incomplete(make_stack: Any) -> None:
    stack: Stack = make_stack(filtered)
    async with aiohttp.ClientSession() as session:
        status, raw, _ = await _post(session, stack.url + "/v1/responses",
                                     {"model": "gpt-5-mini", "input": "hi", "stream": True},
                                     **{"x-sim-reply": REPLY})
    assert status == 200
    events = _events(raw)
    name, last = events[-1]
    assert name == "response.incomplete" and last["type"] == name
    assert last["response"]["incomplete_details"] == {"reason": "content_filter"}
    text = "".join(e["delta"] for _, e in events if e["type"] == "response.output_text.delta")
    # What was released before the term was complete in the window went out; none of the term.
    assert text == "the"
    assert not any(e["type"] == "response.completed" for _, e in events)
    # The SDK sees the same: a stream that ends incomplete.
    c = OpenAI(base_url=stack.url + "/v1", api_key=KEY_A, max_retries=0)
    kinds = [e.type for e in c.responses.create(model="gpt-5-mini", input="hi", stream=True,
                                                extra_headers={"x-sim-reply": REPLY})]
    assert kinds[-1] == "response.incomplete"


async def test_anthropic_stream_blocked_across_deltas_ends_with_refusal(make_stack: Any) -> None:
    stack: Stack = make_stack(filtered)
    c = Anthropic(base_url=stack.url + "/anthropic", api_key=KEY_A, max_retries=0)
    with c.messages.stream(model="claude-sonnet-4-5", max_tokens=64, extra_headers={"x-sim-reply": REPLY},
                           messages=[{"role": "user", "content": "hi"}]) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert final.stop_reason == "refusal"
    assert text == "the"


def test_responses_redactions_agree_in_every_closing_event(make_stack: Any) -> None:
    stack: Stack = make_stack(filtered)
    c = OpenAI(base_url=stack.url + "/v1", api_key=KEY_A, max_retries=0)
    reply = "write to jane.doe@contoso.com for the details of it all"
    events = list(c.responses.create(model="gpt-5-mini", input="hi", stream=True,
                                     extra_headers={"x-sim-reply": reply}))
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert "jane.doe" not in deltas and "[EMAIL]" in deltas
    done = next(e for e in events if e.type == "response.output_text.done")
    completed = events[-1]
    assert done.text == deltas
    assert completed.response.output_text == deltas  # type: ignore[union-attr]
    # Read back later, the stored response is filtered the same way.
    assert c.responses.retrieve(completed.response.id).output_text == deltas  # type: ignore[union-attr]


def test_whole_answers_blocked_in_each_shape(make_stack: Any) -> None:
    stack: Stack = make_stack(filtered)
    openai_client = OpenAI(base_url=stack.url + "/v1", api_key=KEY_A, max_retries=0)
    reply = openai_client.responses.create(model="gpt-5-mini", input="hi",
                                           extra_headers={"x-sim-reply": REPLY})
    assert reply.status == "incomplete" and reply.incomplete_details.reason == "content_filter"  # type: ignore[union-attr]
    assert "forbidden" not in reply.output_text
    message = Anthropic(base_url=stack.url + "/anthropic", api_key=KEY_A, max_retries=0).messages.create(
        model="claude-sonnet-4-5", max_tokens=64, messages=[{"role": "user", "content": "hi"}],
        extra_headers={"x-sim-reply": REPLY})
    assert message.stop_reason == "refusal"
    assert "forbidden" not in json.dumps([b.model_dump() for b in message.content])
    with pytest.raises(anthropic.BadRequestError):
        Anthropic(base_url=stack.url + "/anthropic", api_key=KEY_A, max_retries=0).messages.create(
            model="claude-sonnet-4-5", max_tokens=64,
            messages=[{"role": "user", "content": [{"type": "text", "text": "a forbidden\nplan"}]}])
