"""Database engine and sessions for SQLite (aiosqlite) and PostgreSQL (asyncpg)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import NullPool

log = logging.getLogger(__name__)

# SQLite waits this long for a lock held by another connection before it
# reports "database is locked".
SQLITE_BUSY_TIMEOUT_MS = 10_000


def async_url(database_url: str) -> URL:
    """Return `database_url` with the async driver of its database."""
    url = make_url(database_url)
    backend = url.get_backend_name()
    if backend == "sqlite":
        return url.set(drivername="sqlite+aiosqlite")
    if backend == "postgresql":
        return url.set(drivername="postgresql+asyncpg")
    raise ValueError(f"unsupported database {backend!r}; use sqlite or postgresql")


def sync_url(database_url: str) -> URL:
    """Return `database_url` with a synchronous driver, for Alembic."""
    url = make_url(database_url)
    backend = url.get_backend_name()
    if backend == "sqlite":
        return url.set(drivername="sqlite")
    if backend == "postgresql":
        return url.set(drivername="postgresql+asyncpg")
    raise ValueError(f"unsupported database {backend!r}; use sqlite or postgresql")


def create_engine(
    database_url: str, *, immediate: bool = False, **options: Any
) -> AsyncEngine:
    """Create the async engine; SQLite gets WAL, foreign keys and a busy timeout.

    With `immediate`, SQLite transactions start with BEGIN IMMEDIATE, which
    takes the write lock up front: writers then queue on the busy timeout
    instead of failing when a read lock cannot be upgraded. Readers keep a
    deferred BEGIN so that a long read never blocks writers.
    """
    url = async_url(database_url)
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(url, immediate, **options)
    options.setdefault("pool_pre_ping", True)
    return create_async_engine(url, **options)


def _sqlite_engine(url: URL, immediate: bool, **options: Any) -> AsyncEngine:
    if url.database and url.database != ":memory:":
        from pathlib import Path

        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    options.setdefault("poolclass", NullPool)
    engine = create_async_engine(url, **options)
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _configure(dbapi_connection: Any, _record: Any) -> None:
        # pysqlite's own transaction handling breaks SAVEPOINT and defers
        # BEGIN; take control of BEGIN ourselves (SQLAlchemy's documented
        # recipe for aiosqlite).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    begin = "BEGIN IMMEDIATE" if immediate else "BEGIN"

    @event.listens_for(sync_engine, "begin")
    def _begin(connection: Any) -> None:
        connection.exec_driver_sql(begin)

    return engine


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


class Database:
    """The engines of one process: `reads` for queries, `writes` for changes.

    On PostgreSQL both factories share one engine and its pool.
    """

    def __init__(self, database_url: str) -> None:
        self.url = async_url(database_url)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        self.write_engine = create_engine(database_url, immediate=True)
        if self.is_sqlite:
            self.read_engine = create_engine(database_url)
        else:
            self.read_engine = self.write_engine
        self.reads = session_factory(self.read_engine)
        self.writes = session_factory(self.write_engine)

    async def dispose(self) -> None:
        await self.write_engine.dispose()
        if self.read_engine is not self.write_engine:
            await self.read_engine.dispose()


@asynccontextmanager
async def transaction(
    sessions: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """Yield a session inside a transaction that commits on success."""
    async with sessions() as session, session.begin():
        yield session
