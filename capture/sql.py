"""Statements that differ between SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Column, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def _insert(session: Session, table: Table) -> Any:
    dialect = session.get_bind().dialect.name
    module = postgresql if dialect == "postgresql" else sqlite
    return module.insert(table)


def insert_ignore(session: Session, table: Table, values: dict[str, Any]) -> bool:
    """Insert a row unless it breaks a unique constraint; return True if inserted."""
    # RETURNING, not rowcount: on PostgreSQL through psycopg, rowcount was 1
    # for a row that the conflict skipped (seen in tests/test_jobs.py).
    statement = (
        _insert(session, table)
        .values(**values)
        .on_conflict_do_nothing()
        .returning(*table.primary_key.columns)
    )
    return session.execute(statement).first() is not None


def insert_returning(
    session: Session,
    table: Table,
    rows: list[dict[str, Any]],
    key: tuple[Column[Any], ...],
) -> set[tuple[Any, ...]]:
    """Insert rows, skipping unique conflicts; return the keys of rows inserted."""
    if not rows:
        return set()
    # Executemany form: the statement compiles once and is cached, and
    # SQLAlchemy batches the rows into multi-row INSERTs ("insertmanyvalues").
    statement = _insert(session, table).on_conflict_do_nothing().returning(*key)
    result = session.connection().execute(statement, rows)
    return {tuple(row) for row in result}
