"""Migrations over existing data, and models that match them, on both databases."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from alembic import command
from conftest import PG_ADMIN_DSN, _pg_dsn
from sqlalchemy import create_engine, text

from capture import migrate
from capture.db import sync_url


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


def test_models_match_migrations(empty_database: str) -> None:
    migrate.upgrade(empty_database)

    # Raises when the models hold a table, column or index the migrations lack.
    command.check(migrate.alembic_config(empty_database))


def test_migration_0011_sums_months(empty_database: str) -> None:
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

    migrate.upgrade(empty_database)
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
