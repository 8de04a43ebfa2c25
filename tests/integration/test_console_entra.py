"""Microsoft Entra sign-in to the console, in a real headless Chromium, against a small
local authorization server that does what Entra's v2.0 endpoints do for the
authorization code flow with PKCE: /authorize redirects back with a code and the state,
/token redeems the code once, for the client and redirect URI it was issued to and only
with the verifier whose S256 digest was the challenge, and answers an RS256 ID token
(signed with the test's key, served as the tenant's JWKS). A user with one of
admin.entra.roles gets in and their changes are audited under their oid; one without is
refused; a callback that did not start at the console is refused."""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from aiohttp import web
from playwright.sync_api import expect

from tests.conftest import OID, TENANT, Keys, Stack, default_config, serve_in_thread
from tests.integration.console_browser import (  # noqa: F401 (fixtures)
    DEADLINE_MS,
    browser_fixture,
    playwright_fixture,
    shots_fixture,
)

CLIENT = "eeeeeeee-0000-0000-0000-000000000005"


class AuthorizationServer:
    """Entra's /authorize and /token for one tenant, for the tests' one user."""

    def __init__(self, keys: Keys) -> None:
        self.keys = keys
        self.roles: list[str] = ["Gateway.Admin"]
        self.codes: dict[str, dict[str, str]] = {}
        self.redeemed: list[dict[str, str]] = []
        self.app = web.Application()
        self.app.router.add_get(f"/{TENANT}/oauth2/v2.0/authorize", self.authorize)
        self.app.router.add_post(f"/{TENANT}/oauth2/v2.0/token", self.token)

    async def authorize(self, request: web.Request) -> web.Response:
        q = request.query
        assert q["client_id"] == CLIENT and q["response_type"] == "code"
        assert q["code_challenge_method"] == "S256" and len(q["code_challenge"]) == 43
        assert "openid" in q["scope"].split()
        code = secrets.token_urlsafe(16)
        self.codes[code] = {"challenge": q["code_challenge"], "nonce": q["nonce"],
                            "redirect_uri": q["redirect_uri"]}
        # The user signed in: back to the app with the code and the state.
        location = q["redirect_uri"] + "?" + urlencode({"code": code, "state": q["state"]})
        return web.Response(status=302, headers={"Location": location})

    async def token(self, request: web.Request) -> web.Response:
        form = await request.post()
        issued = self.codes.pop(str(form.get("code")), None)  # a code is redeemed once
        if issued is None or form.get("grant_type") != "authorization_code" \
                or form.get("client_id") != CLIENT or form.get("redirect_uri") != issued["redirect_uri"]:
            return web.json_response({"error": "invalid_grant"}, status=400)
        digest = hashlib.sha256(str(form.get("code_verifier")).encode()).digest()
        if base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != issued["challenge"]:
            return web.json_response({"error": "invalid_grant",
                                      "error_description": "PKCE verification failed"}, status=400)
        self.redeemed.append({k: str(v) for k, v in form.items() if k != "code_verifier"})
        id_token = self.keys.token(
            aud=CLIENT, iss=f"https://login.microsoftonline.com/{TENANT}/v2.0", ver="2.0",
            nonce=issued["nonce"], roles=self.roles or None, appid=None, azp=CLIENT)
        return web.json_response({"token_type": "Bearer", "id_token": id_token,
                                  "access_token": "not-used", "expires_in": 3600})


@pytest.fixture
def authority(keys: tuple[Keys, str]) -> Iterator[tuple[AuthorizationServer, str]]:
    server = AuthorizationServer(keys[0])
    with serve_in_thread(server.app) as url:
        yield server, url


def _config(jwks: str, authority: str) -> Callable[[str], dict[str, Any]]:
    def make(sim: str) -> dict[str, Any]:
        config = default_config(sim)
        config["auth"] = {"entra": {"tenant_ids": [TENANT], "jwks_url": jwks}}
        config["admin"] = {"entra": {"roles": ["Gateway.Admin"], "client_id": CLIENT,
                                     "authority": authority}}
        return config
    return make


def test_entra_sign_in_with_pkce_and_the_admin_role(
        browser: Any, keys: tuple[Keys, str], authority: tuple[AuthorizationServer, str],
        make_stack: Callable[..., Stack]) -> None:
    server, authority_url = authority
    stack = make_stack(_config(keys[1], authority_url))
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(DEADLINE_MS)
    try:
        page.goto(stack.url + "/ui/login")
        expect(page.get_by_label("Admin key")).to_have_count(0)  # no admin keys configured
        page.get_by_role("link", name="Sign in with Microsoft").click()
        expect(page.get_by_role("heading", name="Usage and spend")).to_be_visible()
        expect(page.locator(".who")).to_have_text(f"entra:{OID}")
        assert server.redeemed and "client_secret" not in server.redeemed[0]  # a public client
        cookies = {c["name"]: c for c in context.cookies()}
        assert cookies["mg_console"]["sameSite"] == "Strict"
        assert "mg_console_oidc" not in cookies  # the sign-in's own cookie is gone

        page.goto(stack.url + "/ui/consumers/new")
        page.get_by_label("Name").fill("by-entra")
        page.get_by_label("chat", exact=True).check()
        page.get_by_role("button", name="Create consumer").click()
        expect(page.get_by_role("status")).to_have_text("Consumer created.")
        page.goto(stack.url + "/ui/config")
        expect(page.locator("table.data tbody tr").first).to_contain_text(f"entra:{OID}")

        page.get_by_role("button", name="Sign out").click()
        expect(page.get_by_role("status")).to_have_text("You are signed out.")

        # A callback that this browser did not start: refused.
        page.goto(stack.url + "/ui/login/entra/callback?code=x&state=forged")
        expect(page.get_by_role("alert")).to_contain_text("did not start from this page")

        # Without the admin role: refused, and no session.
        server.roles = ["Gateway.Reader"]
        page.goto(stack.url + "/ui/login")
        page.get_by_role("link", name="Sign in with Microsoft").click()
        expect(page.get_by_role("alert")).to_contain_text("carries no admin role (Gateway.Admin)")
        assert "mg_console" not in {c["name"] for c in context.cookies()}
    finally:
        context.close()


def test_a_confidential_client_in_a_named_tenant(
        browser: Any, keys: tuple[Keys, str], authority: tuple[AuthorizationServer, str],
        make_stack: Callable[..., Stack], monkeypatch: pytest.MonkeyPatch) -> None:
    """admin.entra.tenant_id picks the tenant signed in to (here not the first of
    auth.entra.tenant_ids), and admin.entra.client_secret_env makes the console a
    confidential client: the code is redeemed with the secret read from that variable."""
    server, authority_url = authority
    monkeypatch.setenv("TEST_CONSOLE_SECRET", "console-secret-value")

    def config(sim: str) -> dict[str, Any]:
        made = _config(keys[1], authority_url)(sim)
        made["auth"]["entra"]["tenant_ids"] = ["00000000-0000-0000-0000-0000000000ff", TENANT]
        made["admin"]["entra"] |= {"tenant_id": TENANT, "client_secret_env": "TEST_CONSOLE_SECRET"}
        return made

    stack = make_stack(config)
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(DEADLINE_MS)
    try:
        page.goto(stack.url + "/ui/login")
        page.get_by_role("link", name="Sign in with Microsoft").click()
        expect(page.get_by_role("heading", name="Usage and spend")).to_be_visible()
        assert server.redeemed[-1]["client_secret"] == "console-secret-value"
        assert "console-secret-value" not in page.content()
    finally:
        context.close()
