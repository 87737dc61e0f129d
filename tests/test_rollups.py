"""Per-rep daily touch counts kept by the webhook writer."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from conftest import post_signed
from sqlalchemy import select
from twilio_params import call_status, inbound_sms, new_sid

from capture import rollups
from capture.db import Database
from capture.demo_data import CUSTOMERS, ORGANISATION_NUMBER, REPS
from capture.models import TouchDay, User
from capture.settings import Settings

ANA = REPS[0]
HARBOR = CUSTOMERS[0]
# 00:05 on 2 November in Los Angeles, the tests' organisation time zone.
AFTER_MIDNIGHT = datetime(2026, 11, 2, 8, 5, tzinfo=UTC)
# 23:55 on 1 November there.
BEFORE_MIDNIGHT = datetime(2026, 11, 2, 7, 55, tzinfo=UTC)


def _rows(database: Database) -> list[tuple[Any, ...]]:
    with database.batch_sessions()() as session:
        query = (
            select(
                User.email,
                TouchDay.day,
                TouchDay.channel,
                TouchDay.direction,
                TouchDay.touches,
                TouchDay.answered,
                TouchDay.talk_seconds,
            )
            .join(User, User.id == TouchDay.rep_id)
            .order_by(TouchDay.day, TouchDay.channel, TouchDay.direction)
        )
        return [tuple(row) for row in session.execute(query)]


def _rebuilt(database: Database, settings: Settings) -> list[tuple[Any, ...]]:
    with database.batch_sessions()() as session, session.begin():
        rollups.rebuild(session, settings.zone)
    return _rows(database)


async def _post(client: Any, path: str, params: dict[str, str]) -> None:
    response = await post_signed(client, path, params)
    assert response.status in (200, 204), await response.text()


async def test_late_event_moves_call_day(
    client: Any, database: Database, settings: Settings
) -> None:
    sid = new_sid("CA")
    completed = call_status(
        sid,
        "completed",
        3,
        caller=ANA.phone,
        called=HARBOR.phone,
        duration=125,
        at=AFTER_MIDNIGHT,
    )
    initiated = call_status(
        sid,
        "initiated",
        0,
        caller=ANA.phone,
        called=HARBOR.phone,
        at=BEFORE_MIDNIGHT,
    )

    await _post(client, "/twilio/voice/status", completed)
    first = _rows(database)
    await _post(client, "/twilio/voice/status", initiated)
    await _post(client, "/twilio/voice/status", completed)
    moved = _rows(database)

    assert first == [(ANA.email, date(2026, 11, 2), "call", "outbound", 1, 1, 125)]
    assert moved == [(ANA.email, date(2026, 11, 1), "call", "outbound", 1, 1, 125)]
    assert _rebuilt(database, settings) == moved


async def test_duplicate_sms_counted_once(
    client: Any, database: Database, settings: Settings
) -> None:
    sid = new_sid("SM")
    sms = inbound_sms(sid, HARBOR.phone, ORGANISATION_NUMBER, "hello")

    await _post(client, "/twilio/sms", sms)
    await _post(client, "/twilio/sms", sms)
    counted = _rows(database)

    assert len(counted) == 1
    assert counted[0][2:5] == ("sms", "inbound", 1)
    assert _rebuilt(database, settings) == counted


async def test_unanswered_call_has_no_talk_time(
    client: Any, database: Database, settings: Settings
) -> None:
    sid = new_sid("CA")
    ringing = call_status(sid, "ringing", 1, caller=ANA.phone, called=HARBOR.phone)
    missed = call_status(
        sid, "no-answer", 2, caller=ANA.phone, called=HARBOR.phone, duration=0
    )

    await _post(client, "/twilio/voice/status", ringing)
    await _post(client, "/twilio/voice/status", missed)
    counted = _rows(database)

    assert [row[4:] for row in counted] == [(1, 0, 0)]
    assert _rebuilt(database, settings) == counted
