"""The JSON API of customers' value calibration, milestones and custom fields.

Reading follows the same access rules as the customer. Changing needs a
role that works with customers: ops read only. Custom fields are defined
by managers and admins.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from capture import values
from capture.access import Viewer
from capture.db import transaction
from capture.errors import Forbidden, InvalidInput, NotFound
from capture.models import Customer, CustomField
from capture.queries import get_customer, parse_id
from web.access import viewer_of
from web.keys import DATABASE, SETTINGS
from web.runtime import current_settings

routes = web.RouteTableDef()
# Roles that may change customers' data.
EDITORS = frozenset({"rep", "manager", "admin"})
FIELD_DEFINERS = frozenset({"manager", "admin"})
MAX_JSON = 64 * 1024


def customer_id_of(request: web.Request) -> int:
    """Return the customer id in the path; an id that cannot exist is not found."""
    raw = request.match_info["id"]
    number = parse_id(raw)
    if number is None:
        raise NotFound(f"customer {raw[:20]!r} not found", "id")
    return number


async def json_object(request: web.Request) -> dict[str, Any]:
    if request.content_type != "application/json":
        raise InvalidInput("the body must be application/json", "Content-Type")
    raw = await request.content.read(MAX_JSON + 1)
    if len(raw) > MAX_JSON:
        raise InvalidInput(f"the body is larger than {MAX_JSON} bytes", "body")
    try:
        document = json.loads(raw)
    except ValueError as error:
        raise InvalidInput(f"the body is not valid JSON: {error}", "body") from None
    if not isinstance(document, dict):
        raise InvalidInput("the body must be a JSON object", "body")
    broken = _unpaired_surrogate(document)
    if broken is not None:
        raise InvalidInput(
            f"{broken} contains an unpaired UTF-16 surrogate escape; send valid text",
            broken,
        )
    return document


def _unpaired_surrogate(value: Any, name: str = "body") -> str | None:
    """Return the key of the first text holding a lone surrogate, which the
    database cannot store as UTF-8; None if there is none."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return name
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            found = _unpaired_surrogate(key, name) or _unpaired_surrogate(item, key)
            if found is not None:
                return found
    if isinstance(value, list):
        for item in value:
            found = _unpaired_surrogate(item, name)
            if found is not None:
                return found
    return None


def _editor(viewer: Viewer) -> Viewer:
    if viewer.role not in EDITORS:
        raise Forbidden("this role can read customers but not change them")
    return viewer


async def value_json(
    session: AsyncSession, customer: Customer, zone: ZoneInfo
) -> dict[str, Any]:
    calibration = values.calibration_of(customer)
    amount = calibration.expected_amount
    sign_date = calibration.expected_sign_date
    return {
        "customer_id": customer.id,
        "judgement": calibration.judgement,
        "deal_size": calibration.deal_size,
        "expected_sign_date": sign_date.isoformat() if sign_date else None,
        # A string, so that no client rounds it through a float.
        "expected_amount": format(amount, "f") if amount is not None else None,
        "expected_currency": calibration.expected_currency,
        "fields": await values.field_values(session, customer.id),
        "missing_required": await values.missing_required(session, customer.id),
        "milestones": [
            {
                "id": milestone.id,
                "title": milestone.title,
                "occurred_at": milestone.occurred_at.astimezone(zone).isoformat(),
                "note": milestone.note,
                "user_id": milestone.user_id,
            }
            for milestone in await values.milestones(session, customer.id)
        ],
        "history": [
            {
                "field": change.field,
                "old": change.old_value,
                "new": change.new_value,
                "user_id": change.user_id,
                "changed_at": change.changed_at.astimezone(zone).isoformat(),
            }
            for change in await values.history(session, customer.id)
        ],
    }


@routes.get("/api/v1/customers/{id}/value")
async def get_value(request: web.Request) -> web.Response:
    zone = request.app[SETTINGS].zone
    async with request.app[DATABASE].reads() as session:
        customer = await get_customer(
            session, viewer_of(request), customer_id_of(request)
        )
        return web.json_response(await value_json(session, customer, zone))


