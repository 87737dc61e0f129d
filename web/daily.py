"""The pages of a working day: the home page and the filtered calls list."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import aiohttp_jinja2
from aiohttp import web
from multidict import MultiMapping

from capture.access import Viewer
from capture.call_list import (
    DIRECTIONS,
    CallCursor,
    CallFilters,
    calling_users,
    list_calls,
)
from capture.errors import InvalidInput
from capture.inbox import ATTACHERS, attach_targets, other_number
from capture.models import User
from capture.plans import due_plans
from capture.queries import page_size, parse_id
from capture.touches import recent_touches, unmatched_touches
from reports.periods import parse_date
from web.access import user_of, viewer_of
from web.keys import DATABASE, SETTINGS

routes = web.RouteTableDef()
CALLS_PAGE = 50
YES_NO = {"yes": True, "no": False}
# Query parameters of the calls list that filter, in the order links carry them.
CALL_FILTERS = ("rep", "from", "to", "direction", "answered", "transcript")


def viewer_zone(request: web.Request) -> tzinfo:
    """Return the user's time zone when set and valid, else the organisation's."""
    user = user_of(request)
    if user.timezone:
        try:
            return ZoneInfo(user.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    return request.app[SETTINGS].zone


@routes.get("/")
async def home(request: web.Request) -> web.Response:
    viewer = viewer_of(request)
    if viewer.role == "ops":
        # Ops plan no calls; their daily work is the reports and exports.
        raise web.HTTPFound("/reports/reps")
    zone = viewer_zone(request)
    now = datetime.now(UTC)
    tomorrow = now.astimezone(zone).date() + timedelta(days=1)
    day_end = datetime.combine(tomorrow, time(), zone).astimezone(UTC)
    async with request.app[DATABASE].reads() as session:
        plans = await due_plans(session, viewer, now=now, day_end=day_end)
        recent = await recent_touches(session, viewer)
        unmatched, unmatched_total = await unmatched_touches(session, viewer)
        targets = await attach_targets(session, viewer) if unmatched else []
    region = request.app[SETTINGS].default_region
    context = {
        "overdue": [item for item in plans if item.overdue],
        "due_today": [item for item in plans if not item.overdue],
        "recent": recent,
        "unmatched": unmatched,
        "unmatched_total": unmatched_total,
        "zone": zone,
        "show_rep": viewer.role != "rep",
        # Customers an unmatched touch can be attached to, and whether it
        # has a number that can join the customer's contact points.
        "attach_targets": targets,
        "has_number": {a.id: other_number(a, region) is not None for a in unmatched},
        "can_attach": viewer.role in ATTACHERS,
    }
    return aiohttp_jinja2.render_template("home.html", request, context)


def _optional(query: MultiMapping[str], name: str) -> str | None:
    value = query.get(name, "").strip()
    return value or None


def _rep_filter(raw: str | None, reps: list[User]) -> int | None:
    if raw is None:
        return None
    rep_id = parse_id(raw)
    if rep_id is None or rep_id not in {rep.id for rep in reps}:
        # The same error for a missing rep and one outside the viewer's
        # scope, so the filter reveals nothing about other users.
        raise InvalidInput(
            f"rep {raw[:20]!r} is not one of the reps you may filter by", "rep"
        )
    return rep_id


def _choice(
    query: MultiMapping[str], name: str, choices: tuple[str, ...]
) -> str | None:
    value = _optional(query, name)
    if value is not None and value not in choices:
        raise InvalidInput(
            f"{name} {value[:20]!r} is not one of {', '.join(choices)}", name
        )
    return value


def _start_of(day: date | None, zone: tzinfo) -> datetime | None:
    if day is None:
        return None
    return datetime.combine(day, time(), zone).astimezone(UTC)


def parse_call_filters(
    query: MultiMapping[str], reps: list[User], zone: tzinfo
) -> CallFilters:
    """Read the calls list's filters; an invalid value raises InvalidInput naming it."""
    first_raw, last_raw = _optional(query, "from"), _optional(query, "to")
    first = parse_date(first_raw, "from") if first_raw else None
    last = parse_date(last_raw, "to") if last_raw else None
    if first is not None and last is not None and last < first:
        raise InvalidInput(f"to {last} is before from {first}", "to")
    answered = _choice(query, "answered", tuple(YES_NO))
    transcribed = _choice(query, "transcript", tuple(YES_NO))
    return CallFilters(
        rep_id=_rep_filter(_optional(query, "rep"), reps),
        start=_start_of(first, zone),
        end=_start_of(last + timedelta(days=1) if last else None, zone),
        direction=_choice(query, "direction", DIRECTIONS),
        answered=YES_NO[answered] if answered else None,
        transcribed=YES_NO[transcribed] if transcribed else None,
    )


def _page_link(values: dict[str, str], cursor: str | None) -> str:
    parameters = {name: value for name, value in values.items() if value}
    if cursor:
        parameters["cursor"] = cursor
    return "/calls?" + urlencode(parameters) if parameters else "/calls"


async def _calls_context(request: web.Request, viewer: Viewer) -> dict[str, Any]:
    query = request.query
    settings = request.app[SETTINGS]
    raw_cursor = _optional(query, "cursor")
    after = CallCursor.decode(raw_cursor) if raw_cursor else None
    limit = page_size(query.get("limit"), CALLS_PAGE)
    async with request.app[DATABASE].reads() as session:
        reps = await calling_users(session, viewer)
        filters = parse_call_filters(query, reps, settings.zone)
        found = await list_calls(session, viewer, filters, after=after, limit=limit)
    rows = found[:limit]
    values = {name: query.get(name, "").strip() for name in CALL_FILTERS}
    if limit != CALLS_PAGE:
        values["limit"] = str(limit)
    following = None
    if len(found) > limit:
        last = rows[-1].activity
        following = CallCursor(last.occurred_at, last.id).encode()
    return {
        "rows": rows,
        "reps": reps,
        "values": values,
        "directions": DIRECTIONS,
        "next_link": _page_link(values, following) if following else None,
        "first_link": _page_link(values, None) if after else None,
        "zone": viewer_zone(request),
        "media": viewer.can_play_recordings,
    }


@routes.get("/calls")
async def calls(request: web.Request) -> web.Response:
    context = await _calls_context(request, viewer_of(request))
    return aiohttp_jinja2.render_template("calls.html", request, context)
