"""The JSON API under /api/v1 for scripts with a bearer token."""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web

from capture.errors import InvalidInput, NotFound
from capture.queries import (
    call_detail,
    customer_stream,
    get_customer,
    id_cursor,
    page_size,
    parse_id,
    search_customers,
)
from reports.periods import parse_range
from reports.reps import rep_summaries
from web.access import viewer_of
from web.keys import DATABASE, SETTINGS
from web.serialize import activity_json, call_detail_json, customer_json

routes = web.RouteTableDef()


def _int_path(request: web.Request, name: str) -> int:
    raw = request.match_info[name]
    number = parse_id(raw)
    if number is None:
        raise NotFound(f"{name} {raw!r} not found", name)
    return number


@routes.get("/api/v1/customers")
async def customers(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    limit = page_size(request.query.get("limit"))
    async with request.app[DATABASE].reads() as session:
        found = await search_customers(
            session,
            viewer_of(request),
            phone=request.query.get("phone"),
            email=request.query.get("email"),
            text=request.query.get("q"),
            default_region=settings.default_region,
            after_id=id_cursor(request.query.get("cursor")),
            limit=limit,
            field=_field_filter(request.query.get("field")),
        )
    page = found[:limit]
    following = str(page[-1].id) if len(found) > limit else None
    items = [customer_json(customer, settings.zone) for customer in page]
    return web.json_response({"items": items, "next": following})


def _field_filter(raw: str | None) -> tuple[str, str] | None:
    """Read `field=key:value`, a custom field and the value it must have."""
    if raw is None:
        return None
    key, separator, value = raw.partition(":")
    if not separator or not key.strip() or not value.strip():
        raise InvalidInput(f"field {raw!r} is not key:value", "field")
    return key.strip(), value


@routes.get("/api/v1/customers/{id}/activities")
async def activities(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    customer_id = _int_path(request, "id")
    limit = page_size(request.query.get("limit"))
    before = _stream_cursor(request.query.get("cursor"))
    viewer = viewer_of(request)
    async with request.app[DATABASE].reads() as session:
        await get_customer(session, viewer, customer_id)
        found = await customer_stream(
            session, viewer, customer_id, before=before, limit=limit
        )
    page = found[:limit]
    following = None
    if len(found) > limit:
        last = page[-1]
        # UTC with Z, so the cursor needs no escaping in a query string.
        moment = last.occurred_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        following = f"{moment}_{last.id}"
    items = [activity_json(activity, settings.zone) for activity in page]
    return web.json_response({"items": items, "next": following})


def _stream_cursor(raw: str | None) -> tuple[datetime, int] | None:
    if not raw:
        return None
    moment, _, raw_id = raw.rpartition("_")
    try:
        parsed = datetime.fromisoformat(moment)
        if parsed.tzinfo is None:
            raise ValueError("no UTC offset")
        parsed = parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        raise InvalidInput(f"cursor {raw!r} is not valid", "cursor") from None
    activity_id = parse_id(raw_id)
    if activity_id is None:
        raise InvalidInput(f"cursor {raw!r} is not valid", "cursor")
    return parsed, activity_id


@routes.get("/api/v1/calls/{call_sid}")
async def call(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    async with request.app[DATABASE].reads() as session:
        detail = await call_detail(
            session, viewer_of(request), request.match_info["call_sid"]
        )
    return web.json_response(call_detail_json(detail, settings.zone))


@routes.get("/api/v1/reports/reps")
async def reps_report(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    period = parse_range(
        request.query.get("from"), request.query.get("to"), settings.zone
    )
    async with request.app[DATABASE].reads() as session:
        summaries = await rep_summaries(session, period, viewer_of(request))
    return web.json_response(
        {
            "from": period.first.isoformat(),
            "to": period.last.isoformat(),
            "timezone": settings.timezone,
            "items": [summary.to_json() for summary in summaries],
            "next": None,
        }
    )
