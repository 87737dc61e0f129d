"""Scheduled exports: the API, run times, and delivery to a folder or by email."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from email import message_from_bytes
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiosmtpd.controller import Controller
from conftest import free_port, make_settings
from sqlalchemy import select

from capture.accounts import create_token
from capture.db import Database, transaction
from capture.models import ExportSchedule
from capture.settings import Settings
from reports.schedules import covered_range, next_run, run_due

LOS_ANGELES = ZoneInfo("America/Los_Angeles")


async def _token(database: Database, email: str) -> dict[str, str]:
    async with transaction(database.writes) as session:
        secret, _ = await create_token(session, email)
    return {"Authorization": f"Bearer {secret}"}


def _schedule(**fields: Any) -> dict[str, Any]:
    return {
        "report": "activities",
        "format": "csv",
        "frequency": "daily",
        "destination": "folder",
        "target": "daily-activities",
        **fields,
    }


def test_next_run_daily_across_dst() -> None:
    before = datetime(2026, 3, 8, 8, 0, tzinfo=UTC)  # 00:00 PST on the DST day

    first = next_run(before, "daily", LOS_ANGELES)
    second = next_run(first, "daily", LOS_ANGELES)

    assert first == datetime(2026, 3, 8, 9, 0, tzinfo=UTC)  # 01:00 PST
    assert second == datetime(2026, 3, 9, 8, 0, tzinfo=UTC)  # 01:00 PDT


def test_next_run_weekly_is_monday() -> None:
    sunday_night = datetime(2026, 11, 30, 7, 59, tzinfo=UTC)  # Sun 23:59 PST

    run = next_run(sunday_night, "weekly", LOS_ANGELES)

    assert run == datetime(2026, 11, 30, 9, 0, tzinfo=UTC)  # Mon 01:00 PST
    assert run.astimezone(LOS_ANGELES).weekday() == 0


def test_weekly_covers_monday_to_sunday() -> None:
    run = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)

    span = covered_range(run, "weekly", LOS_ANGELES)

    assert (span.first.isoformat(), span.last.isoformat()) == (
        "2026-11-23",
        "2026-11-29",
    )


async def test_schedule_api_create_and_list(client: Any, database: Database) -> None:
    omar = await _token(database, "omar@demo.touchline.test")

    created = await client.post(
        "/api/v1/export-schedules", json=_schedule(), headers=omar
    )
    listed = await (await client.get("/api/v1/export-schedules", headers=omar)).json()

    assert created.status == 201, await created.text()
    assert [item["target"] for item in listed["items"]] == ["daily-activities"]
    assert listed["items"][0]["next_run_at"].endswith(("-08:00", "-07:00"))


async def test_schedule_rep_forbidden(client: Any, database: Database) -> None:
    ana = await _token(database, "ana@demo.touchline.test")

    response = await client.post(
        "/api/v1/export-schedules", json=_schedule(), headers=ana
    )

    assert response.status == 403


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"frequency": "hourly"}, "frequency"),
        ({"report": "secrets"}, "report"),
        ({"target": "../etc"}, "target"),
        ({"destination": "email", "target": "ops@example.com"}, "destination"),
    ],
)
async def test_schedule_bad_input_names_field(
    client: Any, database: Database, fields: dict[str, str], field: str
) -> None:
    omar = await _token(database, "omar@demo.touchline.test")

    response = await client.post(
        "/api/v1/export-schedules", json=_schedule(**fields), headers=omar
    )
    listed = await (await client.get("/api/v1/export-schedules", headers=omar)).json()

    assert response.status == 400
    assert (await response.json())["field"] == field
    assert listed["items"] == []


async def _due_now(database: Database) -> datetime:
    async with database.reads() as session:
        schedule = await session.scalar(select(ExportSchedule))
    assert schedule is not None
    return schedule.next_run_at


async def test_due_schedule_writes_folder(
    client: Any, database: Database, settings: Settings
) -> None:
    omar = await _token(database, "omar@demo.touchline.test")
    await client.post("/api/v1/export-schedules", json=_schedule(), headers=omar)
    due = await _due_now(database)

    ran = await run_due(database, settings, due)
    again = await run_due(database, settings, due)

    span = covered_range(due, "daily", settings.zone)
    written = (
        settings.data_dir
        / "exports"
        / "daily-activities"
        / f"activities_{span.first}_{span.last}.csv"
    )
    assert ran == 1
    assert again == 0
    assert written.read_bytes().startswith(b"\xef\xbb\xbfactivity_id,occurred_at")
    async with database.reads() as session:
        schedule = await session.scalar(select(ExportSchedule))
    assert schedule is not None
    assert schedule.last_run_at == due
    assert schedule.last_error is None
    assert schedule.next_run_at > due


class Inbox:
    def __init__(self) -> None:
        self.messages: list[bytes] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope.content)
        return "250 OK"


@pytest.fixture
def smtp_server() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield inbox, port
    controller.stop()


async def test_due_schedule_sends_email(
    database: Database,
    demo: None,
    tmp_path: Path,
    database_url: str,
    smtp_server: tuple[Inbox, int],
) -> None:
    inbox, port = smtp_server
    settings = make_settings(
        tmp_path / "data",
        database_url,
        export_smtp_relay=f"127.0.0.1:{port}",
        export_mail_from="reports@touchline.test",
    )
    async with transaction(database.writes) as session:
        session.add(
            ExportSchedule(
                report="summary",
                format="xlsx",
                frequency="weekly",
                destination="email",
                target="ops@example.com",
                created_by=1,
                next_run_at=datetime(2026, 11, 30, 9, 0, tzinfo=UTC),
            )
        )

    ran = await run_due(database, settings, datetime(2026, 11, 30, 9, 0, tzinfo=UTC))
    await asyncio.sleep(0)

    assert ran == 1
    [raw] = inbox.messages
    message = message_from_bytes(raw)
    assert message["To"] == "ops@example.com"
    assert message["From"] == "reports@touchline.test"
    [attachment] = [part for part in message.walk() if part.get_filename()]
    assert attachment.get_filename() == "summary_2026-11-23_2026-11-29.xlsx"
    assert attachment.get_payload(decode=True)[:2] == b"PK"
