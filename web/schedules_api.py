"""The JSON API of scheduled exports, for ops users and admins."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web
from sqlalchemy import delete, select

from capture.db import transaction
from capture.errors import Forbidden, NotFound
from capture.models import ExportSchedule
from capture.queries import parse_id
from reports import schedules
from web.access import viewer_of
from web.keys import DATABASE, SETTINGS
from web.values_api import json_object

routes = web.RouteTableDef()


def _scheduler(request: web.Request) -> Any:
    viewer = viewer_of(request)
    if viewer.role not in schedules.SCHEDULERS:
        raise Forbidden("only ops users and admins manage scheduled exports")
    return viewer


def schedule_json(schedule: ExportSchedule, zone: ZoneInfo) -> dict[str, Any]:
    def local(value: Any) -> str | None:
        return None if value is None else value.astimezone(zone).isoformat()

    return {
        "id": schedule.id,
        "report": schedule.report,
        "format": schedule.format,
        "frequency": schedule.frequency,
        "destination": schedule.destination,
        "target": schedule.target,
        "team": schedule.team_id,
        "created_by": schedule.created_by,
        "next_run_at": local(schedule.next_run_at),
        "last_run_at": local(schedule.last_run_at),
        "last_error": schedule.last_error,
    }


@routes.get("/api/v1/export-schedules")
async def list_schedules(request: web.Request) -> web.Response:
    _scheduler(request)
    zone = request.app[SETTINGS].zone
    async with request.app[DATABASE].reads() as session:
        found = (
            await session.scalars(select(ExportSchedule).order_by(ExportSchedule.id))
        ).all()
    return web.json_response({"items": [schedule_json(s, zone) for s in found]})


@routes.post("/api/v1/export-schedules")
async def create_schedule(request: web.Request) -> web.Response:
    viewer = _scheduler(request)
    settings = request.app[SETTINGS]
    document = await json_object(request)
    async with transaction(request.app[DATABASE].writes) as session:
        schedule = await schedules.create_schedule(session, document, viewer, settings)
        body = schedule_json(schedule, settings.zone)
    return web.json_response(body, status=201)


@routes.delete("/api/v1/export-schedules/{id}")
async def delete_schedule(request: web.Request) -> web.Response:
    _scheduler(request)
    raw = request.match_info["id"]
    schedule_id = parse_id(raw)
    if schedule_id is None:
        raise NotFound(f"export schedule {raw[:20]!r} not found", "id")
    async with transaction(request.app[DATABASE].writes) as session:
        result = await session.execute(
            delete(ExportSchedule).where(ExportSchedule.id == schedule_id)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            raise NotFound(f"export schedule {schedule_id} not found", "id")
    return web.Response(status=204)
