"""`/exports/schedules`: the scheduled exports page for ops users and admins.

The page lists every schedule with its last run, that run's outcome and
error, and its next run, and has a form to add one. Each row can be paused
or resumed, run now, or deleted. Other roles get 403.
"""

from __future__ import annotations

from typing import Any

import aiohttp_jinja2
from aiohttp import web
from sqlalchemy import select

from capture import audit
from capture.db import transaction
from capture.errors import InvalidInput
from capture.models import ExportSchedule, Team, User
from reports import schedules
from web.domain_messages import translate_message
from web.i18n import gettext_noop as N_
from web.inputs import form_text
from web.keys import DATABASE, SETTINGS
from web.schedules_api import (
    audit_schedule,
    last_outcome,
    schedule_id_of,
    scheduler_of,
)

routes = web.RouteTableDef()
PAGE = "/exports/schedules"
FORM_FIELDS = schedules.SCHEDULE_FIELDS
REPORT_NAMES = {
    "activities": N_("Activities"),
    "calls": N_("Calls"),
    "summary": N_("Per-rep summary"),
    "kpis": N_("Customer KPIs"),
}
FREQUENCY_NAMES = {"daily": N_("Daily"), "weekly": N_("Weekly")}
DESTINATION_NAMES = {"folder": N_("Folder"), "email": N_("Email")}
WEEKDAY_NAMES = {
    "monday": N_("Monday"),
    "tuesday": N_("Tuesday"),
    "wednesday": N_("Wednesday"),
    "thursday": N_("Thursday"),
    "friday": N_("Friday"),
    "saturday": N_("Saturday"),
    "sunday": N_("Sunday"),
}
OUTCOME_NAMES = {"succeeded": N_("succeeded"), "failed": N_("failed")}


async def _page(
    request: web.Request,
    status: int = 200,
    error: InvalidInput | None = None,
    values: dict[str, str] | None = None,
) -> web.Response:
    settings = request.app[SETTINGS]
    async with request.app[DATABASE].reads() as session:
        found = (
            await session.scalars(select(ExportSchedule).order_by(ExportSchedule.id))
        ).all()
        teams = dict((await session.execute(select(Team.id, Team.name))).all())
        users = (
            await session.execute(
                select(User.id, User.name, User.role, User.active).order_by(User.name)
            )
        ).all()
    context: dict[str, Any] = {
        "rows": [_row(schedule) for schedule in found],
        "teams": sorted(teams.items(), key=lambda item: item[1]),
        "team_names": teams,
        "reps": [
            (user.id, user.name)
            for user in users
            if user.active and user.role in ("rep", "manager")
        ],
        "user_names": {user.id: user.name for user in users},
        "reports": REPORT_NAMES,
        "formats": schedules.FORMATS,
        "frequencies": FREQUENCY_NAMES,
        "destinations": DESTINATION_NAMES,
        "weekdays": WEEKDAY_NAMES,
        "outcomes": OUTCOME_NAMES,
        "email_enabled": bool(settings.export_smtp_relay),
        "exports_dir": str(settings.exports_dir),
        "timezone": settings.timezone,
        "error": translate_message(error.message) if error else None,
        "field": error.field if error else None,
        "values": values or {"time": "01:00"},
    }
    response = aiohttp_jinja2.render_template("export_schedules.html", request, context)
    response.set_status(status)
    return response


def _row(schedule: ExportSchedule) -> dict[str, Any]:
    return {
        "schedule": schedule,
        "weekday": (
            schedules.WEEKDAYS[schedule.weekday]
            if schedule.frequency == "weekly"
            else None
        ),
        "outcome": last_outcome(schedule),
    }


@routes.get(PAGE)
async def schedules_page(request: web.Request) -> web.Response:
    scheduler_of(request)
    return await _page(request)


@routes.post(PAGE)
async def create_schedule(request: web.Request) -> web.Response:
    viewer = scheduler_of(request)
    form = await request.post()
    values = {name: form_text(form, name, 320).strip() for name in FORM_FIELDS}
    document: dict[str, Any] = dict(values)
    if values["frequency"] != "weekly":
        # The form keeps its weekday list for daily schedules too.
        document["weekday"] = ""
    try:
        async with transaction(request.app[DATABASE].writes) as session:
            schedule = await schedules.create_schedule(
                session, document, viewer, request.app[SETTINGS]
            )
            audit_schedule(request, session, audit.EXPORT_SCHEDULED, schedule.id)
    except InvalidInput as error:
        return await _page(request, 400, error, values)
    raise web.HTTPSeeOther(PAGE)


async def _set_paused(request: web.Request, paused: bool) -> web.Response:
    scheduler_of(request)
    schedule_id = schedule_id_of(request)
    async with transaction(request.app[DATABASE].writes) as session:
        await schedules.set_paused(
            session, schedule_id, paused, request.app[SETTINGS].zone
        )
    raise web.HTTPSeeOther(PAGE)


@routes.post(PAGE + "/{id}/pause")
async def pause_schedule(request: web.Request) -> web.Response:
    return await _set_paused(request, True)


@routes.post(PAGE + "/{id}/resume")
async def resume_schedule(request: web.Request) -> web.Response:
    return await _set_paused(request, False)


@routes.post(PAGE + "/{id}/run")
async def run_schedule(request: web.Request) -> web.Response:
    """Run the export now; the page then shows this run's outcome."""
    scheduler_of(request)
    schedule_id = schedule_id_of(request)
    await schedules.run_now(request.app[DATABASE], request.app[SETTINGS], schedule_id)
    raise web.HTTPSeeOther(PAGE)


@routes.post(PAGE + "/{id}/delete")
async def delete_schedule(request: web.Request) -> web.Response:
    scheduler_of(request)
    schedule_id = schedule_id_of(request)
    async with transaction(request.app[DATABASE].writes) as session:
        await schedules.delete_schedule(session, schedule_id)
        audit_schedule(request, session, audit.EXPORT_SCHEDULE_DELETED, schedule_id)
    raise web.HTTPSeeOther(PAGE)
