"""Two writers, as in two web processes, storing callbacks of the same new call."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from email_helpers import ANA, CAPTURE, HARBOR, make_email
from sqlalchemy import func, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from capture.calls import CallStatusEvent, apply_call_statuses
from capture.db import Database, create_sync_engine
from capture.demo_data import CUSTOMERS, REPS
from capture.email_parse import parse_bytes
from capture.emails import IncomingEmail, store_email
from capture.models import Call, CallEvent, Email
from capture.settings import Settings
from capture.sql import lock_keys
from capture.writer import BatchWriter

SID = "CA" + "7" * 32


def status(name: str, sequence: int) -> CallStatusEvent:
    return CallStatusEvent(
        call_sid=SID,
        parent_call_sid=None,
        from_party=REPS[0].phone,
        to_party=CUSTOMERS[0].phone,
        status=name,
        twilio_direction="outbound-api",
        sequence_number=sequence,
        occurred_at=datetime(2026, 11, 2, 16, sequence, tzinfo=UTC),
        call_duration=None,
    )


def wait_for_lock_wait(engine: Engine, seconds: float = 20) -> None:
    """Return once another backend waits on a lock, as the second writer must."""
    deadline = time.monotonic() + seconds
    query = text(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
    )
    while time.monotonic() < deadline:
        # PostgreSQL reads pg_stat_activity once per transaction, so each
        # check runs in a transaction of its own.
        with engine.connect() as connection:
            if connection.execute(query).scalar_one():
                return
        time.sleep(0.05)
    raise AssertionError("the second writer never waited for the first")


async def race(
    database: Database,
    settings: Settings,
    first: Callable[[Session], Any],
    lock_key: str,
    second: Callable[[BatchWriter], Awaitable[Any]],
) -> Any:
    """Run `first` in an open transaction, start `second`, commit once it waits."""
    engine = create_sync_engine(settings.database_url)
    watcher = create_sync_engine(settings.database_url)
    writer = BatchWriter(database.batch_sessions)
    await writer.start()
    try:
        # The first process has created the resource and not committed yet.
        with Session(engine) as session, session.begin():
            lock_keys(session, [lock_key])
            first(session)
            pending = asyncio.ensure_future(second(writer))
            await asyncio.to_thread(wait_for_lock_wait, watcher)
        return await pending
    finally:
        await writer.stop()
        engine.dispose()
        watcher.dispose()


def writer_failures(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.message for r in caplog.records if "failed" in r.message]


async def test_second_writer_waits_for_new_call(
    database: Database,
    settings: Settings,
    demo: None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    if database.is_sqlite:
        pytest.skip("SQLite lets one writing transaction run at a time")
    region = settings.default_region
    caplog.set_level(logging.WARNING, logger="capture.writer")
    initiated = status("initiated", 0)

    result = await race(
        database,
        settings,
        lambda session: apply_call_statuses(session, [initiated], region),
        initiated.lock_key,
        lambda writer: writer.submit(
            lambda session, items: apply_call_statuses(session, items, region),
            status("ringing", 1),
        ),
    )

    assert str(result.outcome) == "updated"
    assert writer_failures(caplog) == []
    async with database.reads() as session:
        calls = await session.scalar(select(func.count()).select_from(Call))
        events = await session.scalar(select(func.count()).select_from(CallEvent))
    assert calls == 1
    assert events == 2


async def test_second_writer_waits_for_same_email(
    database: Database,
    settings: Settings,
    demo: None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    if database.is_sqlite:
        pytest.skip("SQLite lets one writing transaction run at a time")
    caplog.set_level(logging.WARNING, logger="capture.writer")
    message = make_email(
        ANA, HARBOR, "Pallet quote", "The quote follows.", message_id="<q1@demo>"
    )
    message["Cc"] = CAPTURE
    parsed = parse_bytes(message.as_bytes())
    store = functools.partial(
        store_email,
        incoming=IncomingEmail(parsed, (), "mime"),
        capture_domains=("capture.touchline.test",),
    )

    result = await race(
        database,
        settings,
        store,
        f"email:{parsed.message_key}",
        lambda writer: writer.run(store, lock_key=f"email:{parsed.message_key}"),
    )

    assert str(result.outcome) == "duplicate"
    assert writer_failures(caplog) == []
    async with database.reads() as session:
        emails = await session.scalar(select(func.count()).select_from(Email))
    assert emails == 1
