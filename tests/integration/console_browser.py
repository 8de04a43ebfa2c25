"""What the console's browser tests share: a real headless Chromium (Debian's, driven by
Playwright; never a downloaded browser), a gateway configured for the console, signing
in, waiting for the ledger, and screenshots for docs/console.md.

Screenshots go to the folder MODEL_GATEWAY_SCREENSHOTS names (docs/console to refresh
the docs), else to the test's temporary folder: they are taken on every run either way.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright

from policies.auth import hash_key
from tests.conftest import Stack, default_config

ADMIN_KEY = "admin-key-console-1"
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
# Generous: the machine is small and shared.
DEADLINE_MS = 30_000
PRICING = {"currency": "USD", "input_per_million": 2.5, "output_per_million": 10.0}


def console_config(sim: str) -> dict[str, Any]:
    config = default_config(sim)
    config["admin"] = {"api_keys": {"ops": hash_key(ADMIN_KEY)}, "refresh_seconds": 0.2}
    config["ledger"] = {"flush_seconds": 0.1}
    for deployment in config["deployments"]:
        if deployment["name"] in ("chat", "oss"):
            deployment["pricing"] = PRICING
    config["deployments"][0]["limits"] = {"requests_per_minute": 600, "tokens_per_minute": 100000}
    config["consumers"][0]["quotas"] = {"tokens_per_day": 50000, "cost_per_month": 20}
    return config


# Fixtures under names of their own, so that a test module imports them (FIXTURES)
# without its parameters shadowing the imports.
@pytest.fixture(scope="module", name="playwright")
def playwright_fixture() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module", name="browser")
def browser_fixture(playwright: Playwright) -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is missing: scripts/test installs it (apt-get install chromium)")
    launched = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
    yield launched
    launched.close()


class Console:
    """One browser context on one gateway: its page, and what the page reported."""

    def __init__(self, context: BrowserContext, stack: Stack, shots: Path) -> None:
        self.context, self.stack, self.shots = context, stack, shots
        self.page: Page = context.new_page()
        self.page.set_default_timeout(DEADLINE_MS)
        self.dialogs: list[str] = []
        self.problems: list[str] = []
        self.page.on("dialog", self._dialog)
        self.page.on("console", lambda m: self.problems.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.problems.append(str(e)))

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def go(self, path: str) -> Page:
        self.page.goto(self.stack.url + path)
        return self.page

    def sign_in(self, key: str = ADMIN_KEY) -> None:
        self.go("/ui/login")
        self.page.get_by_label("Admin key").fill(key)
        self.page.get_by_role("button", name="Sign in").click()

    def shot(self, name: str, full_page: bool = True) -> Path:
        path = self.shots / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=full_page)
        return path

    def cookie(self, name: str) -> dict[str, Any]:
        found = [c for c in self.context.cookies() if c["name"] == name]
        assert found, f"no cookie {name}"
        return dict(found[0])


@pytest.fixture(name="shots")
def shots_fixture(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("MODEL_GATEWAY_SCREENSHOTS") or tmp_path / "shots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(name="console_stack")
def console_stack_fixture(make_stack: Callable[..., Stack]) -> Stack:
    return make_stack(console_config)


@pytest.fixture(name="console")
def console_fixture(browser: Browser, console_stack: Stack, shots: Path) -> Iterator[Console]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=console_stack.url)
    yield Console(context, console_stack, shots)
    context.close()


def wait_until(check: Callable[[], bool], what: str, timeout: float = DEADLINE_MS / 1000) -> None:
    """Until `check()` holds (a condition of the running gateway), or fail saying `what`."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF field on the page"
    return found.group(1)


async def signed_in(stack: Stack) -> tuple[aiohttp.ClientSession, str]:
    """An HTTP client signed in to the console (as a browser would), and a CSRF token.
    The cookie jar takes cookies of IP addresses (the gateway is on 127.0.0.1)."""
    session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True),
                                    headers={"Accept": "text/html"})
    async with session.get(stack.url + "/ui/login") as r:
        token = csrf_of(await r.text())
    async with session.post(stack.url + "/ui/login", data={"key": ADMIN_KEY, "csrf": token},
                            headers={"Sec-Fetch-Site": "same-origin"}, allow_redirects=False) as r:
        assert r.status == 303, await r.text()
    async with session.get(stack.url + "/ui/consumers") as r:
        return session, csrf_of(await r.text())


