"""The console in a real headless Chromium against a running gateway (SQLite) and the
simulator: an operator signs in with the admin key, creates a consumer and a key, reads
the key once, uses it with the openai SDK, sees its usage and cost on the usage page and
in the CSV, revokes it and sees the SDK get 401, sees a backend that an upstream 429
cooled down shown as cooling down (live, without a reload), and signs out and is refused.
Each page's screenshot is taken on the way (docs/console.md)."""

from __future__ import annotations

import csv
import io
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from openai import AuthenticationError, OpenAI, RateLimitError
from playwright.sync_api import expect

from gateway.team.ledger import LEDGER
from policies.base import Usage
from policies.ratelimit.quotas import MICROS, PricingConfig, cost_micros
from tests.conftest import KEY_B
from tests.integration.console_browser import (  # noqa: F401 (fixtures)
    DEADLINE_MS,
    PRICING,
    Console,
    browser_fixture,
    console_fixture,
    console_stack_fixture,
    playwright_fixture,
    shots_fixture,
    wait_until,
)


def test_keys_spend_and_revocation_from_sign_in_to_sign_out(console: Console) -> None:
    page, stack = console.page, console.stack
    console.go("/ui/usage")
    expect(page).to_have_url(stack.url + "/ui/login")
    console.shot("login")
    console.sign_in()
    expect(page.get_by_role("heading", name="Usage and spend")).to_be_visible()
    session = console.cookie("mg_console")
    assert session["httpOnly"] and session["sameSite"] == "Strict" and session["path"] == "/ui"
    assert not session["secure"]  # plain HTTP here; Secure over TLS (test_console_security)

    # A consumer, made in the form.
    page.get_by_role("link", name="Consumers").click()
    page.get_by_role("link", name="New consumer").click()
    page.get_by_label("Name").fill("analytics")
    page.get_by_label("chat", exact=True).check()
    page.get_by_label("Tokens a day").fill("100000")
    page.get_by_label("Cost a month").fill("5")
    page.get_by_label("Metadata").fill("cost_center=4711\nowner=data team")
    console.shot("consumer-new")
    page.get_by_role("button", name="Create consumer").click()
    expect(page.get_by_role("status")).to_have_text("Consumer created.")
    expect(page).to_have_url(stack.url + "/ui/consumers/analytics?done=created")

    # A key: shown once, copied with the button.
    page.get_by_label("Description").fill("ci job")
    page.get_by_role("button", name="Issue a key").click()
    field = page.get_by_label("The new key")
    key = field.input_value()
    assert key.startswith("mgk_")
    page.get_by_role("button", name="Copy").click()
    expect(page.get_by_text("Copied.")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == key
    console.shot("key-issued")
    page.get_by_role("link", name="Back to analytics").click()
    assert key not in page.content()  # never again
    expect(page.get_by_role("row", name=key[:12])).to_contain_text("ci job")

    # Its calls, with the openai SDK; then its usage and cost on the page and in the CSV.
    client = OpenAI(base_url=stack.url + "/v1", api_key=key, max_retries=0)
    expected = 0
    tokens = 0
    for _ in range(2):
        answer = client.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "How much did we spend?"}])
        assert answer.usage is not None
        expected += cost_micros(Usage(answer.usage.prompt_tokens, answer.usage.completion_tokens),
                                PricingConfig(**PRICING))
        tokens += answer.usage.total_tokens
    ledger = stack.app[LEDGER]
    written = ledger.written
    wait_until(lambda: ledger.written > written and not ledger.spool.pending, "the ledger's write")
    before = len(stack.access_log())
    console.go("/ui/usage?stack=consumer")
    page.wait_for_load_state("networkidle")
    # One request for the page: its stylesheet, script and icon are in the browser's cache.
    assert [line["route"] for line in stack.access_log()[before:]] == ["/ui/usage"]
    table = page.locator("#t-cost")
    column = [c.strip() for c in table.locator("thead th").all_inner_texts()].index("analytics")
    total = table.locator("tfoot td").nth(column - 1)
    expect(total).to_have_text(f"{expected / MICROS:.6f}".rstrip("0"))
    expect(page.locator("#t-tokens tfoot td").nth(column - 1)).to_have_text(f"{tokens:,}")
    expect(page.locator(".chart svg rect").first).to_be_attached()  # the script drew the bars
    expect(page.get_by_role("row", name="analytics tokens per day")).to_contain_text("100,000")
    console.shot("usage")
    with page.expect_download() as download:
        page.get_by_role("link", name="Download CSV").click()
    rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    mine = [r for r in rows if r["consumer"] == "analytics"]
    assert sum(float(r["cost"]) for r in mine) == pytest.approx(expected / MICROS)
    assert sum(int(r["tokens"]) for r in mine) == tokens
    # Exactly the tables' cells: one row per non-empty cell of the cost table.
    cells = page.locator("#t-cost tbody td[data-value]:not([data-value='0.0'])").count()
    assert len(rows) == cells

    # Revoked after a confirmation: the SDK gets 401 from then on.
    console.go("/ui/consumers/analytics")
    page.get_by_role("link", name=f"Revoke key {key[:12]}").click()
    expect(page.get_by_role("heading", name="Revoke this key?")).to_be_visible()
    console.shot("key-revoke")
    page.get_by_role("button", name="Revoke key").click()
    expect(page.get_by_role("status")).to_have_text("Key revoked.")
    with pytest.raises(AuthenticationError) as refused:
        client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "x"}])
    assert refused.value.status_code == 401
    console.shot("consumer")
    console.go("/ui/consumers")
    expect(page.get_by_role("row", name="team-a")).to_contain_text("read-only")
    console.shot("consumers")

    # Its quota changed in the settings form, then the consumer deleted after a confirmation.
    console.go("/ui/consumers/analytics")
    page.get_by_label("Tokens a day").fill("250000")
    page.get_by_label("embed", exact=True).check()
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_have_text("Changes saved.")
    expect(page.get_by_label("Tokens a day")).to_have_value("250000")
    assert {c.name: c for c in stack.runtime.consumers}["analytics"].deployments == ("chat", "embed")
    page.get_by_role("link", name="Delete analytics").click()
    page.get_by_role("button", name="Delete consumer").click()
    expect(page.get_by_role("status")).to_have_text("Consumer deleted.")
    expect(page.get_by_role("link", name="analytics")).to_have_count(0)

    # The audit trail has all of it, newest first, under the admin key's name; a reload
    # of a config that was not read from a file is refused, saying so.
    console.go("/ui/config")
    actions = page.locator("table.data tbody tr th").all_inner_texts()
    assert actions[:5] == ["consumer.delete", "consumer.update", "key.revoke", "key.create",
                           "consumer.create"]
    expect(page.locator("table.data tbody tr").first).to_contain_text("key:ops")
    console.shot("config")
    page.get_by_role("button", name="Reload the config file").click()
    expect(page.get_by_role("alert")).to_contain_text("not read from a file")

    # Signed out: the page refuses, and so does the old cookie, on the server's side.
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("status")).to_have_text("You are signed out.")
    console.go("/ui/consumers")
    expect(page).to_have_url(stack.url + "/ui/login")
    assert _status_with_cookie(stack.url + "/ui/deployments.json", session["value"]) == 401
    assert not console.dialogs
    assert not [p for p in console.problems if "Content Security Policy" in p], console.problems


