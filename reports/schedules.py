"""Scheduled exports: a report written to a folder or sent by email, by itself.

An ops user or admin sets a schedule: which report and format, with the
filters of the report pages (team, and rep for activities and calls),
daily or weekly, and where it goes. A schedule runs at its local time of
day (01:00 unless set) in the organisation's time zone, weekly ones on
their weekday (Monday unless set). A run covers the whole local days before
it: the day before when daily, the seven days before when weekly. The KPI
export covers the calendar month of the last day covered.

Run times are computed from the local date and time of day, so they follow
daylight-saving changes. A time that a change skips runs at the same
instant expressed in the offset before the change (02:30 on a spring-forward
night runs at 03:30), and a time that happens twice runs at its first
occurrence only.

The loop in `touchline serve` and `touchline worker` claims a due schedule
by moving its `next_run_at` forward with a conditional UPDATE, so that two
processes never run the same schedule twice. A failure is logged and kept
in `last_error`; the schedule runs again at its next time. A paused
schedule is skipped until it is resumed, and "run now" runs one at once
without moving its next run.
"""

from __future__ import annotations

import asyncio
import logging
import re
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from capture.access import Viewer
from capture.db import Database, transaction
from capture.errors import InvalidInput, NotFound
from capture.models import ExportSchedule, Team, User, utcnow
from capture.queries import json_id
from capture.settings import Settings
from reports.custom_columns import with_custom_fields
from reports.export import ExportFilter
from reports.kpis import customer_scope, kpi_report
from reports.periods import DateRange, period_containing
from reports.reps import rep_summaries
from reports.schedule_delivery import (
    check_folder_target,
    send_by_email,
    write_to_folder,
)
from reports.tables import (
    Table,
    activities_table,
    calls_table,
    kpi_table,
    summary_table,
)
from reports.xlsx import table_csv, write_xlsx

log = logging.getLogger(__name__)

REPORTS = ("activities", "calls", "summary", "kpis")
REP_REPORTS = ("activities", "calls")
FORMATS = ("csv", "xlsx")
FREQUENCIES = ("daily", "weekly")
DESTINATIONS = ("folder", "email")
WEEKDAYS = (
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
)
SCHEDULERS = frozenset({"ops", "admin"})
RUN_AT = time(1, 0)
TIME_OF_DAY = re.compile(r"([01][0-9]|2[0-3]):[0-5][0-9]")
EMAIL_ADDRESS = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
INTERVAL_SECONDS = 60


def _choice(document: dict[str, Any], name: str, allowed: tuple[str, ...]) -> str:
    value = document.get(name)
    if value is None or value == "":
        raise InvalidInput(f"{name} is missing; use one of {', '.join(allowed)}", name)
    if value not in allowed:
        raise InvalidInput(f"{name} {value!r} is not one of {', '.join(allowed)}", name)
    return str(value)


def _target(destination: str, value: Any) -> str:
    if value is not None and not isinstance(value, str):
        raise InvalidInput("target must be text", "target")
    text = value.strip() if isinstance(value, str) else ""
    if destination == "folder":
        return check_folder_target(text)
    if len(text) > 320 or not EMAIL_ADDRESS.fullmatch(text):
        raise InvalidInput(f"target {text[:40]!r} is not an email address", "target")
    return text


def _optional_id(document: dict[str, Any], name: str) -> int | None:
    """Read an id given as a number or digits; None or "" means no filter."""
    value = document.get(name)
    if value is None or value == "":
        return None
    return json_id(value, name)


def _time_of_day(document: dict[str, Any]) -> str:
    value = document.get("time")
    if value is None or value == "":
        return RUN_AT.strftime("%H:%M")
    if not isinstance(value, str) or not TIME_OF_DAY.fullmatch(value.strip()):
        raise InvalidInput(
            f"time {value!r} is not a time of day: give HH:MM from 00:00 to 23:59",
            "time",
        )
    return value.strip()


def _weekday(document: dict[str, Any], frequency: str) -> int:
    value = document.get("weekday")
    if value is None or value == "":
        return 0
    if value not in WEEKDAYS:
        raise InvalidInput(
            f"weekday {value!r} is not one of {', '.join(WEEKDAYS)}", "weekday"
        )
    if frequency != "weekly":
        raise InvalidInput("weekday is for weekly schedules only", "weekday")
    return WEEKDAYS.index(value)


