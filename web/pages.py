"""HTML pages: customers and their stream, calls with player and transcript, reps."""

from __future__ import annotations

import functools
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp_jinja2
from aiohttp import web
from sqlalchemy import select

from capture import audit, deals
from capture.call_list import call_media
from capture.db import transaction
from capture.errors import Conflict, DomainError, InvalidInput, NotFound
from capture.models import Plan
from capture.plans import customer_plans
from capture.queries import (
    call_detail,
    customer_stream,
    get_customer,
    parse_id,
    recording_file,
    touch_position,
)
from capture.queries import search_customers as find_customers
from reports.periods import parse_range
from reports.reps import rep_summaries
from web.access import user_of, viewer_of
from web.auth import remote_of
from web.domain_messages import translate_message
from web.keys import DATABASE, SETTINGS
from web.media import INLINE_IMAGES
from web.plan_context import chain_context
from web.review_context import review_context

routes = web.RouteTableDef()
PAGE = 100
PHONE_CHARACTERS = frozenset("0123456789+-.() ")


@routes.get("/customers")
@aiohttp_jinja2.template("customers.html")
async def customers(request: web.Request) -> dict[str, Any]:
    settings = request.app[SETTINGS]
    query = request.query.get("q", "").strip()
    phone = email = text = None
    if looks_like_phone(query):
        phone = query
    elif "@" in query:
        email = query
    elif query:
        text = query
    search = functools.partial(
        find_customers,
        viewer=viewer_of(request),
        default_region=settings.default_region,
        after_id=None,
        limit=PAGE,
    )
    async with request.app[DATABASE].reads() as session:
        try:
            found = await search(session, phone=phone, email=email, text=text)
        except InvalidInput:
            # Digits that are no valid number may still be part of a name.
            found = await search(session, phone=None, email=None, text=query)
        if not found and email:
            # Part of an address ("ops@harbor") matches inside stored ones.
            found = await search(session, phone=None, email=None, text=query)
        if not found and phone:
            # A partial number ("555-0201") matches the end of a stored one.
            digits = "".join(character for character in query if character.isdigit())
            found = await search(session, phone=None, email=None, text=digits)
    return {"customers": found[:PAGE], "query": query, "more": len(found) > PAGE}


def looks_like_phone(query: str) -> bool:
    """True for text made of phone characters with at least seven digits."""
    digits = sum(character.isdigit() for character in query)
    return digits >= 7 and all(character in PHONE_CHARACTERS for character in query)


def _id(request: web.Request, name: str) -> int:
    raw = request.match_info[name]
    number = parse_id(raw)
    if number is None:
        raise NotFound(f"{name} {raw!r} not found", name)
    return number


@routes.get("/customers/{id}")
async def customer(request: web.Request) -> web.Response:
    return await render_customer(request, _id(request, "id"))


async def render_customer(
    request: web.Request,
    customer_id: int,
    error: DomainError | None = None,
    entered: dict[str, str] | None = None,
) -> web.Response:
    """Render the customer page; a rejected plan form shows its error and input."""
    viewer = viewer_of(request)
    async with request.app[DATABASE].reads() as session:
        found = await get_customer(session, viewer, customer_id)
        stream = await customer_stream(
            session, viewer, customer_id, before=None, limit=PAGE
        )
        touch_id = parse_id(request.query.get("touch", ""))
        from_touch = False
        if touch_id is not None and all(a.id != touch_id for a in stream[:PAGE]):
            # An older touch, such as a search hit: the stream starts at it.
            before = await touch_position(session, customer_id, touch_id)
            if before is not None:
                stream = await customer_stream(
                    session, viewer, customer_id, before=before, limit=PAGE
                )
                from_touch = True
        plans = await customer_plans(session, customer_id)
        customer_deals = await deals.deals_of(session, customer_id)
        payments = await deals.payments_of(session, [d.id for d in customer_deals])
        calls = [activity.call for activity in stream[:PAGE] if activity.call]
        media = await call_media(session, viewer, calls)
        chain = await chain_context(request, session, found, plans)
    context = {"customer": found, "stream": stream[:PAGE], "plans": plans}
    context.update(chain, media=media, entered=entered or {})
    context.update(touch_id=touch_id, from_touch=from_touch)
    context.update(inline_types=INLINE_IMAGES, deals=customer_deals, payments=payments)
    # Set after a click-to-call started; only its presence is shown.
    context.update(calling=bool(request.query.get("calling")))
    context.update(
        plan_error=translate_message(error.message) if error else None,
        plan_field=error.field if error else None,
    )
    response = aiohttp_jinja2.render_template("customer.html", request, context)
    if error is not None:
        response.set_status(409 if isinstance(error, Conflict) else 400)
    return response


@routes.get("/calls/{call_sid}")
@aiohttp_jinja2.template("call.html")
async def call(request: web.Request) -> dict[str, Any]:
    viewer = viewer_of(request)
    async with request.app[DATABASE].reads() as session:
        detail = await call_detail(session, viewer, request.match_info["call_sid"])
        extra = await review_context(session, viewer, detail)
        open_plan = None
        if detail.activity.customer_id is not None:
            open_plan = await session.scalar(
                select(Plan).where(
                    Plan.customer_id == detail.activity.customer_id,
                    Plan.status == "open",
                )
            )
    start = parse_id(request.query.get("t", ""))
    return {"detail": detail, "start_second": start, "open_plan": open_plan, **extra}


@routes.get("/recordings/{recording_sid}.wav")
async def recording(request: web.Request) -> web.FileResponse:
    settings = request.app[SETTINGS]
    async with request.app[DATABASE].reads() as session:
        found = await recording_file(
            session, viewer_of(request), request.match_info["recording_sid"]
        )
    path = (settings.data_dir / str(found.file_path)).resolve()
    if not path.is_relative_to(settings.recordings_dir.resolve()) or not path.is_file():
        raise NotFound("recording file not found", "recording_sid")
    if _starts_playback(request):
        async with transaction(request.app[DATABASE].writes) as session:
            audit.record(
                session,
                audit.RECORDING_PLAYED,
                actor=user_of(request),
                target_type="recording",
                target_id=found.recording_sid,
                detail={"call_sid": found.call_sid},
                remote=remote_of(request),
            )
    # FileResponse serves Range requests, which the audio player needs to seek.
    return web.FileResponse(Path(path), headers={"Content-Type": "audio/wav"})


def _starts_playback(request: web.Request) -> bool:
    """True unless the request is a Range request past the first byte.

    A player seeking through a recording sends many Range requests; one
    audit entry per playback is enough.
    """
    ranged = request.headers.get("Range", "")
    return not ranged or ranged.replace(" ", "").startswith("bytes=0-")


@routes.get("/reports/reps")
@aiohttp_jinja2.template("reps.html")
async def reps(request: web.Request) -> dict[str, Any]:
    settings = request.app[SETTINGS]
    today = datetime.now(settings.zone).date()
    first = request.query.get("from") or (today - timedelta(days=30)).isoformat()
    last = request.query.get("to") or today.isoformat()
    period = parse_range(first, last, settings.zone)
    async with request.app[DATABASE].reads() as session:
        summaries = await rep_summaries(session, period, viewer_of(request))
    return {"period": period, "summaries": summaries}
