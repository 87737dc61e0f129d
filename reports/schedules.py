"""Scheduled exports: a report written to a folder or sent by email, by itself.

An ops user or admin sets a schedule: which report and format, daily or
weekly, and where it goes. A daily export runs at 01:00 in the
organisation's time zone and covers the day before. A weekly one runs on
Mondays at 01:00 and covers the seven days before (Monday to Sunday). The
KPI export covers the calendar month of the last day covered.

The loop in `touchline serve` and `touchline worker` claims a due schedule
by moving its `next_run_at` forward with a conditional UPDATE, so that two
processes never run the same schedule twice. A failure is logged and kept
in `last_error`; the schedule runs again at its next time.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
import smtplib
import tempfile
from datetime import UTC, date, datetime, time, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from capture.access import Viewer
from capture.db import Database, transaction
from capture.errors import InvalidInput
from capture.models import ExportSchedule, Team, User, utcnow
from capture.settings import Settings
from reports.export import ExportFilter
from reports.kpis import customer_scope, kpi_report
from reports.periods import DateRange, period_containing
from reports.reps import rep_summaries
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
FORMATS = ("csv", "xlsx")
FREQUENCIES = ("daily", "weekly")
DESTINATIONS = ("folder", "email")
SCHEDULERS = frozenset({"ops", "admin"})
RUN_AT = time(1, 0)
FOLDER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
EMAIL_ADDRESS = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
INTERVAL_SECONDS = 60
SMTP_TIMEOUT_SECONDS = 30


def _choice(document: dict[str, Any], name: str, allowed: tuple[str, ...]) -> str:
    value = document.get(name)
    if value not in allowed:
        raise InvalidInput(f"{name} {value!r} is not one of {', '.join(allowed)}", name)
    return str(value)


def _target(destination: str, value: Any) -> str:
    text = value.strip() if isinstance(value, str) else ""
    if destination == "folder" and not FOLDER_NAME.fullmatch(text):
        raise InvalidInput(
            "target must be a folder name of letters, digits, - and _ "
            "(up to 64 characters); it is created under <data_dir>/exports",
            "target",
        )
    if destination == "email" and (
        len(text) > 320 or not EMAIL_ADDRESS.fullmatch(text)
    ):
        raise InvalidInput(f"target {text[:40]!r} is not an email address", "target")
    return text


async def create_schedule(
    session: AsyncSession,
    document: dict[str, Any],
    viewer: Viewer,
    settings: Settings,
) -> ExportSchedule:
    destination = _choice(document, "destination", DESTINATIONS)
    if destination == "email" and not settings.export_smtp_relay:
        raise InvalidInput(
            "email delivery is off: set export_smtp_relay first", "destination"
        )
    team_id = document.get("team")
    if team_id is not None and (
        not isinstance(team_id, int) or await session.get(Team, team_id) is None
    ):
        raise InvalidInput(f"team {team_id!r} not found", "team")
    frequency = _choice(document, "frequency", FREQUENCIES)
    schedule = ExportSchedule(
        report=_choice(document, "report", REPORTS),
        format=_choice(document, "format", FORMATS),
        frequency=frequency,
        destination=destination,
        target=_target(destination, document.get("target")),
        team_id=team_id,
        created_by=viewer.user_id,
        next_run_at=next_run(utcnow(), frequency, settings.zone),
    )
    session.add(schedule)
    await session.flush()
    return schedule


def next_run(after: datetime, frequency: str, zone: ZoneInfo) -> datetime:
    """Return the first run time after `after`: 01:00 local, on Mondays if weekly."""
    day = after.astimezone(zone).date()
    step = 1
    if frequency == "weekly":
        day -= timedelta(days=day.weekday())
        step = 7
    while True:
        candidate = datetime.combine(day, RUN_AT, zone).astimezone(UTC)
        if candidate > after:
            return candidate
        day += timedelta(days=step)


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
        channel="call" if schedule.report == "calls" else None,
    )
    if schedule.report == "calls":
        return calls_table(session, options)
    return activities_table(session, options)


async def run_due(database: Database, settings: Settings, now: datetime) -> int:
    """Run every schedule due at `now`; return how many ran, failed ones included."""
    async with database.reads() as session:
        due = list(
            (
                await session.scalars(
                    select(ExportSchedule).where(ExportSchedule.next_run_at <= now)
                )
            ).all()
        )
    ran = 0
    for schedule in due:
        if await _claim(database, schedule, settings.zone, now):
            await _run_one(database, settings, schedule, now)
            ran += 1
    return ran


async def _claim(
    database: Database, schedule: ExportSchedule, zone: ZoneInfo, now: datetime
) -> bool:
    following = next_run(now, schedule.frequency, zone)
    async with transaction(database.writes) as session:
        result = await session.execute(
            update(ExportSchedule)
            .where(
                ExportSchedule.id == schedule.id,
                ExportSchedule.next_run_at == schedule.next_run_at,
            )
            .values(next_run_at=following)
        )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def _run_one(
    database: Database, settings: Settings, schedule: ExportSchedule, now: datetime
) -> None:
    error: str | None = None
    span = covered_range(now, schedule.frequency, settings.zone)
    try:
        path = await _produce(database, settings, schedule, span)
        try:
            await _deliver(settings, schedule, path, file_name(schedule, span))
        finally:
            path.unlink(missing_ok=True)
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


async def _produce(
    database: Database, settings: Settings, schedule: ExportSchedule, span: DateRange
) -> Path:
    """Write the export to a temporary file and return its path."""
    handle, name = tempfile.mkstemp(
        prefix="touchline-export-", suffix=f".{schedule.format}"
    )
    os.close(handle)
    path = Path(name)
    async with database.reads() as session:
        creator = await session.get(User, schedule.created_by)
        if creator is None or not creator.active:
            raise RuntimeError(f"user {schedule.created_by} is no longer active")
        table = await build_table(session, schedule, span, Viewer.of(creator))
        if schedule.format == "xlsx":
            await write_xlsx(table, path, settings.timezone)
        else:
            output = await asyncio.to_thread(path.open, "wb")
            try:
                async for chunk in table_csv(table):
                    await asyncio.to_thread(output.write, chunk)
            finally:
                output.close()
    return path


def file_name(schedule: ExportSchedule, span: DateRange) -> str:
    return f"{schedule.report}_{span.first}_{span.last}.{schedule.format}"


async def _deliver(
    settings: Settings, schedule: ExportSchedule, path: Path, name: str
) -> None:
    if schedule.destination == "folder":
        folder = settings.data_dir / "exports" / schedule.target
        await asyncio.to_thread(_copy_into, folder, name, path)
        return
    await asyncio.to_thread(_send_mail, settings, schedule, path, name)


def _copy_into(folder: Path, name: str, path: Path) -> None:
    """Copy beside the final name first, so that readers never see half a file."""
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / name
    partial = final.with_name(name + ".part")
    shutil.copyfile(path, partial)
    partial.replace(final)


def _send_mail(
    settings: Settings, schedule: ExportSchedule, path: Path, attachment: str
) -> None:
    host, _, port = settings.export_smtp_relay.rpartition(":")
    message = EmailMessage()
    message["From"] = settings.export_mail_from
    message["To"] = schedule.target
    message["Subject"] = f"Touchline {schedule.report} export"
    message.set_content(f"The scheduled {schedule.report} export is attached.")
    # NOTE: the whole file is read into memory here, unlike the other
    # destinations; very large activity exports are better sent to a folder.
    subtype = "csv" if schedule.format == "csv" else "octet-stream"
    message.add_attachment(
        path.read_bytes(),
        maintype="text" if schedule.format == "csv" else "application",
        subtype=subtype,
        filename=attachment,
    )
    with smtplib.SMTP(host, int(port), timeout=SMTP_TIMEOUT_SECONDS) as client:
        client.send_message(message)


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
