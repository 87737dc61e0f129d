"""Per-rep daily touch counts kept by the webhook writer."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from conftest import post_signed
from sqlalchemy import select
from twilio_params import call_status, inbound_sms, new_sid

from capture import deals, rollups
from capture.db import Database, transaction
from capture.demo_data import CUSTOMERS, ORGANISATION_NUMBER, REPS
from capture.models import Customer, CustomerFirst, TouchDay, TouchMonth, User
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


# 00:05 on 1 November in Los Angeles, a new calendar month there.
MONTH_START = datetime(2026, 11, 1, 7, 5, tzinfo=UTC)
# 23:55 on 31 October there, although already 1 November in UTC.
MONTH_END = datetime(2026, 11, 1, 6, 55, tzinfo=UTC)


def _months(database: Database) -> list[tuple[Any, ...]]:
    with database.batch_sessions()() as session:
        query = (
            select(
                User.email,
                TouchMonth.month,
                *(TouchMonth.__table__.c[name] for name in rollups.MONTH_COUNTS),
            )
            .join(User, User.id == TouchMonth.rep_id)
            .order_by(TouchMonth.month, User.email)
        )
        return [tuple(row) for row in session.execute(query)]


def _firsts(database: Database) -> list[tuple[Any, ...]]:
    with database.batch_sessions()() as session:
        query = select(*CustomerFirst.__table__.columns).order_by(
            CustomerFirst.customer_id
        )
        return [tuple(row) for row in session.execute(query)]


def _rebuild(database: Database, settings: Settings) -> None:
    with database.batch_sessions()() as session, session.begin():
        rollups.rebuild(session, settings.zone)


async def test_late_event_moves_call_month(
    client: Any, database: Database, settings: Settings
) -> None:
    sid = new_sid("CA")
    parties = {"caller": ANA.phone, "called": HARBOR.phone}
    completed = call_status(sid, "completed", 3, duration=95, at=MONTH_START, **parties)
    initiated = call_status(sid, "initiated", 0, at=MONTH_END, **parties)

    await _post(client, "/twilio/voice/status", completed)
    first = _months(database)
    await _post(client, "/twilio/voice/status", initiated)
    await _post(client, "/twilio/voice/status", initiated)
    moved = _months(database)
    incremental = _firsts(database)
    _rebuild(database, settings)

    # touches, calls made and received, SMS sent and received, email sent and
    # received, answered calls, talk seconds
    counts = (1, 1, 0, 0, 0, 0, 0, 1, 95)
    assert first == [(ANA.email, date(2026, 11, 1), *counts)]
    assert moved == [(ANA.email, date(2026, 10, 1), *counts)]
    assert _months(database) == moved
    assert _firsts(database) == incremental


async def test_duplicate_sms_counted_once_per_month(
    client: Any, database: Database, settings: Settings
) -> None:
    sms = inbound_sms(new_sid("SM"), HARBOR.phone, ORGANISATION_NUMBER, "hello")

    await _post(client, "/twilio/sms", sms)
    await _post(client, "/twilio/sms", sms)
    counted = _months(database)
    _rebuild(database, settings)

    assert len(counted) == 1
    assert counted[0][2:] == (1, 0, 0, 0, 1, 0, 0, 0, 0)
    assert _months(database) == counted


async def test_first_touch_follows_late_event(
    client: Any, database: Database, settings: Settings
) -> None:
    sid = new_sid("CA")
    parties = {"caller": ANA.phone, "called": HARBOR.phone}
    completed = call_status(sid, "completed", 3, duration=40, at=MONTH_START, **parties)
    initiated = call_status(sid, "initiated", 0, at=MONTH_END, **parties)

    await _post(client, "/twilio/voice/status", completed)
    before = _customer_first(database, HARBOR.name)
    await _post(client, "/twilio/voice/status", initiated)
    after = _customer_first(database, HARBOR.name)
    incremental = _firsts(database)
    _rebuild(database, settings)

    assert before.first_touch_at == MONTH_START
    assert after.first_touch_at == MONTH_END
    assert after.first_won_at is None
    assert after.touches_to_win is None
    assert _firsts(database) == incremental


async def test_won_deal_sets_customer_first(
    client: Any, database: Database, settings: Settings
) -> None:
    parties = {"caller": ANA.phone, "called": HARBOR.phone}
    early = call_status(
        new_sid("CA"), "completed", 3, duration=30, at=MONTH_END, **parties
    )
    await _post(client, "/twilio/voice/status", early)
    customer_id = _customer_first(database, HARBOR.name).customer_id
    won_at = datetime(2026, 11, 20, 18, tzinfo=UTC)
    async with transaction(database.writes) as session:
        customer = await session.get(Customer, customer_id)
        assert customer is not None
        deal = await deals.create_deal(
            session, customer, {"title": "Pilot", "expected_amount": "900.00"}, "USD"
        )
        await deals.update_deal(
            session,
            deal,
            {"stage": "won", "signed_amount": "800.00", "won_at": won_at.isoformat()},
            settings.zone,
        )
    won = _customer_first(database, HARBOR.name)
    # A touch after the win is no follow-up of it; a late one before it is.
    after_win = call_status(
        new_sid("CA"),
        "completed",
        3,
        duration=20,
        at=won_at + timedelta(days=1),
        **parties,
    )
    late = call_status(
        new_sid("CA"),
        "completed",
        3,
        duration=25,
        at=won_at - timedelta(days=2),
        **parties,
    )
    await _post(client, "/twilio/voice/status", after_win)
    unchanged = _customer_first(database, HARBOR.name)
    await _post(client, "/twilio/voice/status", late)
    counted = _customer_first(database, HARBOR.name)
    incremental = _firsts(database)
    _rebuild(database, settings)

    assert won.first_won_at == won_at
    assert won.signed_minor == 80000
    assert won.touches_to_win == 1
    # 23:55 on 31 October to 10:00 on 20 November, in Los Angeles.
    assert won.cycle_days == 20
    assert unchanged.touches_to_win == 1
    assert counted.touches_to_win == 2
    assert counted.cycle_days == 20
    assert _firsts(database) == incremental


async def test_second_win_kept(
    client: Any, database: Database, settings: Settings
) -> None:
    parties = {"caller": ANA.phone, "called": HARBOR.phone}
    touch = call_status(
        new_sid("CA"), "completed", 3, duration=30, at=MONTH_END, **parties
    )
    await _post(client, "/twilio/voice/status", touch)
    customer_id = _customer_first(database, HARBOR.name).customer_id
    first_at = datetime(2026, 11, 20, 18, tzinfo=UTC)
    # A second deal at the first moment is the same order; a later one is not.
    moments = (first_at, first_at, first_at + timedelta(days=3))
    seconds = []
    for moment in moments:
        async with transaction(database.writes) as session:
            customer = await session.get(Customer, customer_id)
            assert customer is not None
            deal = await deals.create_deal(
                session, customer, {"title": "Order", "expected_amount": "90.00"}, "USD"
            )
            won = {
                "stage": "won",
                "signed_amount": "90.00",
                "won_at": moment.isoformat(),
            }
            await deals.update_deal(session, deal, won, settings.zone)
        seconds.append(_customer_first(database, HARBOR.name).second_won_at)
    incremental = _firsts(database)
    _rebuild(database, settings)

    assert seconds == [None, None, first_at + timedelta(days=3)]
    assert _customer_first(database, HARBOR.name).first_won_at == first_at
    assert _firsts(database) == incremental


def _customer_first(database: Database, name: str) -> Any:
    with database.batch_sessions()() as session:
        query = (
            select(CustomerFirst)
            .join(Customer, Customer.id == CustomerFirst.customer_id)
            .where(Customer.name == name)
        )
        row = session.scalars(query).one()
        session.expunge(row)
        return row