async def _filters(
    session: AsyncSession, document: dict[str, Any], report: str
) -> tuple[int | None, int | None]:
    team_id = _optional_id(document, "team")
    if team_id is not None and await session.get(Team, team_id) is None:
        raise InvalidInput(f"team {team_id} not found", "team")
    rep_id = _optional_id(document, "rep")
    if rep_id is None:
        return team_id, None
    if report not in REP_REPORTS:
        raise InvalidInput(
            f"rep filters the {' and '.join(REP_REPORTS)} reports only, not {report}",
            "rep",
        )
    if await session.get(User, rep_id) is None:
        raise InvalidInput(f"rep {rep_id} not found", "rep")
    return team_id, rep_id


# The keys a new schedule may have.
SCHEDULE_FIELDS = (
    "report",
    "format",
    "frequency",
    "weekday",
    "time",
    "destination",
    "target",
    "team",
    "rep",
)


async def create_schedule(
    session: AsyncSession,
    document: dict[str, Any],
    viewer: Viewer,
    settings: Settings,
) -> ExportSchedule:
    """Check `document` field by field and add the schedule it describes.

    Raises InvalidInput naming the first field at fault; nothing is added then.
    """
    unknown = sorted(set(document) - set(SCHEDULE_FIELDS))
    if unknown:
        name = unknown[0][:40]
        allowed = ", ".join(SCHEDULE_FIELDS)
        raise InvalidInput(f"{name} is not a schedule field; use {allowed}", name)
    report = _choice(document, "report", REPORTS)
    export_format = _choice(document, "format", FORMATS)
    frequency = _choice(document, "frequency", FREQUENCIES)
    weekday = _weekday(document, frequency)
    run_time = _time_of_day(document)
    destination = _choice(document, "destination", DESTINATIONS)
    if destination == "email" and not settings.export_smtp_relay:
        raise InvalidInput(
            "email delivery is off: set export_smtp_relay first", "destination"
        )
    target = _target(destination, document.get("target"))
    team_id, rep_id = await _filters(session, document, report)
    schedule = ExportSchedule(
        report=report,
        format=export_format,
        frequency=frequency,
        destination=destination,
        target=target,
        team_id=team_id,
        rep_id=rep_id,
        run_time=run_time,
        weekday=weekday,
        paused=False,
        created_by=viewer.user_id,
    )
    schedule.next_run_at = following_run(schedule, utcnow(), settings.zone)
    session.add(schedule)
    await session.flush()
    return schedule


def next_run(
    after: datetime,
    frequency: str,
    zone: ZoneInfo,
    at: time = RUN_AT,
    weekday: int = 0,
) -> datetime:
    """Return the first run time after `after`: `at` local time, every day or
    on `weekday` (0 is Monday) when weekly."""
    day = after.astimezone(zone).date()
    step = 1
    if frequency == "weekly":
        day -= timedelta(days=(day.weekday() - weekday) % 7)
        step = 7
    while True:
        # fold=0: a skipped time takes the offset before the change, and a
        # repeated time its first occurrence.
        candidate = datetime.combine(day, at, zone).astimezone(UTC)
        if candidate > after:
            return candidate
        day += timedelta(days=step)


def following_run(
    schedule: ExportSchedule, after: datetime, zone: ZoneInfo
) -> datetime:
    at = time.fromisoformat(schedule.run_time or "01:00")
    return next_run(after, schedule.frequency, zone, at, schedule.weekday or 0)


def covered_range(run_at: datetime, frequency: str, zone: ZoneInfo) -> DateRange:
    """Return the whole local days before the run that its export contains."""
    last: date = run_at.astimezone(zone).date() - timedelta(days=1)
    first = last if frequency == "daily" else last - timedelta(days=6)
    return DateRange(first, last, zone)


async def build_table(
    session: AsyncSession,
    schedule: ExportSchedule,
    span: DateRange,
    viewer: Viewer,
) -> Table:
    if schedule.report == "summary":
        summaries = await rep_summaries(session, span, viewer, schedule.team_id)
        return summary_table(summaries)
    if schedule.report == "kpis":
        period = period_containing("month", span.last, span.zone)
        scope = customer_scope(viewer, schedule.team_id)
        return kpi_table(await kpi_report(session, period, scope))
    options = ExportFilter(
        span,
        viewer,
        team_id=schedule.team_id,
        rep_id=schedule.rep_id,
        channel="call" if schedule.report == "calls" else None,
    )
    if schedule.report == "calls":
        return await with_custom_fields(session, calls_table(session, options))
    return await with_custom_fields(session, activities_table(session, options))


async def run_due(database: Database, settings: Settings, now: datetime) -> int:
    """Run every active schedule due at `now`; return how many ran, failed
    ones included."""
    async with database.reads() as session:
        due = list(
            (
                await session.scalars(
                    select(ExportSchedule).where(
                        ExportSchedule.next_run_at <= now,
                        ExportSchedule.paused.is_(False),
                    )
                )
            ).all()
        )
    ran = 0
    for schedule in due:
        if await _claim(database, schedule, settings.zone, now):
            await _run_one(database, settings, schedule, now)
            ran += 1
    return ran


