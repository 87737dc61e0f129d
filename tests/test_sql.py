"""The writer's statements on the driver: same rows and values as SQLAlchemy's."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import DateTime, bindparam, select, update
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import Session

from capture import sql
from capture.db import Database
from capture.models import CallEvent, CompanyNumber, UTCDateTime, table_of

EVENTS = table_of(CallEvent)
NUMBERS = table_of(CompanyNumber)
MOMENT = datetime(2026, 11, 2, 16, 0, 5, 120, tzinfo=UTC)


@pytest.fixture
def session(database: Database) -> Iterator[Session]:
    with database.batch_sessions()() as session, session.begin():
        yield session


def event_row(sid: str, sequence: int, **extra: Any) -> dict[str, Any]:
    row = {
        "call_sid": sid,
        "sequence_number": sequence,
        "status": "ringing",
        "occurred_at": MOMENT + timedelta(seconds=sequence),
        "call_duration": None,
        "received_at": MOMENT,
    }
    row.update(extra)
    return row


def stored_events(session: Session) -> list[tuple[Any, ...]]:
    query = select(
        CallEvent.call_sid, CallEvent.sequence_number, CallEvent.occurred_at
    ).order_by(CallEvent.call_sid, CallEvent.sequence_number)
    return [tuple(row) for row in session.execute(query)]


def test_insert_rows_returns_keys_and_skips_conflicts(session: Session) -> None:
    first = [event_row("CA1", 0), event_row("CA1", 1)]
    inserted = sql.insert_rows(
        session, EVENTS, first, returning=("call_sid", "sequence_number")
    )
    again = [event_row("CA1", 1), event_row("CA2", 0)]

    repeated = sql.insert_rows(
        session,
        EVENTS,
        again,
        returning=("call_sid", "sequence_number"),
        ignore_conflicts=True,
    )

    assert sorted(inserted) == [("CA1", 0), ("CA1", 1)]
    assert repeated == [("CA2", 0)]
    assert stored_events(session) == [
        ("CA1", 0, MOMENT),
        ("CA1", 1, MOMENT + timedelta(seconds=1)),
        ("CA2", 0, MOMENT),
    ]


def test_insert_rows_splits_large_batches(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sql, "MAX_ROWS_PER_INSERT", 3)
    rows = [event_row("CA3", sequence) for sequence in range(8)]

    inserted = sql.insert_rows(
        session, EVENTS, rows, returning=("sequence_number",), ignore_conflicts=True
    )

    assert sorted(number for (number,) in inserted) == list(range(8))
    assert len(stored_events(session)) == 8


def test_insert_rows_converts_other_time_zones_to_utc(session: Session) -> None:
    local = MOMENT.astimezone(timezone(timedelta(hours=-7)))

    sql.insert_rows(session, EVENTS, [event_row("CA4", 0, occurred_at=local)])

    assert stored_events(session) == [("CA4", 0, MOMENT)]


def test_insert_rows_refuses_naive_timestamps(session: Session) -> None:
    naive = MOMENT.replace(tzinfo=None)

    with pytest.raises(ValueError, match="naive datetime"):
        sql.insert_rows(session, EVENTS, [event_row("CA5", 0, occurred_at=naive)])


def test_insert_rows_refuses_rows_that_differ(session: Session) -> None:
    rows = [event_row("CA6", 0), {"call_sid": "CA6", "sequence_number": 1}]

    with pytest.raises(ValueError, match="differ in their columns"):
        sql.insert_rows(session, EVENTS, rows)
    with pytest.raises(KeyError, match="no_such_column"):
        sql.insert_rows(session, EVENTS, [event_row("CA6", 2, no_such_column=1)])


def test_insert_rows_needs_columns_with_python_defaults(session: Session) -> None:
    # CompanyNumber.label has a default that SQLAlchemy supplies in Python,
    # which a plain INSERT would leave NULL.
    with pytest.raises(ValueError, match="label"):
        sql.insert_rows(session, NUMBERS, [{"phone": "+14155550100"}])


def test_insert_rows_of_nothing_does_nothing(session: Session) -> None:
    assert sql.insert_rows(session, EVENTS, [], returning=("call_sid",)) == []
    assert stored_events(session) == []


def test_insert_after_commit_joins_new_transaction(database: Database) -> None:
    """Rows written after a commit belong to the next transaction, so a
    rollback of that transaction removes them."""
    with database.batch_sessions()() as session:
        sql.insert_rows(session, EVENTS, [event_row("CA1", 0)])
        session.commit()
        sql.insert_rows(session, EVENTS, [event_row("CA2", 0)])
        session.rollback()
        sql.insert_rows(session, EVENTS, [event_row("CA3", 0)])
        session.commit()

    with database.batch_sessions()() as session:
        stored = [sid for sid, _, _ in stored_events(session)]

    assert stored == ["CA1", "CA3"]


def test_prepared_select_with_value_lists(session: Session) -> None:
    rows = [event_row(sid, 0) for sid in ("CA7", "CA8", "CA9")]
    sql.insert_rows(session, EVENTS, rows)
    prepared = sql.Prepared(
        lambda dialect: select(CallEvent.call_sid, CallEvent.occurred_at).where(
            sql.one_of(dialect, CallEvent.call_sid, "sids")
        )
    )
    dialect = session.get_bind().dialect.name

    found = prepared.rows(session, {"sids": sql.values_of(dialect, ["CA7", "CA9"])})
    none = prepared.rows(session, {"sids": sql.values_of(dialect, [])})

    assert sorted((sid, sql.utc(moment)) for sid, moment in found) == [
        ("CA7", MOMENT),
        ("CA9", MOMENT),
    ]
    assert none == []


def test_prepared_update_of_many_rows(session: Session) -> None:
    sql.insert_rows(session, EVENTS, [event_row("CA10", n) for n in range(3)])
    later = MOMENT + timedelta(hours=1)
    prepared = sql.Prepared(
        lambda dialect: (
            update(EVENTS)
            .where(
                EVENTS.c.call_sid == bindparam("sid"),
                EVENTS.c.sequence_number == bindparam("number"),
            )
            .values(status="completed", occurred_at=bindparam("moment"))
        )
    )

    prepared.run_many(
        session,
        [
            {"sid": "CA10", "number": 0, "moment": later},
            {"sid": "CA10", "number": 2, "moment": later},
        ],
    )

    statuses = session.execute(
        select(CallEvent.sequence_number, CallEvent.status, CallEvent.occurred_at)
        .where(CallEvent.call_sid == "CA10")
        .order_by(CallEvent.sequence_number)
    ).all()
    assert [tuple(row) for row in statuses] == [
        (0, "completed", later),
        (1, "ringing", MOMENT + timedelta(seconds=1)),
        (2, "completed", later),
    ]


def test_utc_reads_both_drivers_forms() -> None:
    assert sql.utc("2026-11-02 16:00:05.000120") == MOMENT
    assert sql.utc(MOMENT.replace(tzinfo=None)) == MOMENT
    assert sql.utc_or_none(None) is None
    with pytest.raises(TypeError):
        sql.utc(17)


@pytest.mark.parametrize(
    "moment",
    [
        MOMENT,
        datetime(2000, 1, 1, tzinfo=UTC),
        datetime(2999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(
            2026, 3, 29, 1, 30, 7, tzinfo=timezone(timedelta(hours=5, minutes=30))
        ),
    ],
)
def test_sqlite_timestamps_bind_as_sqlalchemy_writes_them(moment: datetime) -> None:
    dialect = sqlite.dialect()
    fast = UTCDateTime().bind_processor(dialect)
    standard = DateTime().dialect_impl(dialect).bind_processor(dialect)
    assert fast is not None and standard is not None

    assert fast(moment) == standard(moment.astimezone(UTC).replace(tzinfo=None))


async def test_prepared_and_insert_on_both_drivers(database: Database) -> None:
    # The writer's driver (pysqlite, psycopg) and the pages' async driver
    # (aiosqlite, asyncpg) write parameters differently. A statement compiled
    # for one must not be reused for the other.
    prepared = sql.Prepared(
        lambda dialect: select(CallEvent.call_sid).where(
            sql.one_of(dialect, CallEvent.call_sid, "sids")
        )
    )

    def insert_and_read(session: Session, sid: str) -> list[tuple[Any, ...]]:
        sql.insert_rows(session, EVENTS, [event_row(sid, 0)])
        dialect = session.get_bind().dialect.name
        return prepared.rows(session, {"sids": sql.values_of(dialect, [sid])})

    with database.batch_sessions()() as session, session.begin():
        from_writer = insert_and_read(session, "CA20")
    async with database.writes() as session, session.begin():
        from_pages = await session.run_sync(insert_and_read, "CA21")

    assert from_writer == [("CA20",)]
    assert from_pages == [("CA21",)]
