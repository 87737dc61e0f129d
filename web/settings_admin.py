"""`/admin/settings`: every setting with its source, and the ones to change now.

Secrets are shown as set or not set. The keys of `capture.runtime` can be
changed here and reset to the file's value; each change is audited.
"""

from __future__ import annotations

from typing import Any

import aiohttp_jinja2
from aiohttp import web

from capture import audit, runtime
from capture.db import transaction
from capture.errors import InvalidInput
from capture.settings import SETTINGS as DECLARED
from web.access import require_admin, user_of
from web.auth import remote_of
from web.inputs import form_text
from web.keys import DATABASE
from web.runtime import RUNTIME, current_settings

routes = web.RouteTableDef()
PAGE = "/admin/settings"


async def _page(
    request: web.Request, error: InvalidInput | None = None, entered: str = ""
) -> web.Response:
    settings = await current_settings(request)
    rows = [
        {
            "key": setting.name,
            "value": runtime.display_value(settings, setting.name),
            "source": settings.source.get(setting.name, "default"),
            "help": setting.help,
            "runtime": setting.name in runtime.RUNTIME_KEYS,
        }
        for setting in DECLARED
    ]
    context: dict[str, Any] = {
        "rows": rows,
        "error": error.message if error else None,
        "field": error.field if error else None,
        "entered": entered,
    }
    response = aiohttp_jinja2.render_template("admin_settings.html", request, context)
    response.set_status(400 if error else 200)
    return response


@routes.get(PAGE)
async def settings_page(request: web.Request) -> web.Response:
    require_admin(request)
    return await _page(request)


@routes.post(PAGE)
async def change_setting(request: web.Request) -> web.Response:
    require_admin(request)
    form = await request.post()
    key = form_text(form, "key", 64)
    raw = form_text(form, "value", 200)
    reset = form.get("reset") == "1"
    try:
        async with transaction(request.app[DATABASE].writes) as session:
            if reset:
                await runtime.reset_value(session, key)
                detail: dict[str, Any] = {"key": key, "reset": True}
            else:
                value = await runtime.set_value(
                    session, key, raw, user_id=user_of(request).id
                )
                detail = {"key": key, "value": value}
            audit.record(
                session,
                audit.SETTING_CHANGED,
                actor=user_of(request),
                target_type="setting",
                target_id=key,
                detail=detail,
                remote=remote_of(request),
            )
    except InvalidInput as error:
        return await _page(request, error, raw)
    request.app[RUNTIME].forget()
    raise web.HTTPSeeOther(PAGE)
