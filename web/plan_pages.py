"""Page forms of the chain (set and complete plans) and the plan board page.

A rejected form renders the customer page again with the error beside the
form and the input kept, and changes nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from typing import Any

import aiohttp_jinja2
from aiohttp import web
from aiohttp.web_request import FileField
from multidict import MultiDictProxy
from sqlalchemy import select

from capture import chain
from capture.access import visible_users
from capture.board import CATEGORIES
from capture.db import transaction
from capture.errors import Conflict, Forbidden, InvalidInput
from capture.models import User
from capture.queries import get_customer, parse_id
from capture.windows import WindowRules
from web.access import viewer_of
from web.i18n import zone_of
from web.inputs import form_text
from web.keys import DATABASE
from web.pages import render_customer
from web.plans_api import board_filters, board_of
from web.runtime import current_settings
from web.values_api import EDITORS, customer_id_of

routes = web.RouteTableDef()
Form = MultiDictProxy[str | bytes | bytearray | FileField]
FIELDS = ("purpose", "window", "due_at", "note", "owner_id", "source_activity_id")
MAX_FIELD = 2000


def _entered(form: Form, names: tuple[str, ...]) -> dict[str, str]:
    return {name: form_text(form, name, MAX_FIELD) for name in names}


def entry_of_form(entered: dict[str, str], zone: tzinfo) -> chain.PlanEntry:
    """Read a plan from form fields; `due_at` is local time in `zone`."""
    due_at = None
    if entered.get("due_at", "").strip():
        due_at = _local_moment(entered["due_at"], zone)
    window = entered.get("window", "").strip() or None
    return chain.PlanEntry(
        purpose=entered.get("purpose", "").strip(),
        window=window,
        due_at=due_at,
        note=entered.get("note", "").strip(),
        owner_id=_form_id(entered.get("owner_id", ""), "owner_id"),
        source_activity_id=_form_id(
            entered.get("source_activity_id", ""), "source_activity_id"
        ),
    )


def _local_moment(raw: str, zone: tzinfo) -> datetime:
    try:
        moment = datetime.fromisoformat(raw.strip())
    except ValueError:
        raise InvalidInput(
            f"due_at {raw[:40]!r} is not a date and time (YYYY-MM-DDTHH:MM)", "due_at"
        ) from None
    if not 1900 <= moment.year <= 2999:
        raise InvalidInput(f"due_at {raw!r} is outside 1900..2999", "due_at")
    return moment if moment.tzinfo else moment.replace(tzinfo=zone)


def _form_id(raw: str, field: str) -> int | None:
    if not raw.strip():
        return None
    number = parse_id(raw.strip())
    if number is None:
        raise InvalidInput(f"{field} {raw[:20]!r} is not an id", field)
    return number


def _require_editor(request: web.Request) -> None:
    if viewer_of(request).role not in EDITORS:
        raise Forbidden("this role can read customers but not change them")


@routes.post("/customers/{id}/plans")
async def set_plan(request: web.Request) -> web.Response:
    _require_editor(request)
    viewer = viewer_of(request)
    customer_id = customer_id_of(request)
    entered = _entered(await request.post(), FIELDS)
    settings = await current_settings(request)
    try:
        entry = entry_of_form(entered, zone_of(request))
        async with transaction(request.app[DATABASE].writes) as session:
            customer = await get_customer(session, viewer, customer_id)
            await chain.set_plan(
                session,
                viewer,
                customer,
                entry,
                now=datetime.now(UTC),
                rules=WindowRules.of(settings),
                fallback_zone=settings.zone,
            )
    except (InvalidInput, Conflict) as error:
        return await render_customer(request, customer_id, error, entered)
    raise web.HTTPSeeOther(f"/customers/{customer_id}#next-step")


@routes.post("/customers/{id}/plans/{plan_id}/complete")
async def complete_plan(request: web.Request) -> web.Response:
    _require_editor(request)
    viewer = viewer_of(request)
    customer_id = customer_id_of(request)
    plan_id = _form_id(request.match_info["plan_id"], "plan_id")
    entered = _entered(await request.post(), (*FIELDS, "next", "reason"))
    settings = await current_settings(request)
    try:
        kind = entered["next"].strip()
        step = chain.NextStep(
            kind,
            entry_of_form(entered, zone_of(request)) if kind == "plan" else None,
            entered["reason"].strip(),
        )
        if plan_id is None:
            raise InvalidInput("plan_id is not an id", "plan_id")
        async with transaction(request.app[DATABASE].writes) as session:
            customer = await get_customer(session, viewer, customer_id)
            await chain.complete_plan(
                session,
                viewer,
                customer,
                plan_id,
                step,
                now=datetime.now(UTC),
                rules=WindowRules.of(settings),
                fallback_zone=settings.zone,
            )
    except (InvalidInput, Conflict) as error:
        return await render_customer(request, customer_id, error, entered)
    raise web.HTTPSeeOther(f"/customers/{customer_id}#next-step")


@routes.get("/board")
async def board(request: web.Request) -> web.Response:
    viewer = viewer_of(request)
    filters = board_filters(request.query)
    found = await board_of(request, filters)
    async with request.app[DATABASE].reads() as session:
        reps = await session.scalars(
            select(User)
            .where(visible_users(viewer), User.role.in_(chain.PLAN_OWNER_ROLES))
            .order_by(User.name)
        )
        rep_choices = list(reps)
    context: dict[str, Any] = {
        "board": found,
        "by_rep": found.by_rep(),
        "by_purpose": found.by_purpose(),
        "categories": CATEGORIES,
        "filters": filters,
        "reps": rep_choices,
        "purposes": chain.PURPOSES,
        "show_rep": viewer.role != "rep",
    }
    return aiohttp_jinja2.render_template("board.html", request, context)
