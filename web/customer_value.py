"""Pages of a customer's value: calibration, custom fields and milestones.

`/customers/{id}/value` shows and changes the calibration and the custom
field values, marks milestones and lists every change. `/admin/fields` lets
managers and admins define the custom fields. Reading follows the
customer's access rules; ops read only.
"""

from __future__ import annotations

import json
from datetime import date, datetime, time
from typing import Any

import aiohttp_jinja2
from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from capture import values
from capture.access import Viewer
from capture.db import transaction
from capture.errors import Conflict, DomainError, Forbidden, InvalidInput
from capture.models import Customer, User
from capture.queries import get_customer
from web.access import viewer_of
from web.inputs import CONTROL, form_text
from web.keys import DATABASE, SETTINGS
from web.runtime import current_settings
from web.values_api import EDITORS, FIELD_DEFINERS, customer_id_of

routes = web.RouteTableDef()
FIELDS = "/admin/fields"
MAX_INPUT = 1000
# A milestone is marked by day. It is stored at noon of that day in the
# organisation's time zone, so it falls on the same date in every report.
MILESTONE_TIME = time(12, 0)


def _status(error: DomainError | None) -> int:
    if error is None:
        return 200
    return 409 if isinstance(error, Conflict) else 400


async def _value_page(
    request: web.Request,
    viewer: Viewer,
    customer_id: int,
    error: DomainError | None = None,
    entered: dict[str, str] | None = None,
) -> web.Response:
    async with request.app[DATABASE].reads() as session:
        customer = await get_customer(session, viewer, customer_id)
        context = await _value_context(session, customer)
    context.update(
        customer=customer,
        can_edit=viewer.role in EDITORS,
        error=error.message if error else None,
        field=error.field if error else None,
        entered=entered or {},
    )
    response = aiohttp_jinja2.render_template("customer_value.html", request, context)
    response.set_status(_status(error))
    return response


async def _value_context(session: AsyncSession, customer: Customer) -> dict[str, Any]:
    changes = await values.history(session, customer.id)
    user_ids = {change.user_id for change in changes} | {
        milestone.user_id for milestone in await values.milestones(session, customer.id)
    }
    names = {}
    if user_ids - {None}:
        rows = await session.execute(
            select(User.id, User.name).where(User.id.in_(user_ids - {None}))
        )
        names = {row.id: row.name for row in rows}
    fields = await values.active_fields(session)
    return {
        "calibration": values.calibration_of(customer),
        "judgements": values.JUDGEMENTS,
        "deal_sizes": values.DEAL_SIZES,
        "fields": [(field, json.loads(field.choices)) for field in fields],
        "field_values": await values.field_values(session, customer.id),
        "milestones": await values.milestones(session, customer.id),
        "history": changes,
        "names": names,
    }


@routes.get("/customers/{id}/value")
async def value_page(request: web.Request) -> web.Response:
    return await _value_page(request, viewer_of(request), customer_id_of(request))


@routes.post("/customers/{id}/value")
async def change_value(request: web.Request) -> web.Response:
    viewer = viewer_of(request)
    customer_id = customer_id_of(request)
    if viewer.role not in EDITORS:
        raise Forbidden("this role can read customers but not change them")
    form = await request.post()
    entered = {
        name: form_text(form, name, MAX_INPUT) for name in form if name != "csrf_token"
    }
    calibration = {k: v for k, v in entered.items() if k in values.CALIBRATION_FIELDS}
    custom = {
        name.removeprefix("field."): value
        for name, value in entered.items()
        if name.startswith("field.")
    }
    settings = await current_settings(request)
    try:
        async with transaction(request.app[DATABASE].writes) as session:
            customer = await get_customer(session, viewer, customer_id)
            await values.update_calibration(
                session,
                customer,
                calibration,
                user_id=viewer.user_id,
                default_currency=settings.currency,
            )
            await values.update_field_values(
                session, customer, custom, user_id=viewer.user_id
            )
    except (InvalidInput, Conflict) as error:
        return await _value_page(request, viewer, customer_id, error, entered)
    raise web.HTTPSeeOther(f"/customers/{customer_id}/value")


