"""A consumer's keys: issued (the key is on the answer to that one form, and nowhere
else, ever) and revoked after a confirmation. Both are the admin API's own functions."""

from __future__ import annotations

from aiohttp import web

from gateway.admin.auth import gateway_app
from gateway.admin.consumers import issue_key, revoke_key
from gateway.console.consumers_page import link
from gateway.console.forms import KeyForm, read
from gateway.console.guard import redirect
from gateway.console.render import html
from gateway.console.state import SESSION


async def issue(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    form = read(KeyForm, await request.post())
    made = await issue_key(gateway_app(request), request[SESSION].actor, name, form.body())
    return html(request, "key_issued.html", 201, consumer=name, key=made, link=link(name))


async def confirm_revoke(request: web.Request) -> web.Response:
    name, key_id = request.match_info["name"], request.match_info["key_id"]
    return html(request, "confirm.html", title="Revoke this key?",
                question=f"Revoke key {key_id} of consumer {name}? Callers using it are "
                         "refused (401) from then on; this cannot be undone.",
                action=f"{link(name)}/keys/{key_id}/revoke", button="Revoke key",
                back=link(name), read_only=False)


async def revoke(request: web.Request) -> web.Response:
    name, key_id = request.match_info["name"], request.match_info["key_id"]
    await revoke_key(gateway_app(request), request[SESSION].actor, name, key_id)
    return redirect(link(name) + "?done=revoked")
