"""Config and audit: the running config's version, where it came from, the last reload's
result and the config itself with no secret; a reload button; and the audit trail,
newest first, a page at a time."""

from __future__ import annotations

import json

from aiohttp import web

from gateway.admin.auth import gateway_app
from gateway.admin.state import config_view, reload_config
from gateway.console.forms import Cursor, read
from gateway.console.render import html
from gateway.console.state import SESSION
from gateway.core.errors import Conflict, InvalidRequest
from gateway.database.access import DATABASE

PAGE = 50


async def _page(request: web.Request, status: int = 200, message: str | None = None,
                failed: bool = False) -> web.Response:
    cursor = read(Cursor, request.query).before
    if cursor is not None and not cursor.isdigit():
        raise InvalidRequest("before is the number of an audit entry.", param="before")
    before = int(cursor) if cursor is not None else None
    audit = await request.config_dict[DATABASE].team.audit(PAGE + 1, before)
    more = audit[PAGE - 1]["id"] if len(audit) > PAGE else None
    view = config_view(gateway_app(request))
    return html(request, "config.html", status, info=view,
                config_text=json.dumps(view["config"], indent=2, sort_keys=True),
                audit=[{**a, "detail_text": json.dumps(a["detail"], sort_keys=True)}
                       for a in audit[:PAGE]],
                more=more, before=before, message=message, failed=failed)


async def page(request: web.Request) -> web.Response:
    return await _page(request)


async def reload(request: web.Request) -> web.Response:
    try:
        done = reload_config(gateway_app(request), request[SESSION].actor)
    except Conflict as exc:
        return await _page(request, 409, exc.message, failed=True)
    return await _page(request, message=f"Reloaded: version {done['version']} is running.")
