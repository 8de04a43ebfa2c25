"""Upstream auth with the real azure-identity WorkloadIdentityCredential (the AKS
case): a federated token file, and a local Entra token endpoint over TLS (the
credential refuses a non-https authority), trusted through a test certificate."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import aiohttp.connector
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gateway.simulator import SimulatorSettings
from tests.conftest import KEY_A, Stack, default_config, free_port

TENANT = "aaaaaaaa-0000-0000-0000-000000000001"
CLIENT = "cccccccc-0000-0000-0000-000000000003"
FEDERATED = "federated-service-account-token"


def certificate(folder: Path) -> tuple[Path, Path, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                       critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM)
    (folder / "cert.pem").write_bytes(pem)
    (folder / "key.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return folder / "cert.pem", folder / "key.pem", pem


class Authority:
    def __init__(self) -> None:
        self.requests: list[dict[str, str]] = []

    async def token(self, request: web.Request) -> web.Response:
        form = await request.post()
        self.requests.append({"path": request.path, **{k: str(v) for k, v in form.items()}})
        return web.json_response({"access_token": f"wi-token-{len(self.requests)}",
                                  "expires_in": 3600, "token_type": "Bearer"})


@pytest.fixture
def authority(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Authority]:
    cert, key, pem = certificate(tmp_path)
    # azure-core's aiohttp transport verifies with aiohttp's default context: for this
    # test only, that context is a new one that also trusts the test certificate (the
    # shared one is put back afterwards, untouched: a CA cannot be taken out of a context).
    trusting = ssl.create_default_context()
    trusting.load_verify_locations(cadata=pem.decode())
    monkeypatch.setattr(aiohttp.connector, "_SSL_CONTEXT_VERIFIED", trusting)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    state = Authority()
    app = web.Application()
    app.router.add_post("/{tenant}/oauth2/v2.0/token", state.token)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    runner = web.AppRunner(app)
    port = free_port()

    async def start() -> None:
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port, ssl_context=server_ctx).start()

    asyncio.run_coroutine_threadsafe(start(), loop).result(10)
    token_file = tmp_path / "federated-token"
    token_file.write_text(FEDERATED)
    monkeypatch.setenv("AZURE_AUTHORITY_HOST", f"https://127.0.0.1:{port}")
    monkeypatch.setenv("AZURE_FEDERATED_TOKEN_FILE", str(token_file))
    yield state
    asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)


def workload(sim: str) -> dict[str, Any]:
    config = default_config(sim)
    config["deployments"][0]["backends"][0]["auth"] = {
        "type": "entra", "credential": "workload-identity", "client_id": CLIENT,
        "tenant_id": TENANT}
    return config


async def test_workload_identity_token_reaches_the_upstream(
    make_stack: Any, authority: Authority
) -> None:
    stack: Stack = make_stack(workload, SimulatorSettings(accept=("wi-token-1",)))
    body = {"model": "chat", "messages": [{"role": "user", "content": "x"}]}
    async with aiohttp.ClientSession() as session:
        statuses = []
        for _ in range(3):
            async with session.post(stack.url + "/v1/chat/completions", json=body,
                                    headers={"api-key": KEY_A}) as r:
                statuses.append(r.status)
    assert statuses == [200, 200, 200]
    assert len(authority.requests) == 1  # cached
    sent = authority.requests[0]
    assert sent["path"] == f"/{TENANT}/oauth2/v2.0/token"
    assert sent["client_id"] == CLIENT and sent["client_assertion"] == FEDERATED
    assert sent["scope"] == "https://cognitiveservices.azure.com/.default"
    assert {r.authorization for r in stack.sim.records} == {"Bearer wi-token-1"}


def test_the_test_certificate_is_trusted_by_no_other_test() -> None:
    """Run after the test above: what its fixture trusted went with it, aiohttp's shared
    context holds no certificate issued to 127.0.0.1 (as the test's is)."""
    trusted = aiohttp.connector._SSL_CONTEXT_VERIFIED.get_ca_certs()
    assert not any(("commonName", "127.0.0.1") in (field for rdn in ca.get("subject", ())
                                                   for field in rdn) for ca in trusted)
