"""The console's defences over HTTP, against a running gateway: a state-changing request
without its CSRF token or from another origin is refused (and changes nothing); a
consumer's key never signs in, nor does a login form without its own token; every answer
carries the security headers and the session cookie its attributes (Secure behind TLS);
no secret is in any page; and the console follows the admin API's port rule."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import aiohttp

from gateway.console.guard import CSP
from policies.auth import hash_key
from tests.conftest import KEY_A, Stack, default_config, free_port
from tests.integration.console_browser import (  # noqa: F401 (fixtures)
    ADMIN_KEY,
    console_config,
    console_stack_fixture,
    signed_in,
)


async def _post(session: aiohttp.ClientSession, url: str, data: dict[str, Any],
                **headers: str) -> tuple[int, str]:
    async with session.post(url, data=data, headers=headers, allow_redirects=False) as r:
        return r.status, await r.text()


async def test_state_changes_need_the_csrf_token_and_the_origin(console_stack: Stack) -> None:
    stack = console_stack
    session, token = await signed_in(stack)
    url = stack.url + "/ui/consumers"
    body = {"name": "made", "deployments": "chat"}
    async with session:
        cases = [
            ({**body}, {"Sec-Fetch-Site": "same-origin"}),  # no token
            ({**body, "csrf": "x" * len(token)}, {"Sec-Fetch-Site": "same-origin"}),  # a wrong one
            ({**body, "csrf": token}, {"Sec-Fetch-Site": "cross-site"}),
            ({**body, "csrf": token}, {"Sec-Fetch-Site": "same-site"}),
            ({**body, "csrf": token}, {"Origin": "http://evil.example"}),
            ({**body, "csrf": token}, {"Origin": "null"}),
            ({**body, "csrf": token}, {}),  # neither header: not a browser's form
        ]
        for data, headers in cases:
            status, text = await _post(session, url, data, **headers)
            assert status == 403, (data, headers, text)
            assert "Refused" in text
        for path in ("/ui/logout", "/ui/reload", "/ui/consumers/team-a/delete"):
            status, _ = await _post(session, stack.url + path, {}, **{"Sec-Fetch-Site": "same-origin"})
            assert status == 403, path
        async with session.get(url + "/made") as r:
            assert r.status == 404  # nothing was made
        # The JSON refusal keeps the contract's shape.
        async with session.post(url, data=body, headers={"Accept": "application/json",
                                                         "Sec-Fetch-Site": "cross-site"}) as r:
            assert r.status == 403
            assert (await r.json())["error"]["code"] == "permission_denied"
        status, _ = await _post(session, url, {**body, "csrf": token}, Origin=stack.url)
        assert status == 303  # the same form from the console's own origin


async def test_a_consumer_key_never_signs_in(console_stack: Stack) -> None:
    stack = console_stack
    session, token = await signed_in(stack)
    async with session:
        async with session.post(stack.url + "/ui/consumers/new", data={}) as r:
            assert r.status == 403  # no CSRF token: refused before any route is looked at
        status, _ = await _post(session, stack.url + "/ui/consumers",
                                {"name": "svc", "deployments": "chat", "csrf": token},
                                **{"Sec-Fetch-Site": "same-origin"})
        assert status == 303
        async with session.post(stack.url + "/ui/consumers/svc/keys", data={"csrf": token},
                                headers={"Sec-Fetch-Site": "same-origin"}) as r:
            runtime_key = re.search(r'value="(mgk_[^"]+)"', await r.text()).group(1)  # type: ignore[union-attr]
    for key in (KEY_A, runtime_key, hash_key(ADMIN_KEY), ADMIN_KEY[:-1], "x"):
        fresh = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True),
                                      headers={"Accept": "text/html"})
        async with fresh:
            async with fresh.get(stack.url + "/ui/login") as r:
                login = re.search(r'name="csrf" value="([^"]+)"', await r.text()).group(1)  # type: ignore[union-attr]
            status, text = await _post(fresh, stack.url + "/ui/login", {"key": key, "csrf": login},
                                       **{"Sec-Fetch-Site": "same-origin"})
            assert status == 401, key
            assert "That is not an admin key." in text
            assert not any(c.key == "mg_console" for c in fresh.cookie_jar)
    # Nor does a login form without its own token, or with another's.
    fresh = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    async with fresh:
        status, _ = await _post(fresh, stack.url + "/ui/login", {"key": ADMIN_KEY, "csrf": "forged"},
                                **{"Sec-Fetch-Site": "same-origin"})
        assert status == 403


async def test_headers_cookies_and_no_secret_in_any_page(console_stack: Stack) -> None:
    stack = console_stack
    session, _ = await signed_in(stack)
    secrets = [ADMIN_KEY, hash_key(ADMIN_KEY), hash_key(KEY_A), KEY_A,
               hash_key(ADMIN_KEY).removeprefix("sha256:")]
    pages = ["/ui/login", "/ui/usage", "/ui/usage?stack=consumer", "/ui/usage.csv", "/ui/consumers",
             "/ui/consumers/team-a", "/ui/consumers/new", "/ui/deployments", "/ui/deployments.json",
             "/ui/config", "/ui/static/console.css", "/ui/static/console.js", "/ui/consumers/nobody",
             "/ui/usage?from=junk"]
    async with session:
        for path in pages:
            async with session.get(stack.url + path) as r:
                text = await r.text()
                assert r.status in (200, 400, 404), (path, r.status)
                assert r.headers["Content-Security-Policy"] == CSP, path
                assert r.headers["X-Frame-Options"] == "DENY", path
                assert r.headers["Referrer-Policy"] == "no-referrer", path
                assert r.headers["X-Content-Type-Options"] == "nosniff", path
                if "static" not in path:
                    assert r.headers["Cache-Control"] == "no-store", path
                for secret in secrets:
                    assert secret not in text, (path, secret)
        assert "frame-ancestors 'none'" in CSP and "'unsafe-inline'" not in CSP
        async with session.get(stack.url + "/ui/static/console.js") as r:
            assert "immutable" in r.headers["Cache-Control"]
        async with session.get(stack.url + "/ui/consumers/nobody") as r:
            assert r.status == 404 and "No consumer nobody." in await r.text()
    # Behind a proxy that ended TLS, the cookie is Secure.
    async with aiohttp.ClientSession() as s:
        async with s.get(stack.url + "/ui/login") as r:
            login = re.search(r'name="csrf" value="([^"]+)"', await r.text()).group(1)  # type: ignore[union-attr]
            pre = r.cookies["mg_console_login"].value
        async with s.post(stack.url + "/ui/login", data={"key": ADMIN_KEY, "csrf": login},
                          headers={"X-Forwarded-Proto": "https", "Sec-Fetch-Site": "same-origin",
                                   "Cookie": f"mg_console_login={pre}"},
                          allow_redirects=False) as r:
            assert r.status == 303
            cookie = r.headers["Set-Cookie"]
    assert "mg_console=" in cookie and "Secure" in cookie and "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie and "Path=/ui" in cookie and "Max-Age=" in cookie


def _admin_port_config(port: int) -> Callable[[str], dict[str, Any]]:
    def make(sim: str) -> dict[str, Any]:
        config = console_config(sim)
        config["admin"]["port"] = port
        return config
    return make


async def test_the_console_follows_the_admin_port_rule(make_stack: Callable[..., Stack]) -> None:
    port = free_port()
    stack = make_stack(_admin_port_config(port))
    plain = make_stack(default_config)  # no admin API: no console
    async with aiohttp.ClientSession() as s:
        for url in (stack.url, plain.url):
            async with s.get(url + "/ui/login") as r:
                assert r.status == 404
                assert (await r.json())["error"]["code"] == "not_found"
        async with s.get(f"http://127.0.0.1:{port}/ui/login") as r:
            assert r.status == 200 and "Sign in to the console" in await r.text()
