"""Migrations over existing data, and models that match them, on both databases."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from alembic import command
from conftest import PG_ADMIN_DSN, _pg_dsn
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from capture import migrate
from capture.access import Viewer
from capture.db import Database, sync_url
from capture.models import Activity, Customer, Deal
from transcripts.search import SearchFilters, search


async def _admin(statement: str) -> None:
    connection = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    name = f"touchline_migrate_{uuid.uuid4().hex[:8]}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    yield _pg_dsn(name)
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


TABLES = {
    "sqlite": "SELECT name FROM sqlite_master WHERE type = 'table'",
    "postgresql": "SELECT tablename FROM pg_tables WHERE schemaname = 'public'",
}


def test_migration_0002_fills_existing_users(empty_database: str) -> None:
    migrate.upgrade(empty_database, "0001")
    engine = create_engine(sync_url(empty_database))
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO users (email, name, role, active, created_at) "
                "VALUES ('old@example.com', 'Old', 'rep', true, '2026-01-01')"
            )
        )

    migrate.upgrade(empty_database)
    with engine.connect() as connection:
        row = connection.execute(
            text("SELECT locale, session_version FROM users")
        ).one()
        listed = connection.execute(text(TABLES[engine.dialect.name]))
        tables = {name for (name,) in listed}
    command.downgrade(migrate.alembic_config(empty_database), "0001")
    command.upgrade(migrate.alembic_config(empty_database), "head")
    engine.dispose()

    assert row.locale == "en"
    assert row.session_version == 0
    assert {"audit_events", "login_throttles"} <= tables


def test_migration_0003_keeps_customers(empty_database: str) -> None:
    migrate.upgrade(empty_database, "0002")
    engine = create_engine(sync_url(empty_database))
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO customers (name, status, created_at) "
                "VALUES ('Harbor Freight Co', 'active', '2026-01-01')"
            )
        )

    migrate.upgrade(empty_database)
    with engine.connect() as connection:
        row = connection.execute(
            text("SELECT name, judgement, expected_amount_minor FROM customers")
        ).one()
        listed = connection.execute(text(TABLES[engine.dialect.name]))
        tables = {name for (name,) in listed}
    command.downgrade(migrate.alembic_config(empty_database), "0002")
    command.upgrade(migrate.alembic_config(empty_database), "head")
    engine.dispose()

    assert tuple(row) == ("Harbor Freight Co", None, None)
    assert {"custom_fields", "custom_field_values", "milestones"} <= tables
    assert "customer_changes" in tables


def _insert_email(connection: Any, number: int, text_body: str, html: str) -> None:
    connection.execute(
        text(
            "INSERT INTO activities (id, external_key, channel, direction, "
            "occurred_at, summary, automatic, created_at) VALUES (:id, :key, "
            "'email', 'inbound', '2026-11-02 10:00:00', 'Quote', false, "
            "'2026-11-02 10:00:00')"
        ),
        {"id": number, "key": f"email:{number}"},
    )
    connection.execute(
        text(
            "INSERT INTO emails (id, activity_id, message_key, message_id, "
            "thread_key, subject_key, subject, from_address, from_name, "
            "to_addresses, cc_addresses, text_body, html_body, source, "
            "received_at) VALUES (:id, :id, :key, '', :key, 'quote', :subject, "
            "'ops@harbor.example', '', '', '', :text_body, :html, 'smtp', "
            "'2026-11-02 10:00:00')"
        ),
        {
            "id": number,
            "key": f"{number:064d}",
            "subject": f"Quote {number} 报价",
            "text_body": text_body,
            "html": html,
        },
    )


async def _email_hits(database_url: str, query: str) -> list[int]:
    database = Database(database_url)
    admin = Viewer(user_id=0, email="", role="admin", team_id=None)
    try:
        async with database.reads() as session:
            hits = await search(session, admin, query, SearchFilters())
    finally:
        await database.dispose()
    return sorted(hit.item_id for hit in hits)


def test_migration_0011_indexes_existing_emails(empty_database: str) -> None:
    migrate.upgrade(empty_database, "0010")
    engine = create_engine(sync_url(empty_database))
    with engine.begin() as connection:
        _insert_email(connection, 1, "the pallet count is final", "")
        _insert_email(connection, 2, "", "<p>pallet <b>delivery</b>&amp;合同</p>")
        _insert_email(connection, 3, "nothing here", "<p>pallet</p>")

    migrate.upgrade(empty_database)
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT id, html_text FROM emails"))
        stored = {email_id: html_text for email_id, html_text in rows}
    pallet = asyncio.run(_email_hits(empty_database, "pallet"))
    chinese = asyncio.run(_email_hits(empty_database, "合同"))
    subject = asyncio.run(_email_hits(empty_database, "报价"))
    command.downgrade(migrate.alembic_config(empty_database), "0010")
    command.upgrade(migrate.alembic_config(empty_database), "head")
    again = asyncio.run(_email_hits(empty_database, "pallet"))
    engine.dispose()

    assert stored == {1: "", 2: "pallet delivery&合同", 3: ""}
    assert pallet == [1, 2]
    assert chinese == [2]
    assert subject == [1, 2, 3]
    assert again == [1, 2]


def test_models_match_migrations(empty_database: str) -> None:
    migrate.upgrade(empty_database)

    # Raises when the models hold a table, column or index the migrations lack.
    command.check(migrate.alembic_config(empty_database))


def test_migration_0013_sums_months(empty_database: str) -> None:
    migrate.upgrade(empty_database, "0010")
    engine = create_engine(sync_url(empty_database))
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO users (email, name, role, active, created_at, locale,"
                " session_version)"
                " VALUES ('rep@example.com', 'Rep', 'rep', true, '2026-01-01', 'en', 0)"
            )
        )
        connection.execute(
            text(
                "INSERT INTO touch_days (rep_id, day, channel, direction, touches,"
                " answered, talk_seconds) VALUES"
                " (1, '2026-10-31', 'call', 'outbound', 2, 1, 60),"
                " (1, '2026-11-01', 'call', 'outbound', 3, 2, 90),"
                " (1, '2026-11-30', 'call', 'outbound', 1, 1, 10),"
                " (1, '2026-11-30', 'sms', 'inbound', 4, 0, 0)"
            )
        )

    migrate.upgrade(empty_database, "0013")
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT month, channel, touches, answered, talk_seconds"
                " FROM touch_months ORDER BY month, channel"
            )
        ).all()
    command.downgrade(migrate.alembic_config(empty_database), "0010")
    command.upgrade(migrate.alembic_config(empty_database), "head")
    engine.dispose()

    assert [(str(row[0]), *row[1:]) for row in rows] == [
        ("2026-10-01", "call", 2, 1, 60),
        ("2026-11-01", "call", 4, 3, 100),
        ("2026-11-01", "sms", 4, 0, 0),
    ]


def test_migration_0015_splits_months(empty_database: str) -> None:
    migrate.upgrade(empty_database, "0014")
    engine = create_engine(sync_url(empty_database))
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO users (email, name, role, active, created_at, locale,"
                " session_version)"
                " VALUES ('rep@example.com', 'Rep', 'rep', true, '2026-01-01', 'en', 0)"
            )
        )
        connection.execute(
            text(
                "INSERT INTO touch_days (rep_id, day, channel, direction, touches,"
                " answered, talk_seconds) VALUES"
                " (1, '2026-10-31', 'call', 'outbound', 2, 1, 60),"
                " (1, '2026-11-01', 'call', 'outbound', 3, 2, 90),"
                " (1, '2026-11-02', 'call', 'inbound', 1, 1, 10),"
                " (1, '2026-11-02', 'sms', 'inbound', 4, 0, 0),"
                " (1, '2026-11-03', 'mms', 'outbound', 1, 0, 0),"
                " (1, '2026-11-04', 'email', 'outbound', 5, 0, 0),"
                " (1, '2026-11-30', 'email', 'inbound', 6, 0, 0),"
                " (1, '2026-11-30', 'meeting', 'outbound', 7, 0, 0)"
            )
        )

    migrate.upgrade(empty_database, "0015")
    query = (
        "SELECT month, touches, calls_made, calls_received, sms_sent, sms_received,"
        " emails_sent, emails_received, answered, talk_seconds"
        " FROM touch_months ORDER BY month"
    )
    with engine.connect() as connection:
        rows = connection.execute(text(query)).all()
    command.downgrade(migrate.alembic_config(empty_database), "0014")
    with engine.connect() as connection:
        restored = connection.execute(
            text(
                "SELECT month, channel, direction, touches FROM touch_months"
                " ORDER BY month, channel, direction"
            )
        ).all()
    command.upgrade(migrate.alembic_config(empty_database), "head")
    engine.dispose()

    assert [(str(row[0]), *row[1:]) for row in rows] == [
        ("2026-10-01", 2, 2, 0, 0, 0, 0, 0, 1, 60),
        ("2026-11-01", 27, 3, 1, 1, 4, 5, 6, 3, 100),
    ]
    assert [(str(row[0]), *row[1:]) for row in restored] == [
        ("2026-10-01", "call", "outbound", 2),
        ("2026-11-01", "call", "inbound", 1),
        ("2026-11-01", "call", "outbound", 3),
        ("2026-11-01", "email", "inbound", 6),
        ("2026-11-01", "email", "outbound", 5),
        ("2026-11-01", "meeting", "outbound", 7),
        ("2026-11-01", "mms", "outbound", 1),
        ("2026-11-01", "sms", "inbound", 4),
    ]


def test_migration_0014_fills_second_win(empty_database: str) -> None:
    migrate.upgrade(empty_database, "0013")
    engine = create_engine(sync_url(empty_database))
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO customers (id, name, status, created_at) VALUES"
                " (1, 'Twice', 'active', '2026-11-01 18:00:00.000000'),"
                " (2, 'Once', 'active', '2026-11-01 18:00:00.000000')"
            )
        )
        # Customer 1 won two deals at its first moment and one three days
        # later; a lost deal never counts.
        connection.execute(
            text(
                "INSERT INTO deals (id, customer_id, title, stage, currency,"
                " expected_minor, signed_minor, created_at, won_at, lost_reason)"
                " VALUES"
                " (1, 1, '', 'won', 'USD', 100, 100, '2026-11-02 18:00:00.000000',"
                " '2026-11-20 18:00:00.000000', ''),"
                " (2, 1, '', 'won', 'USD', 100, 100, '2026-11-02 18:00:00.000000',"
                " '2026-11-20 18:00:00.000000', ''),"
                " (3, 1, '', 'won', 'USD', 100, 100, '2026-11-02 18:00:00.000000',"
                " '2026-11-23 18:00:00.000000', ''),"
                " (4, 1, '', 'lost', 'USD', 100, NULL, '2026-11-02 18:00:00.000000',"
                " '2026-11-21 18:00:00.000000', 'price'),"
                " (5, 2, '', 'won', 'USD', 100, 100, '2026-11-02 18:00:00.000000',"
                " '2026-11-22 18:00:00.000000', '')"
            )
        )
        connection.execute(
            text(
                "INSERT INTO customer_firsts (customer_id, first_won_at,"
                " first_deal_id) VALUES"
                " (1, '2026-11-20 18:00:00.000000', 1),"
                " (2, '2026-11-22 18:00:00.000000', 5)"
            )
        )

    migrate.upgrade(empty_database)
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT customer_id, second_won_at FROM customer_firsts"
                " ORDER BY customer_id"
            )
        ).all()
    command.downgrade(migrate.alembic_config(empty_database), "0013")
    command.upgrade(migrate.alembic_config(empty_database), "head")
    engine.dispose()

    assert str(rows[0][1])[:19] == "2026-11-23 18:00:00"
    assert rows[1][1] is None


def test_upgrade_fills_customer_firsts(empty_database: str) -> None:
    zone = ZoneInfo("America/Los_Angeles")
    migrate.upgrade(empty_database)
    engine = create_engine(sync_url(empty_database))
    # Touches stored before the table existed: it is empty, as after 0013.
    with Session(engine) as session, session.begin():
        customer = Customer(name="Harbor Freight Co")
        session.add(customer)
        session.flush()
        customer_id = customer.id
        session.add(
            Activity(
                external_key="import:first",
                channel="call",
                direction="outbound",
                occurred_at=datetime(2026, 11, 2, 7, 30, tzinfo=UTC),
                customer_id=customer_id,
            )
        )

    migrate.upgrade(empty_database, zone=zone)
    migrate.upgrade(empty_database, zone=zone)
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT customer_id, first_touch_at FROM customer_firsts")
        ).all()
    engine.dispose()

    assert len(rows) == 1
    assert rows[0][0] == customer_id
    assert rows[0][1] is not None


def test_upgrade_fills_firsts_from_won_deals(empty_database: str) -> None:
    zone = ZoneInfo("America/Los_Angeles")
    migrate.upgrade(empty_database)
    engine = create_engine(sync_url(empty_database))
    # A deal won before the table existed, for a customer with no touches.
    # The per-rep summary and the KPI page read its win from customer_firsts.
    won_at = datetime(2026, 11, 10, 18, tzinfo=UTC)
    with Session(engine) as session, session.begin():
        customer = Customer(name="Harbor Freight Co", status="won")
        session.add(customer)
        session.flush()
        customer_id = customer.id
        session.add(
            Deal(
                customer_id=customer_id,
                stage="won",
                currency="USD",
                signed_minor=50000,
                won_at=won_at,
            )
        )

    migrate.upgrade(empty_database, zone=zone)
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT customer_id, first_won_at, signed_minor FROM customer_firsts")
        ).all()
    engine.dispose()

    assert len(rows) == 1
    assert rows[0][0] == customer_id
    assert rows[0][1] is not None
    assert rows[0][2] == 50000
