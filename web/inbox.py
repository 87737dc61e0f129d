"""Matching touches to customers from the pages.

`POST /touches/{id}/attach` gives an unmatched touch its customer, and
`POST /customers/{id}/contacts` adds a phone number or email address to a
customer, which attaches that number's unmatched touches.
"""

from __future__ import annotations

from aiohttp import web

from capture.db import transaction
from capture.errors import InvalidInput, NotFound
from capture.inbox import add_contact, attach_touch
from capture.queries import parse_id
from web.access import viewer_of
from web.account import safe_next
from web.inputs import form_text
from web.keys import DATABASE, SETTINGS

routes = web.RouteTableDef()


@routes.post("/touches/{id}/attach")
async def attach(request: web.Request) -> web.Response:
    raw_id = request.match_info["id"]
    activity_id = parse_id(raw_id)
    if activity_id is None:
        raise NotFound(f"touch {raw_id[:20]!r} not found", "id")
    form = await request.post()
    raw_customer = form_text(form, "customer_id", 20)
    customer_id = parse_id(raw_customer)
    if customer_id is None:
        raise InvalidInput("customer_id is missing; choose a customer", "customer_id")
    async with transaction(request.app[DATABASE].writes) as session:
        await attach_touch(
            session,
            viewer_of(request),
            activity_id,
            customer_id,
            add_number=form.get("add_number") == "on",
            default_region=request.app[SETTINGS].default_region,
            zone=request.app[SETTINGS].zone,
        )
    raise web.HTTPSeeOther(safe_next(form_text(form, "next", 2000)) or "/")


@routes.post("/customers/{id}/contacts")
async def add_contact_point(request: web.Request) -> web.Response:
    raw_id = request.match_info["id"]
    customer_id = parse_id(raw_id)
    if customer_id is None:
        raise NotFound(f"customer {raw_id[:20]!r} not found", "id")
    form = await request.post()
    async with transaction(request.app[DATABASE].writes) as session:
        await add_contact(
            session,
            viewer_of(request),
            customer_id,
            kind=form_text(form, "kind", 10),
            value=form_text(form, "value", 320),
            label=form_text(form, "label", 200),
            default_region=request.app[SETTINGS].default_region,
            zone=request.app[SETTINGS].zone,
        )
    raise web.HTTPSeeOther(f"/customers/{customer_id}")