@routes.patch("/api/v1/customers/{id}/value")
async def patch_value(request: web.Request) -> web.Response:
    """Change calibration fields and custom field values in one transaction."""
    settings = request.app[SETTINGS]
    viewer = _editor(viewer_of(request))
    document = await json_object(request)
    fields = document.pop("fields", {})
    if not isinstance(fields, dict):
        raise InvalidInput("fields must be an object of key: value", "fields")
    async with transaction(request.app[DATABASE].writes) as session:
        customer = await get_customer(session, viewer, customer_id_of(request))
        await values.update_calibration(
            session,
            customer,
            document,
            user_id=viewer.user_id,
            default_currency=(await current_settings(request)).currency,
        )
        await values.update_field_values(
            session, customer, fields, user_id=viewer.user_id
        )
        await session.flush()
        return web.json_response(await value_json(session, customer, settings.zone))


@routes.post("/api/v1/customers/{id}/milestones")
async def post_milestone(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    viewer = _editor(viewer_of(request))
    document = await json_object(request)
    title = document.get("title")
    note = document.get("note", "")
    if not isinstance(title, str):
        raise InvalidInput("title is missing", "title")
    if not isinstance(note, str):
        raise InvalidInput("note must be text", "note")
    occurred_at = _timestamp(document.get("occurred_at"))
    async with transaction(request.app[DATABASE].writes) as session:
        customer = await get_customer(session, viewer, customer_id_of(request))
        milestone = await values.add_milestone(
            session,
            customer,
            title=title,
            occurred_at=occurred_at,
            note=note,
            user_id=viewer.user_id,
        )
        body = {
            "id": milestone.id,
            "title": milestone.title,
            "occurred_at": milestone.occurred_at.astimezone(settings.zone).isoformat(),
            "note": milestone.note,
        }
    return web.json_response(body, status=201)


def _timestamp(raw: Any) -> datetime:
    if not isinstance(raw, str):
        raise InvalidInput(
            "occurred_at is missing (ISO 8601 with offset)", "occurred_at"
        )
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise InvalidInput(
            f"occurred_at {raw!r} is not ISO 8601", "occurred_at"
        ) from None
    if moment.tzinfo is None:
        raise InvalidInput("occurred_at needs a UTC offset", "occurred_at")
    if not 1900 <= moment.year <= 2999:
        raise InvalidInput(f"occurred_at {raw!r} is outside 1900..2999", "occurred_at")
    return moment


def field_json(field: CustomField) -> dict[str, Any]:
    return {
        "key": field.key,
        "label": field.label,
        "kind": field.kind,
        "choices": json.loads(field.choices),
        "required": field.required,
    }


@routes.get("/api/v1/custom-fields")
async def list_fields(request: web.Request) -> web.Response:
    async with request.app[DATABASE].reads() as session:
        fields = await values.active_fields(session)
    return web.json_response({"items": [field_json(f) for f in fields], "next": None})


@routes.post("/api/v1/custom-fields")
async def post_field(request: web.Request) -> web.Response:
    viewer = viewer_of(request)
    if viewer.role not in FIELD_DEFINERS:
        raise Forbidden("custom fields are defined by managers and admins")
    document = await json_object(request)
    choices = document.get("choices", [])
    required = document.get("required", False)
    if not isinstance(choices, list):
        raise InvalidInput("choices must be a list of text", "choices")
    if not isinstance(required, bool):
        raise InvalidInput("required must be true or false", "required")
    for name in ("key", "label", "kind"):
        if not isinstance(document.get(name), str):
            raise InvalidInput(f"{name} is missing", name)
    async with transaction(request.app[DATABASE].writes) as session:
        field = await values.define_field(
            session,
            key=document["key"],
            label=document["label"],
            kind=document["kind"],
            choices=choices,
            required=required,
        )
        body = field_json(field)
    return web.json_response(body, status=201)