def _status_with_cookie(url: str, value: str) -> int:
    # Plain urllib: Playwright's sync API holds this thread's event loop.
    request = urllib.request.Request(url, headers={"Cookie": f"mg_console={value}"})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_a_backend_cooled_down_by_an_upstream_429_shows_live(console: Console) -> None:
    page, stack = console.page, console.stack
    console.sign_in()
    console.go("/ui/deployments")
    row = page.locator("tr[data-row='oss/" + stack.runtime.deployments["oss"].backends[0].name + "']")
    expect(row.locator("[data-field=status]")).to_have_text("available")
    expect(page.get_by_text("requests: 600 of 600 left (600 a minute)")).to_be_visible()
    client = OpenAI(base_url=stack.url + "/v1", api_key=KEY_B, max_retries=0)
    with pytest.raises(RateLimitError):
        client.chat.completions.create(
            model="oss", messages=[{"role": "user", "content": "x"}],
            extra_headers={"x-sim-fault": "429", "x-sim-retry-after-ms": "120000"})
    # No reload: the page's script fetches the state again every few seconds.
    expect(row.locator("[data-field=status]")).to_have_text("cooling down", timeout=DEADLINE_MS)
    expect(row.locator("[data-field=cooldown]")).to_contain_text("until ")
    expect(row.locator("[data-field=last_error]")).not_to_have_text("\u2013")
    console.shot("deployments")
    assert not [p for p in console.problems if "Content Security Policy" in p], console.problems


def test_readable_at_390_px(console: Console) -> None:
    page = console.page
    page.set_viewport_size({"width": 390, "height": 844})
    console.sign_in()
    expect(page.get_by_role("heading", name="Usage and spend")).to_be_visible()
    # Nothing wider than the screen but the tables' own scrolling regions.
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, width
    console.shot("usage-390", full_page=False)
    page.keyboard.press("Tab")  # the skip link comes first, for keyboards
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
