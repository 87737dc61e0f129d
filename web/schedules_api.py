"""The JSON API of scheduled exports, for ops users and admins."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from capture import audit
from capture.access import Viewer
from capture.db import transaction
from capture.errors import Forbidden, NotFound
from capture.models import ExportSchedule
from capture.queries import parse_id
from reports import schedules
from web.access import user_of, viewer_of
from web.auth import remote_of
from web.keys import DATABASE, SETTINGS
from web.values_api import json_object

routes = web.RouteTableDef()


def scheduler_of(request: web.Request) -> Viewer:
    """Return the viewer, who must be an ops user or an admin."""
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
        "rep": schedule.rep_id,
        "time": schedule.run_time,
        "weekday": (
            schedules.WEEKDAYS[schedule.weekday]
            if schedule.frequency == "weekly"
            else None
        ),
        "paused": schedule.paused,
        "created_by": schedule.created_by,
        "next_run_at": None if schedule.paused else local(schedule.next_run_at),
        "last_run_at": local(schedule.last_run_at),
        "last_outcome": last_outcome(schedule),
        "last_error": schedule.last_error,
    }


def last_outcome(schedule: ExportSchedule) -> str | None:
    """Return succeeded or failed for the last run, or None before the first."""
    if schedule.last_run_at is None:
        return None
    return "failed" if schedule.last_error else "succeeded"


def audit_schedule(
    request: web.Request, session: AsyncSession, action: str, schedule_id: int
) -> None:
    """Add an audit entry for a schedule created or deleted by the request."""
    audit.record(
        session,
        action,
        actor=user_of(request),
        target_type="export_schedule",
        target_id=schedule_id,
        remote=remote_of(request),
    )


def schedule_id_of(request: web.Request) -> int:
    raw = request.match_info["id"]
    schedule_id = parse_id(raw)
    if schedule_id is None:
        raise NotFound(f"export schedule {raw[:20]!r} not found", "id")
    return schedule_id


@routes.get("/api/v1/export-schedules")
async def list_schedules(request: web.Request) -> web.Response:
    scheduler_of(request)
    zone = request.app[SETTINGS].zone
    async with request.app[DATABASE].reads() as session:
        found = (
            await session.scalars(select(ExportSchedule).order_by(ExportSchedule.id))
        ).all()
    # Every schedule fits in one page, so `next` is always null.
    items = [schedule_json(schedule, zone) for schedule in found]
    return web.json_response({"items": items, "next": None})


@routes.post("/api/v1/export-schedules")
async def create_schedule(request: web.Request) -> web.Response:
    viewer = scheduler_of(request)
    settings = request.app[SETTINGS]
    document = await json_object(request)
    async with transaction(request.app[DATABASE].writes) as session:
        schedule = await schedules.create_schedule(session, document, viewer, settings)
        audit_schedule(request, session, audit.EXPORT_SCHEDULED, schedule.id)
        body = schedule_json(schedule, settings.zone)
    return web.json_response(body, status=201)


@routes.delete("/api/v1/export-schedules/{id}")
async def delete_schedule(request: web.Request) -> web.Response:
    scheduler_of(request)
    schedule_id = schedule_id_of(request)
    async with transaction(request.app[DATABASE].writes) as session:
        await schedules.delete_schedule(session, schedule_id)
        audit_schedule(request, session, audit.EXPORT_SCHEDULE_DELETED, schedule_id)
    return web.Response(status=204)


async def _set_paused(request: web.Request, paused: bool) -> web.Response:
    scheduler_of(request)
    schedule_id = schedule_id_of(request)
    zone = request.app[SETTINGS].zone
    async with transaction(request.app[DATABASE].writes) as session:
        schedule = await schedules.set_paused(session, schedule_id, paused, zone)
        body = schedule_json(schedule, zone)
    return web.json_response(body)


@routes.post("/api/v1/export-schedules/{id}/pause")
async def pause_schedule(request: web.Request) -> web.Response:
    return await _set_paused(request, True)


@routes.post("/api/v1/export-schedules/{id}/resume")
async def resume_schedule(request: web.Request) -> web.Response:
    return await _set_paused(request, False)


@routes.post("/api/v1/export-schedules/{id}/run")
async def run_schedule(request: web.Request) -> web.Response:
    """Run the schedule now and return it with this run's outcome."""
    scheduler_of(request)
    schedule_id = schedule_id_of(request)
    database, settings = request.app[DATABASE], request.app[SETTINGS]
    await schedules.run_now(database, settings, schedule_id)
    async with database.reads() as session:
        schedule = await session.get(ExportSchedule, schedule_id)
        if schedule is None:
            raise NotFound(f"export schedule {schedule_id} not found", "id")
        body = schedule_json(schedule, settings.zone)
    return web.json_response(body)
