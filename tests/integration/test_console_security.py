"""The console's defences in a real browser: hostile names, metadata and descriptions
render as text (no script runs, no markup is made), and a form posted from another
origin (a real page on another port, in the same browser) is refused. The same
defences over plain HTTP: test_console_http."""

from __future__ import annotations

from aiohttp import web
from playwright.sync_api import expect

from tests.conftest import serve_in_thread
from tests.integration.console_browser import (  # noqa: F401 (fixtures)
    Console,
    browser_fixture,
    console_fixture,
    console_stack_fixture,
    playwright_fixture,
    shots_fixture,
)

HOSTILE = "<script>alert(1)</script>"
QUOTED = "\"double\" 'single' <img src=x onerror=alert(2)> &amp;"


def test_hostile_values_render_as_text(console: Console) -> None:
    page = console.page
    console.sign_in()
    console.go("/ui/consumers/new")
    page.get_by_label("Name").fill(HOSTILE)
    page.get_by_label("chat", exact=True).check()
    page.get_by_role("button", name="Create consumer").click()
    expect(page.get_by_role("alert")).to_contain_text("name")
    assert page.get_by_label("Name").input_value() == HOSTILE  # shown again, as a value
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.content()

    page.get_by_label("Name").fill("quoted")
    page.get_by_label("Metadata").fill(f"note={QUOTED}")
    page.get_by_role("button", name="Create consumer").click()
    expect(page.get_by_role("status")).to_have_text("Consumer created.")
    page.get_by_label("Description").fill(HOSTILE)
    page.get_by_role("button", name="Issue a key").click()
    page.get_by_role("link", name="Back to quoted").click()
    expect(page.get_by_role("cell", name=HOSTILE, exact=True)).to_be_visible()
    assert page.get_by_label("Metadata").input_value() == f"note={QUOTED}"
    assert page.locator("img").count() == 0
    console.go("/ui/consumers")
    expect(page.get_by_text(f"note={QUOTED}")).to_be_visible()
    assert page.locator("img").count() == 0
    console.go("/ui/config")  # the audit trail's detail, as JSON text
    expect(page.get_by_text("<img src=x onerror=alert(2)>", exact=False)).to_be_visible()
    assert page.locator("img").count() == 0
    assert console.dialogs == []  # no alert() ever ran
    assert not [p for p in console.problems if "Content Security Policy" in p], console.problems


def test_a_post_from_another_origin_is_refused(console: Console) -> None:
    """A page on another port of the same host (same site, so the SameSite=Strict cookie
    goes along) posts the console's own form, with a valid CSRF token even: refused by
    the origin check, and nothing is made."""
    page, stack = console.page, console.stack
    console.sign_in()
    console.go("/ui/consumers/new")
    token = page.locator("input[name=csrf]").first.input_value()

    async def attacker(_: web.Request) -> web.Response:
        return web.Response(content_type="text/html", text=(
            f'<form id="f" method="post" action="{stack.url}/ui/consumers">'
            f'<input name="csrf" value="{token}"><input name="name" value="evil">'
            '<input name="deployments" value="chat"><button>go</button></form>'))

    app = web.Application()
    app.router.add_get("/", attacker)
    with serve_in_thread(app) as elsewhere:
        page.goto(elsewhere)
        with page.expect_response(stack.url + "/ui/consumers") as answer:
            page.get_by_role("button", name="go").click()
        assert answer.value.status == 403
        expect(page.get_by_role("alert")).to_contain_text("did not come from the console")
    console.go("/ui/consumers")
    expect(page.get_by_role("link", name="evil")).to_have_count(0)
