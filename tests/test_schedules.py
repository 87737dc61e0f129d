"""Scheduled exports: the API, run times, and delivery to a folder or by email."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from email import message_from_bytes
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiosmtpd.controller import Controller
from conftest import free_port, make_settings, start_client
from sqlalchemy import select

from capture.accounts import create_token
from capture.db import Database, transaction
from capture.models import ExportSchedule, User
from capture.settings import Settings
from reports.schedules import covered_range, next_run, run_due
from web.app import create_app

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
        ({"rep": 10**23}, "rep"),
        ({"team": 10**23}, "team"),
        ({"team": "007"}, "team"),
        ({"target": 123}, "target"),
        ({"bogus": 1}, "bogus"),
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
    assert attachment.get_content_type() == (
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )
    assert attachment.get_payload(decode=True)[:2] == b"PK"


LONDON = ZoneInfo("Europe/London")


def test_next_run_skipped_time_runs_after_gap() -> None:
    # 2026-03-29: London clocks go from 01:00 GMT to 02:00 BST.
    before = datetime(2026, 3, 28, 12, 0, tzinfo=UTC)

    run = next_run(before, "daily", LONDON)

    assert run == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)
    assert run.astimezone(LONDON).hour == 2


def test_next_run_repeated_time_runs_once() -> None:
    # 2026-10-25: London clocks go from 02:00 BST back to 01:00 GMT, so
    # 01:00 local happens at 00:00 UTC and again at 01:00 UTC.
    before = datetime(2026, 10, 24, 12, 0, tzinfo=UTC)

    first = next_run(before, "daily", LONDON)
    second = next_run(first, "daily", LONDON)

    assert first == datetime(2026, 10, 25, 0, 0, tzinfo=UTC)
    assert second == datetime(2026, 10, 26, 1, 0, tzinfo=UTC)


def test_next_run_skipped_half_hour_los_angeles() -> None:
    before = datetime(2026, 3, 8, 8, 0, tzinfo=UTC)

    run = next_run(before, "daily", LOS_ANGELES, time(2, 30))

    assert run == datetime(2026, 3, 8, 10, 30, tzinfo=UTC)  # 03:30 PDT


def test_next_run_weekly_friday_evening() -> None:
    monday = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)

    run = next_run(monday, "weekly", LOS_ANGELES, time(17, 30), weekday=4)

    assert run == datetime(2026, 12, 5, 1, 30, tzinfo=UTC)  # Fri 17:30 PST
    assert run.astimezone(LOS_ANGELES).weekday() == 4


def test_next_run_weekly_across_dst() -> None:
    # Sunday 2026-11-01 02:00 PDT becomes 01:00 PST.
    before = datetime(2026, 10, 26, 20, 0, tzinfo=UTC)  # Mon 13:00 PDT

    first = next_run(before, "weekly", LOS_ANGELES, time(9, 0), weekday=0)

    assert first == datetime(2026, 11, 2, 17, 0, tzinfo=UTC)  # Mon 09:00 PST


async def _created(client: Any, headers: dict[str, str], **fields: Any) -> Any:
    response = await client.post(
        "/api/v1/export-schedules", json=_schedule(**fields), headers=headers
    )
    assert response.status == 201, await response.text()
    return await response.json()


async def test_schedule_api_time_and_weekday(client: Any, database: Database) -> None:
    omar = await _token(database, "omar@demo.touchline.test")

    body = await _created(
        client, omar, frequency="weekly", weekday="friday", time="17:30"
    )

    assert body["time"] == "17:30"
    assert body["weekday"] == "friday"
    assert body["paused"] is False
    assert body["last_outcome"] is None
    local = datetime.fromisoformat(body["next_run_at"]).astimezone(LOS_ANGELES)
    assert (local.weekday(), local.hour, local.minute) == (4, 17, 30)


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"time": "25:00"}, "time", "HH:MM"),
        ({"time": "7pm"}, "time", "HH:MM"),
        ({"weekday": "friday"}, "weekday", "weekly"),
        ({"frequency": "weekly", "weekday": "someday"}, "weekday", "monday"),
        ({"report": "summary", "rep": 2}, "rep", "activities and calls"),
        ({"rep": 99999}, "rep", "not found"),
        ({"team": "East"}, "team", "not an id"),
        ({"team": 99999}, "team", "not found"),
        ({"target": "../etc"}, "target", "outside the export folder"),
        ({"target": "/etc/cron.d"}, "target", "outside the export folder"),
        ({"target": "daily/../../etc"}, "target", "outside the export folder"),
        ({"target": "daily\\..\\etc"}, "target", "outside the export folder"),
        ({"target": ".hidden"}, "target", "not a folder name"),
        ({"target": "a/b/c/d/e"}, "target", "not a folder name"),
        ({"target": ""}, "target", "missing"),
        ({"destination": "ftp"}, "destination", "folder, email"),
        ({"format": "pdf"}, "format", "csv, xlsx"),
    ],
)
async def test_schedule_api_rejects_with_reason(
    client: Any, database: Database, fields: dict[str, Any], field: str, words: str
) -> None:
    omar = await _token(database, "omar@demo.touchline.test")

    response = await client.post(
        "/api/v1/export-schedules", json=_schedule(**fields), headers=omar
    )
    listed = await (await client.get("/api/v1/export-schedules", headers=omar)).json()

    body = await response.json()
    assert response.status == 400
    assert body["field"] == field
    assert words in body["error"]
    assert listed["items"] == []


async def test_schedule_api_nested_folder_accepted(
    client: Any, database: Database
) -> None:
    omar = await _token(database, "omar@demo.touchline.test")

    body = await _created(client, omar, target="sales/west.daily")

    assert body["target"] == "sales/west.daily"


async def test_paused_schedule_not_run(
    client: Any, database: Database, settings: Settings
) -> None:
    omar = await _token(database, "omar@demo.touchline.test")
    created = await _created(client, omar)
    due = await _due_now(database)

    paused = await client.post(
        f"/api/v1/export-schedules/{created['id']}/pause", headers=omar
    )
    ran = await run_due(database, settings, due + timedelta(days=3))

    assert paused.status == 200
    assert (await paused.json())["paused"] is True
    assert (await paused.json())["next_run_at"] is None
    assert ran == 0
    assert not (settings.exports_dir / "daily-activities").exists()


async def test_resume_skips_missed_runs(
    client: Any, database: Database, settings: Settings
) -> None:
    omar = await _token(database, "omar@demo.touchline.test")
    created = await _created(client, omar)
    async with transaction(database.writes) as session:
        schedule = await session.get(ExportSchedule, created["id"])
        assert schedule is not None
        schedule.paused = True
        schedule.next_run_at = datetime(2020, 1, 1, 9, 0, tzinfo=UTC)

    resumed = await client.post(
        f"/api/v1/export-schedules/{created['id']}/resume", headers=omar
    )

    body = await resumed.json()
    assert resumed.status == 200
    assert body["paused"] is False
    assert datetime.fromisoformat(body["next_run_at"]) > datetime.now(UTC)


async def test_run_now_keeps_next_run(
    client: Any, database: Database, settings: Settings
) -> None:
    omar = await _token(database, "omar@demo.touchline.test")
    created = await _created(client, omar, format="xlsx", target="now/here")

    response = await client.post(
        f"/api/v1/export-schedules/{created['id']}/run", headers=omar
    )

    body = await response.json()
    assert response.status == 200
    assert body["last_outcome"] == "succeeded"
    assert body["last_error"] is None
    assert body["next_run_at"] == created["next_run_at"]
    folder = settings.exports_dir / "now" / "here"
    files = sorted(path.name for path in folder.iterdir())
    assert len(files) == 1
    assert files[0].startswith("activities_")
    assert files[0].endswith(".xlsx")
    assert (folder / files[0]).read_bytes()[:2] == b"PK"


async def test_run_now_rep_forbidden(client: Any, database: Database) -> None:
    omar = await _token(database, "omar@demo.touchline.test")
    ana = await _token(database, "ana@demo.touchline.test")
    created = await _created(client, omar)

    responses = [
        await client.post(
            f"/api/v1/export-schedules/{created['id']}/{action}", headers=ana
        )
        for action in ("run", "pause", "resume")
    ]
    deleted = await client.delete(
        f"/api/v1/export-schedules/{created['id']}", headers=ana
    )

    assert [response.status for response in responses] == [403, 403, 403]
    assert deleted.status == 403


async def test_run_now_unknown_schedule(client: Any, database: Database) -> None:
    omar = await _token(database, "omar@demo.touchline.test")

    response = await client.post("/api/v1/export-schedules/999/run", headers=omar)

    assert response.status == 404
    assert (await response.json())["field"] == "id"


async def test_symlink_out_of_export_folder_refused(
    client: Any, database: Database, settings: Settings, tmp_path: Path
) -> None:
    omar = await _token(database, "omar@demo.touchline.test")
    outside = tmp_path / "outside"
    outside.mkdir()
    settings.exports_dir.mkdir(parents=True)
    (settings.exports_dir / "linked").symlink_to(outside)
    created = await _created(client, omar, target="linked")

    response = await client.post(
        f"/api/v1/export-schedules/{created['id']}/run", headers=omar
    )

    body = await response.json()
    assert body["last_outcome"] == "failed"
    assert "outside the export folder" in body["last_error"]
    assert list(outside.iterdir()) == []


async def test_failed_run_leaves_no_partial_file(
    client: Any, database: Database, settings: Settings
) -> None:
    omar = await _token(database, "omar@demo.touchline.test")
    created = await _created(client, omar)
    async with transaction(database.writes) as session:
        omar_user = await session.get(User, created["created_by"])
        assert omar_user is not None
        omar_user.active = False

    failed = await run_due(database, settings, await _due_now(database))

    async with database.reads() as session:
        schedule = await session.get(ExportSchedule, created["id"])
    assert failed == 1
    assert schedule is not None
    assert "no longer active" in (schedule.last_error or "")
    folder = settings.exports_dir / "daily-activities"
    assert list(folder.iterdir()) == []


async def test_export_dir_setting_used(
    aiohttp_client: Any,
    database: Database,
    demo: None,
    tmp_path: Path,
    database_url: str,
) -> None:
    exports = tmp_path / "shared-exports"
    settings = make_settings(tmp_path / "data", database_url, export_dir=str(exports))
    client = await start_client(aiohttp_client, create_app(settings, run_worker=False))
    omar = await _token(database, "omar@demo.touchline.test")
    created = await _created(client, omar, format="csv", target="ops")

    await client.post(f"/api/v1/export-schedules/{created['id']}/run", headers=omar)

    written = list((exports / "ops").iterdir())
    assert len(written) == 1
    assert written[0].read_bytes().startswith(b"\xef\xbb\xbfactivity_id")
    assert not (tmp_path / "data" / "exports").exists()


async def test_email_schedule_from_api(
    aiohttp_client: Any,
    database: Database,
    demo: None,
    tmp_path: Path,
    database_url: str,
    smtp_server: tuple[Inbox, int],
) -> None:
    inbox, port = smtp_server
    settings = make_settings(
        tmp_path / "data", database_url, export_smtp_relay=f"127.0.0.1:{port}"
    )
    client = await start_client(aiohttp_client, create_app(settings, run_worker=False))
    omar = await _token(database, "omar@demo.touchline.test")
    created = await _created(
        client, omar, report="calls", destination="email", target="ops@example.com"
    )

    response = await client.post(
        f"/api/v1/export-schedules/{created['id']}/run", headers=omar
    )

    assert (await response.json())["last_outcome"] == "succeeded"
    [raw] = inbox.messages
    message = message_from_bytes(raw)
    assert message["To"] == "ops@example.com"
    assert message["Subject"].startswith("Touchline calls export ")
    [attachment] = [part for part in message.walk() if part.get_filename()]
    assert attachment.get_content_type() == "text/csv"
    payload = attachment.get_payload(decode=True)
    assert payload.startswith(b"\xef\xbb\xbfactivity_id,call_sid")


async def test_email_refused_recipient_recorded(
    aiohttp_client: Any,
    database: Database,
    demo: None,
    tmp_path: Path,
    database_url: str,
) -> None:
    settings = make_settings(
        tmp_path / "data", database_url, export_smtp_relay=f"127.0.0.1:{free_port()}"
    )
    client = await start_client(aiohttp_client, create_app(settings, run_worker=False))
    omar = await _token(database, "omar@demo.touchline.test")
    created = await _created(
        client, omar, destination="email", target="ops@example.com"
    )

    response = await client.post(
        f"/api/v1/export-schedules/{created['id']}/run", headers=omar
    )

    body = await response.json()
    assert body["last_outcome"] == "failed"
    assert "ConnectionRefusedError" in body["last_error"]


async def test_email_without_relay_fails_clearly(
    client: Any, database: Database, settings: Settings
) -> None:
    async with transaction(database.writes) as session:
        session.add(
            ExportSchedule(
                report="activities",
                format="csv",
                frequency="daily",
                destination="email",
                target="ops@example.com",
                created_by=1,
                next_run_at=datetime(2026, 11, 30, 9, 0, tzinfo=UTC),
            )
        )

    ran = await run_due(database, settings, datetime(2026, 11, 30, 9, 0, tzinfo=UTC))

    async with database.reads() as session:
        schedule = await session.scalar(select(ExportSchedule))
    assert ran == 1
    assert schedule is not None
    assert "set export_smtp_relay" in (schedule.last_error or "")


class RejectingInbox(Inbox):
    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        return f"550 5.1.1 <{address}>: Recipient address rejected"


async def test_email_rejected_address_not_logged(
    aiohttp_client: Any,
    database: Database,
    demo: None,
    tmp_path: Path,
    database_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    port = free_port()
    controller = Controller(RejectingInbox(), hostname="127.0.0.1", port=port)
    controller.start()
    settings = make_settings(
        tmp_path / "data", database_url, export_smtp_relay=f"127.0.0.1:{port}"
    )
    client = await start_client(aiohttp_client, create_app(settings, run_worker=False))
    omar = await _token(database, "omar@demo.touchline.test")
    created = await _created(
        client, omar, destination="email", target="gone@example.com"
    )

    try:
        response = await client.post(
            f"/api/v1/export-schedules/{created['id']}/run", headers=omar
        )
        body = await response.json()
    finally:
        controller.stop()

    assert body["last_outcome"] == "failed"
    assert "550" in body["last_error"]
    assert "rejected the target address" in body["last_error"]
    assert "gone@example.com" not in body["last_error"]
    assert "gone@example.com" not in caplog.text
    assert "scheduled export" in caplog.text
