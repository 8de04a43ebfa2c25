"""Inbound Entra ID tokens: real RS256 JWTs signed with a test key, served from a
local JWKS; the attack set; mapping to consumers; the real azure-identity
credential in the caller's hands."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import aiohttp
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from openai import OpenAI

from tests.conftest import (
    APP,
    AUD,
    GROUP,
    OID,
    TENANT,
    Keys,
    Stack,
    default_config,
    managed_identity,
)
from tests.waiting import until


def entra_config(jwks: str) -> Any:
    def make(sim: str) -> dict[str, Any]:
        config = default_config(sim)
        config["auth"] = {"entra": {"tenant_ids": [TENANT], "jwks_url": jwks,
                                    "jwks_refresh_seconds": 1}}
        config["consumers"] += [
            {"name": "mi-app", "entra": {"app_ids": [APP]}, "deployments": ["chat"]},
            {"name": "by-group", "entra": {"groups": [GROUP]}, "deployments": ["*"]},
            # A consumer that must never match on a name claim.
            {"name": "by-name", "entra": {"object_ids": ["Jane Doe"]}, "deployments": ["*"]},
        ]
        return config
    return make


@pytest.fixture
def entra_stack(make_stack: Any, keys: tuple[Keys, str]) -> Stack:
    stack: Stack = make_stack(entra_config(keys[1]))
    return stack


async def chat(stack: Stack, token: str, model: str = "chat") -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as session, session.post(
        stack.url + "/v1/chat/completions", headers={"Authorization": f"Bearer {token}"},
        json={"model": model, "messages": [{"role": "user", "content": "hi"}]},
    ) as r:
        return r.status, await r.json()


def test_openai_sdk_with_a_token(entra_stack: Stack, keys: tuple[Keys, str]) -> None:
    k, _ = keys
    token = k.token()
    client = OpenAI(base_url=entra_stack.url + "/v1", api_key=token, max_retries=0)
    reply = client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "x"}])
    assert reply.choices[0].message.content
    line = entra_stack.access_log()[-1]
    assert line["consumer"] == "mi-app"
    assert line["identity"] == f"oid={OID} appid={APP}"
    assert token not in entra_stack.log.getvalue().decode()
    assert token not in repr(entra_stack.sim.records[-1])  # never forwarded upstream


async def test_v2_issuer_trailing_slash_audience_and_group_mapping(
    entra_stack: Stack, keys: tuple[Keys, str]
) -> None:
    k, _ = keys
    v2 = k.token(iss=f"https://login.microsoftonline.com/{TENANT}/v2.0", aud=AUD + "/",
                 appid=None, azp="eeeeeeee-0000-0000-0000-000000000005", groups=[GROUP])
    status, _ = await chat(entra_stack, v2, model="mistral")
    assert status == 200
    assert entra_stack.access_log()[-1]["consumer"] == "by-group"


async def test_valid_token_of_an_unknown_caller_is_403(entra_stack: Stack, keys: tuple[Keys, str]) -> None:
    k, _ = keys
    stranger = k.token(oid="ffffffff-0000-0000-0000-000000000009", appid="99999999-0000-0000-0000-0",
                       name="Jane Doe", preferred_username="Jane Doe")
    status, body = await chat(entra_stack, stranger)
    assert status == 403
    assert "oid ffffffff-0000-0000-0000-000000000009" in body["error"]["message"]
    assert "by-name" not in body["error"]["message"]  # the config is not revealed


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def attacks(k: Keys) -> dict[str, str]:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    good = k.token()
    head, body, sig = good.split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=="))
    public_pem = k.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    now = int(time.time())
    return {
        "alg none": _b64(b'{"alg":"none","typ":"JWT","kid":"test-key-1"}') + "." + body + ".",
        "HS256 with the public key": _b64(json.dumps(
            {"alg": "HS256", "typ": "JWT", "kid": k.kid}).encode()) + "." + body + "." + _b64(
            __import__("hmac").new(public_pem, f"{head}.{body}".encode(), "sha256").digest()),
        "expired": k.token(exp=now - 3600, nbf=now - 7200, iat=now - 7200),
        "not yet valid": k.token(nbf=now + 3600),
        "wrong audience": k.token(aud="https://management.azure.com"),
        "wrong issuer": k.token(iss="https://sts.windows.net/evil/"),
        "wrong tenant": k.token(tid="99999999-0000-0000-0000-000000000000",
                                iss="https://sts.windows.net/99999999-0000-0000-0000-000000000000/"),
        "unknown kid": k.token(kid="not-a-key"),
        "signed by another key": k.token(key=other),
        "tampered payload": head + "." + _b64(json.dumps({**claims, "oid": "x"}).encode()) + "." + sig,
        "tampered signature": head + "." + body + "." + sig[:-4] + ("AAAA" if sig[-4:] != "AAAA" else "BBBB"),
        "malformed": "eyJhbGciOi.not-base64!.x",
        "oversized": "eyJ" + "a" * 20000 + ".b.c",
    }


async def test_attack_set_is_401(entra_stack: Stack, keys: tuple[Keys, str]) -> None:
    k, _ = keys
    for name, token in attacks(k).items():
        status, body = await chat(entra_stack, token)
        assert status == 401, name
        assert body["error"]["code"] == "invalid_token", name
    assert entra_stack.sim.count == 0


async def test_unknown_kid_flood_does_not_hammer_the_jwks(entra_stack: Stack, keys: tuple[Keys, str]) -> None:
    k, _ = keys
    assert (await chat(entra_stack, k.token()))[0] == 200
    before = k.fetches
    for i in range(30):
        assert (await chat(entra_stack, k.token(kid=f"forged-{i}")))[0] == 401
    assert k.fetches - before <= 1


async def test_key_rotation(entra_stack: Stack, keys: tuple[Keys, str]) -> None:
    k, _ = keys
    assert (await chat(entra_stack, k.token()))[0] == 200
    new = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    k.served.append(Keys.jwk(new, "test-key-2"))
    token = k.token(key=new, kid="test-key-2")

    async def accepted() -> bool:  # once jwks_refresh_seconds allow it, the unknown kid refreshes
        return (await chat(entra_stack, token))[0] == 200

    before = k.fetches
    await until(accepted, what="the rotated key accepted", interval=0.2)
    assert k.fetches == before + 1  # one refresh, however many tries it took


def test_azure_identity_credential_in_the_callers_hands(
    entra_stack: Stack, keys: tuple[Keys, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The caller uses the real ManagedIdentityCredential; its token endpoint hands out
    our signed JWT; azure-ai-inference sends it as a bearer."""
    from azure.ai.inference import ChatCompletionsClient
    from azure.ai.inference.models import UserMessage
    from azure.identity import ManagedIdentityCredential

    k, _ = keys
    with managed_identity(monkeypatch, k.token):
        client = ChatCompletionsClient(
            endpoint=entra_stack.url + "/models", model="chat",
            credential=ManagedIdentityCredential(),
            credential_scopes=["https://cognitiveservices.azure.com/.default"])
        # azure-core sends bearer tokens over https only unless told otherwise; the
        # test gateway is plain http on loopback.
        reply = client.complete(messages=[UserMessage("hi")], enforce_https=False)
    assert reply.choices[0].message.content
    assert entra_stack.access_log()[-1]["consumer"] == "mi-app"