@routes.post("/customers/{id}/milestones")
async def mark_milestone(request: web.Request) -> web.Response:
    viewer = viewer_of(request)
    customer_id = customer_id_of(request)
    if viewer.role not in EDITORS:
        raise Forbidden("this role can read customers but not change them")
    form = await request.post()
    entered = {
        "milestone_title": form_text(form, "title", MAX_INPUT),
        "milestone_date": form_text(form, "date", 20),
        "milestone_note": form_text(form, "note", MAX_INPUT),
    }
    zone = request.app[SETTINGS].zone
    try:
        day = _day(entered["milestone_date"])
        async with transaction(request.app[DATABASE].writes) as session:
            customer = await get_customer(session, viewer, customer_id)
            await values.add_milestone(
                session,
                customer,
                title=entered["milestone_title"],
                occurred_at=datetime.combine(day, MILESTONE_TIME, zone),
                note=entered["milestone_note"],
                user_id=viewer.user_id,
            )
    except InvalidInput as error:
        return await _value_page(request, viewer, customer_id, error, entered)
    raise web.HTTPSeeOther(f"/customers/{customer_id}/value")


def _day(raw: str) -> date:
    try:
        day = date.fromisoformat(raw.strip())
    except ValueError:
        raise InvalidInput(f"date {raw!r} is not a date (YYYY-MM-DD)", "date") from None
    if not 1900 <= day.year <= 2999:
        raise InvalidInput(f"date {raw!r} is outside 1900..2999", "date")
    return day


def _lines(value: object, name: str) -> str:
    """Read a multi-line text field: line breaks allowed, other controls not."""
    if not isinstance(value, str):
        raise InvalidInput(f"{name} must be text, not a file", name)
    if len(value) > MAX_INPUT * 10:
        raise InvalidInput(f"{name} is longer than {MAX_INPUT * 10} characters", name)
    lines = value.splitlines()
    if any(CONTROL.search(line) for line in lines):
        raise InvalidInput(f"{name} contains control characters", name)
    return "\n".join(lines)


def _require_definer(request: web.Request) -> Viewer:
    viewer = viewer_of(request)
    if viewer.role not in FIELD_DEFINERS:
        raise Forbidden("custom fields are defined by managers and admins")
    return viewer


async def _fields_page(
    request: web.Request,
    error: DomainError | None = None,
    entered: dict[str, str] | None = None,
) -> web.Response:
    async with request.app[DATABASE].reads() as session:
        fields = await values.active_fields(session)
    context = {
        "fields": [(field, json.loads(field.choices)) for field in fields],
        "kinds": values.FIELD_KINDS,
        "error": error.message if error else None,
        "field": error.field if error else None,
        "entered": entered or {},
    }
    response = aiohttp_jinja2.render_template("admin_fields.html", request, context)
    response.set_status(_status(error))
    return response


@routes.get(FIELDS)
async def fields_page(request: web.Request) -> web.Response:
    _require_definer(request)
    return await _fields_page(request)


@routes.post(FIELDS)
async def define_field(request: web.Request) -> web.Response:
    _require_definer(request)
    form = await request.post()
    entered = {
        name: form_text(form, name, MAX_INPUT) for name in ("key", "label", "kind")
    }
    entered["choices"] = _lines(form.get("choices", ""), "choices")
    # One choice a line, as people type a list.
    choices = [line.strip() for line in entered["choices"].splitlines() if line.strip()]
    try:
        async with transaction(request.app[DATABASE].writes) as session:
            await values.define_field(
                session,
                key=entered["key"].strip(),
                label=entered["label"],
                kind=entered["kind"],
                choices=choices,
                required=form.get("required") == "on",
            )
    except (InvalidInput, Conflict) as error:
        return await _fields_page(request, error, entered)
    raise web.HTTPSeeOther(FIELDS)