async def run_now(
    database: Database, settings: Settings, schedule_id: int
) -> str | None:
    """Run one schedule at once, paused or not; return its error or None.

    The run covers the days before today, like a run due now, and leaves
    the next run where it was.
    """
    async with database.reads() as session:
        schedule = await session.get(ExportSchedule, schedule_id)
    if schedule is None:
        raise NotFound(f"export schedule {schedule_id} not found", "id")
    return await _run_one(database, settings, schedule, utcnow())


async def set_paused(
    session: AsyncSession, schedule_id: int, paused: bool, zone: ZoneInfo
) -> ExportSchedule:
    """Pause or resume a schedule; resuming sets the next run after now, so
    runs missed while paused are not made up."""
    schedule = await session.get(ExportSchedule, schedule_id)
    if schedule is None:
        raise NotFound(f"export schedule {schedule_id} not found", "id")
    if schedule.paused and not paused:
        schedule.next_run_at = following_run(schedule, utcnow(), zone)
    schedule.paused = paused
    await session.flush()
    return schedule


async def delete_schedule(session: AsyncSession, schedule_id: int) -> None:
    result = await session.execute(
        delete(ExportSchedule).where(ExportSchedule.id == schedule_id)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise NotFound(f"export schedule {schedule_id} not found", "id")


async def _claim(
    database: Database, schedule: ExportSchedule, zone: ZoneInfo, now: datetime
) -> bool:
    following = following_run(schedule, now, zone)
    async with transaction(database.writes) as session:
        result = await session.execute(
            update(ExportSchedule)
            .where(
                ExportSchedule.id == schedule.id,
                ExportSchedule.next_run_at == schedule.next_run_at,
                ExportSchedule.paused.is_(False),
            )
            .values(next_run_at=following)
        )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def _run_one(
    database: Database, settings: Settings, schedule: ExportSchedule, now: datetime
) -> str | None:
    error: str | None = None
    span = covered_range(now, schedule.frequency, settings.zone)
    try:
        await _deliver(database, settings, schedule, span)
        log.info(
            "scheduled export %s: %s.%s %s..%s to %s",
            schedule.id,
            schedule.report,
            schedule.format,
            span.first,
            span.last,
            schedule.destination,
        )
    except Exception as failure:
        log.exception("scheduled export %s failed", schedule.id)
        error = f"{type(failure).__name__}: {failure}"[:2000]
    async with transaction(database.writes) as session:
        await session.execute(
            update(ExportSchedule)
            .where(ExportSchedule.id == schedule.id)
            .values(last_run_at=now, last_error=error)
        )
    return error


async def _deliver(
    database: Database, settings: Settings, schedule: ExportSchedule, span: DateRange
) -> None:
    async def write(path: Path) -> None:
        await _produce(database, settings, schedule, span, path)

    name = file_name(schedule, span)
    if schedule.destination == "folder":
        await write_to_folder(settings, schedule.target, name, write)
        return
    subject = f"Touchline {schedule.report} export {span.first} to {span.last}"
    await send_by_email(settings, schedule.target, subject, name, write)


async def _produce(
    database: Database,
    settings: Settings,
    schedule: ExportSchedule,
    span: DateRange,
    path: Path,
) -> None:
    """Write the export to `path` with the access of the schedule's creator."""
    async with database.reads() as session:
        creator = await session.get(User, schedule.created_by)
        if creator is None or not creator.active:
            raise RuntimeError(f"user {schedule.created_by} is no longer active")
        table = await build_table(session, schedule, span, Viewer.of(creator))
        if schedule.format == "xlsx":
            await write_xlsx(table, path, settings.timezone)
            return
        output = await asyncio.to_thread(path.open, "wb")
        try:
            async for chunk in table_csv(table):
                await asyncio.to_thread(output.write, chunk)
        finally:
            output.close()


def file_name(schedule: ExportSchedule, span: DateRange) -> str:
    return f"{schedule.report}_{span.first}_{span.last}.{schedule.format}"


async def run_periodically(
    database: Database, settings: Settings, stop: asyncio.Event
) -> None:
    """Run due schedules every `INTERVAL_SECONDS` until `stop` is set."""
    while not stop.is_set():
        try:
            await run_due(database, settings, utcnow())
        except Exception:
            log.exception("scheduled exports failed; trying again in a minute")
        try:
            await asyncio.wait_for(stop.wait(), timeout=INTERVAL_SECONDS)
        except TimeoutError:
            continue
