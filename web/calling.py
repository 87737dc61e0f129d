"""Click-to-call from the customer page and the API.

Both ask Twilio to ring the rep who clicked, then bridge the customer; the
call then arrives as the usual status and recording webhooks.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from capture.click_to_call import plan_click_to_call
from capture.errors import InvalidInput, NotFound
from capture.queries import json_id, parse_id
from web.access import viewer_of
from web.i18n import gettext_noop as N_
from web.inputs import form_text
from web.keys import DATABASE, SETTINGS, TWILIO_CALLS
from web.values_api import json_object

routes = web.RouteTableDef()
# Fixed messages of click-to-call errors that reach the customer page,
# marked so that the catalogue contains their translations.
CALL_MESSAGES = (
    N_(
        "your user has no phone number or client identity to ring first; "
        "an admin sets it on the users page"
    ),
    N_("phone is not one of the customer's numbers"),
    N_(
        "no company number to call from: set caller_id or add a number on the "
        "admin numbers page"
    ),
    N_("twilio_account_sid is not set, so no call can be placed"),
)


@routes.post("/customers/{id}/call")
async def call_from_page(request: web.Request) -> web.Response:
    customer_id = _customer_id(request.match_info["id"])
    form = await request.post()
    phone = form_text(form, "phone", 40) or None
    call_sid = await _start(request, customer_id, phone)
    raise web.HTTPSeeOther(f"/customers/{customer_id}?calling={call_sid}")


@routes.post("/api/v1/calls")
async def call_from_api(request: web.Request) -> web.Response:
    document = await json_object(request)
    raw_id = document.get("customer_id")
    if isinstance(raw_id, str):
        raise InvalidInput("customer_id must be an integer", "customer_id")
    raw_id = json_id(raw_id, "customer_id")
    phone = document.get("phone")
    if phone is not None and not isinstance(phone, str):
        raise InvalidInput("phone must be a string", "phone")
    call_sid = await _start(request, raw_id, phone)
    body: dict[str, Any] = {"call_sid": call_sid, "customer_id": raw_id}
    return web.json_response(body, status=201)


async def _start(request: web.Request, customer_id: int, phone: str | None) -> str:
    settings = request.app[SETTINGS]
    async with request.app[DATABASE].reads() as session:
        plan = await plan_click_to_call(
            session,
            viewer_of(request),
            customer_id,
            phone,
            caller_id=settings.caller_id,
            default_region=settings.default_region,
        )
    return await request.app[TWILIO_CALLS].start(plan)


def _customer_id(raw: str) -> int:
    number = parse_id(raw)
    if number is None:
        raise NotFound(f"customer {raw[:20]!r} not found", "id")
    return number
