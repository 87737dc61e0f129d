"""The JSON API of next-step plans, the plan board, suggestions and the radar.

Reading follows the customer's access rules. Setting and completing plans
needs a role that works with customers: ops read only.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta, tzinfo
from typing import Any

from aiohttp import web
from sqlalchemy import select

from capture import chain
from capture.access import Viewer
from capture.board import Board, BoardFilters, BoardPlan, load_board
from capture.db import transaction
from capture.errors import InvalidInput, NotFound
from capture.models import Customer, Plan
from capture.plans import customer_plans, suggested_steps
from capture.queries import get_customer, parse_id
from capture.radar import company_domain, local_time, phone_radar, same_company
from capture.windows import WindowRules
from web.access import viewer_of
from web.i18n import zone_of
from web.keys import DATABASE, SETTINGS
from web.runtime import current_settings
from web.values_api import _editor, customer_id_of, json_object

routes = web.RouteTableDef()


def plan_json(plan: Plan, zone: tzinfo, outcome: str | None = None) -> dict[str, Any]:
    def moment(value: datetime | None) -> str | None:
        return value.astimezone(zone).isoformat() if value else None

    return {
        "id": plan.id,
        "customer_id": plan.customer_id,
        "owner_id": plan.owner_id,
        "purpose": plan.purpose,
        "window": plan.window,
        "due_start": moment(plan.due_start),
        "due_end": moment(plan.due_end),
        "note": plan.note,
        "status": plan.status,
        "outcome": outcome,
        "created_at": moment(plan.created_at),
        "closed_at": moment(plan.closed_at),
        "source_activity_id": plan.source_activity_id,
    }


def entry_of(document: Any, field: str = "plan") -> chain.PlanEntry:
    """Read a plan from a JSON object; errors name the field inside it."""
    if not isinstance(document, dict):
        raise InvalidInput(f"{field} must be a JSON object", field)
    purpose = document.get("purpose")
    if not isinstance(purpose, str):
        raise InvalidInput("purpose is missing", "purpose")
    window = document.get("window")
    if window is not None and not isinstance(window, str):
        raise InvalidInput("window must be text", "window")
    note = document.get("note", "")
    if not isinstance(note, str):
        raise InvalidInput("note must be text", "note")
    return chain.PlanEntry(
        purpose=purpose,
        window=window,
        due_at=_due_at(document.get("due_at")),
        note=note,
        owner_id=_optional_id(document.get("owner_id"), "owner_id"),
        source_activity_id=_optional_id(
            document.get("source_activity_id"), "source_activity_id"
        ),
    )


def _due_at(raw: Any) -> datetime | None:
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise InvalidInput("due_at must be ISO 8601 text with an offset", "due_at")
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise InvalidInput(f"due_at {raw[:40]!r} is not ISO 8601", "due_at") from None
    if moment.tzinfo is None:
        raise InvalidInput("due_at needs a UTC offset", "due_at")
    if not 1900 <= moment.year <= 2999:
        raise InvalidInput(f"due_at {raw!r} is outside 1900..2999", "due_at")
    return moment


def _optional_id(raw: Any, field: str) -> int | None:
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int) or not 0 < raw < 2**63:
        raise InvalidInput(f"{field} must be a positive integer", field)
    return raw


def next_step_of(document: dict[str, Any]) -> chain.NextStep:
    kind = document.get("next")
    if not isinstance(kind, str):
        raise InvalidInput(
            f"next is missing; use one of {', '.join(chain.NEXT_STEPS)}", "next"
        )
    reason = document.get("reason", "")
    if not isinstance(reason, str):
        raise InvalidInput("reason must be text", "reason")
    plan = document.get("plan")
    if kind != "plan" and plan is not None:
        raise InvalidInput("plan is only allowed when next is plan", "plan")
    return chain.NextStep(kind, entry_of(plan) if plan is not None else None, reason)


@routes.get("/api/v1/customers/{id}/plans")
async def get_plans(request: web.Request) -> web.Response:
    zone = request.app[SETTINGS].zone
    async with request.app[DATABASE].reads() as session:
        customer = await get_customer(
            session, viewer_of(request), customer_id_of(request)
        )
        plans = await customer_plans(session, customer.id)
    open_plan = plans.open
    body = {
        "customer_id": customer.id,
        "customer_status": customer.status,
        "open": plan_json(open_plan, zone) if open_plan else None,
        "broken_chain": open_plan is None and customer.status not in ("won", "lost"),
        "history": [plan_json(item.plan, zone, item.outcome) for item in plans.history],
    }
    return web.json_response(body)


@routes.post("/api/v1/customers/{id}/plans")
async def post_plan(request: web.Request) -> web.Response:
    viewer = _editor(viewer_of(request))
    entry = entry_of(await json_object(request), "body")
    settings = await current_settings(request)
    async with transaction(request.app[DATABASE].writes) as session:
        customer = await get_customer(session, viewer, customer_id_of(request))
        plan = await chain.set_plan(
            session,
            viewer,
            customer,
            entry,
            now=datetime.now(UTC),
            rules=WindowRules.of(settings),
            fallback_zone=settings.zone,
        )
        body = plan_json(plan, settings.zone, "pending")
    return web.json_response(body, status=201)


@routes.post("/api/v1/plans/{plan_id}/complete")
async def post_complete(request: web.Request) -> web.Response:
    viewer = _editor(viewer_of(request))
    plan_id = _path_id(request, "plan_id")
    step = next_step_of(await json_object(request))
    settings = await current_settings(request)
    async with transaction(request.app[DATABASE].writes) as session:
        customer = await _plan_customer(session, viewer, plan_id)
        done = await session.get(Plan, plan_id)
        next_plan = await chain.complete_plan(
            session,
            viewer,
            customer,
            plan_id,
            step,
            now=datetime.now(UTC),
            rules=WindowRules.of(settings),
            fallback_zone=settings.zone,
        )
        assert done is not None
        body = {
            "completed": plan_json(done, settings.zone),
            "next_plan": plan_json(next_plan, settings.zone) if next_plan else None,
            "customer_status": customer.status,
            "broken_chain": next_plan is None
            and customer.status not in ("won", "lost"),
        }
    return web.json_response(body)


async def _plan_customer(session: Any, viewer: Viewer, plan_id: int) -> Customer:
    customer_id = await session.scalar(
        select(Plan.customer_id).where(Plan.id == plan_id)
    )
    if customer_id is None:
        raise NotFound(f"plan {plan_id} not found", "plan_id")
    try:
        return await get_customer(session, viewer, int(customer_id))
    except NotFound:
        raise NotFound(f"plan {plan_id} not found", "plan_id") from None


def _path_id(request: web.Request, name: str) -> int:
    raw = request.match_info[name]
    number = parse_id(raw)
    if number is None:
        raise NotFound(f"{name} {raw[:20]!r} not found", name)
    return number


def board_filters(query: Any) -> BoardFilters:
    """Read `rep` and `purpose` from a query string."""
    rep_raw = query.get("rep", "").strip()
    purpose = query.get("purpose", "").strip() or None
    rep_id = None
    if rep_raw:
        rep_id = parse_id(rep_raw)
        if rep_id is None:
            raise InvalidInput(f"rep {rep_raw[:20]!r} is not a user id", "rep")
    if purpose is not None and purpose not in chain.PURPOSES:
        raise InvalidInput(
            f"purpose {purpose[:40]!r} is unknown; "
            f"use one of {', '.join(chain.PURPOSES)}",
            "purpose",
        )
    return BoardFilters(rep_id, purpose)


def day_end_of(now: datetime, zone: tzinfo) -> datetime:
    """Return the instant the local day of `now` ends in `zone`."""
    tomorrow = now.astimezone(zone).date() + timedelta(days=1)
    return datetime.combine(tomorrow, time(), zone).astimezone(UTC)


async def board_of(request: web.Request, filters: BoardFilters) -> Board:
    now = datetime.now(UTC)
    async with request.app[DATABASE].reads() as session:
        return await load_board(
            session,
            viewer_of(request),
            now=now,
            day_end=day_end_of(now, zone_of(request)),
            filters=filters,
        )


def _board_plan(item: BoardPlan, zone: tzinfo) -> dict[str, Any]:
    return {
        **plan_json(item.plan, zone, item.outcome),
        "customer_name": item.customer.name,
        "responsible_id": item.owner.id if item.owner else None,
        "responsible": item.owner.name if item.owner else None,
    }


@routes.get("/api/v1/board")
async def get_board(request: web.Request) -> web.Response:
    zone = request.app[SETTINGS].zone
    board = await board_of(request, board_filters(request.query))
    body: dict[str, Any] = {
        name: [_board_plan(item, zone) for item in getattr(board, name)]
        for name in ("due_today", "overdue", "missed")
    }
    body["broken_chains"] = [
        {
            "customer_id": item.customer.id,
            "customer_name": item.customer.name,
            "customer_status": item.customer.status,
            "owner_id": item.owner.id if item.owner else None,
            "last_closed_at": item.last_closed_at.astimezone(zone).isoformat()
            if item.last_closed_at
            else None,
        }
        for item in board.broken
    ]
    body["truncated"] = board.truncated
    return web.json_response(body)


@routes.get("/api/v1/customers/{id}/suggestions")
async def get_suggestions(request: web.Request) -> web.Response:
    zone = request.app[SETTINGS].zone
    async with request.app[DATABASE].reads() as session:
        customer = await get_customer(
            session, viewer_of(request), customer_id_of(request)
        )
        found = await suggested_steps(session, customer.id, datetime.now(UTC))
    items = [
        {
            "activity_id": item.activity_id,
            "channel": item.channel,
            "occurred_at": item.occurred_at.astimezone(zone).isoformat(),
            "window": item.suggestion.window,
            "purpose": item.suggestion.purpose,
            "evidence": item.suggestion.evidence,
        }
        for item in found
    ]
    return web.json_response({"items": items})


@routes.get("/api/v1/customers/{id}/radar")
async def get_radar(request: web.Request) -> web.Response:
    viewer = viewer_of(request)
    now = datetime.now(UTC)
    async with request.app[DATABASE].reads() as session:
        customer = await get_customer(session, viewer, customer_id_of(request))
        domains = customer_domains(customer)
        related = await same_company(session, viewer, customer.id, domains)
    phones = []
    for point in customer.contact_points:
        if point.kind != "phone":
            continue
        radar = phone_radar(point.value)
        if radar is None:
            continue
        local = local_time(radar.time_zone, now)
        phones.append(
            {
                "number": radar.number,
                "region_code": radar.region_code,
                "country": radar.country,
                "place": radar.place,
                "time_zone": radar.time_zone,
                "line_type": radar.line_type,
                "carrier": radar.carrier,
                "local_time": local.moment.isoformat() if local else None,
                "unsociable_hour": local.unsociable if local else None,
            }
        )
    body = {
        "phones": phones,
        "company_domains": sorted(domains),
        "same_company": [{"id": c.id, "name": c.name} for c in related],
    }
    return web.json_response(body)


def customer_domains(customer: Customer) -> set[str]:
    return {
        domain
        for point in customer.contact_points
        if point.kind == "email" and (domain := company_domain(point.value))
    }
