"""/metrics, /healthz, /readyz and the access log, as an operator reads them."""

from __future__ import annotations

import aiohttp

from tests.conftest import KEY_A, Stack

SECRET_PROMPT = "my-password-is-hunter2"


async def test_metrics_health_and_access_log(stack: Stack) -> None:
    body = {"model": "chat", "messages": [{"role": "user", "content": SECRET_PROMPT}]}
    async with aiohttp.ClientSession() as session:
        async with session.post(stack.url + "/v1/chat/completions", json=body,
                                headers={"api-key": KEY_A}) as r:
            assert r.status == 200
        async with session.post(stack.url + "/v1/chat/completions", json={**body, "stream": True},
                                headers={"Authorization": f"Bearer {KEY_A}"}) as r:
            await r.read()
        async with session.post(stack.url + "/v1/chat/completions", json=body,
                                headers={"api-key": "wrong-key"}) as r:
            assert r.status == 401
        async with session.get(stack.url + "/healthz") as r:
            assert r.status == 200
        async with session.get(stack.url + "/readyz") as r:
            assert r.status == 200 and (await r.json())["status"] == "ready"
        async with session.get(stack.url + "/metrics") as r:
            metrics = await r.text()

    route = 'route="/v1/chat/completions"'
    for line in (
        f'gateway_requests_total{{api="chat.completions",backend_api="chat/completions",'
        f'consumer="team-a",deployment="chat",{route},status_code="200"}} 2.0',
        f'gateway_requests_total{{api="",backend_api="",consumer="",deployment="",{route},'
        'status_code="401"} 1.0',
        'gateway_tokens_total{consumer="team-a",deployment="chat",type="prompt"} 2.0',
        'gateway_tokens_total{consumer="team-a",deployment="chat",type="completion"} 32.0',
        'gateway_time_to_first_token_seconds_count{deployment="chat"} 1.0',
        'gateway_overhead_seconds_count{route="/v1/chat/completions"} 3.0',
        'gateway_request_duration_seconds_count{deployment="chat",route="/v1/chat/completions"} 2.0',
        'gateway_inflight_requests{deployment="chat"} 0.0',
    ):
        assert line in metrics, line
    assert 'gateway_upstream_requests_total{backend="127.0.0.1:' in metrics
    assert 'gateway_backend_available{backend="127.0.0.1:' in metrics

    records = stack.access_log()
    chats = [r for r in records if r["route"] == "/v1/chat/completions"]
    assert [r["status"] for r in chats] == [200, 200, 401]
    assert chats[1]["stream"] is True and chats[1]["ttft_ms"] is not None
    assert chats[0]["completion_tokens"] == 16 and chats[0]["deployment"] == "chat"
    assert chats[2]["error"] == "invalid_api_key"
    text = stack.log.getvalue().decode()
    for secret in (KEY_A, "wrong-key", SECRET_PROMPT, "upstream-secret"):
        assert secret not in text


async def test_unknown_alias_is_not_a_metric_label(stack: Stack) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.post(stack.url + "/v1/chat/completions", headers={"api-key": KEY_A},
                                json={"model": "attacker-chosen-xyz", "messages": []}) as r:
            assert r.status == 404
        async with session.get(stack.url + "/metrics") as r:
            assert "attacker-chosen-xyz" not in await r.text()
