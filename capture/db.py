"""Database engine and sessions for SQLite (aiosqlite) and PostgreSQL (asyncpg)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import sqlalchemy
from sqlalchemy import event
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger(__name__)

# SQLite waits this long for a lock held by another connection before it
# reports "database is locked".
SQLITE_BUSY_TIMEOUT_MS = 10_000
# SQLite's page cache per connection, in KiB (SQLite's default is 2,000).
# The per-rep summary reads a few hundred pages of indexes and tables. With
# the default cache, a warm call read some of them again from the operating
# system and took about 10 % longer (docs/benchmarks.md).
SQLITE_CACHE_KIB = 8_000


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
    """Return `database_url` with the synchronous driver of its database."""
    url = make_url(database_url)
    backend = url.get_backend_name()
    if backend == "sqlite":
        return url.set(drivername="sqlite")
    if backend == "postgresql":
        return url.set(drivername="postgresql+psycopg")
    raise ValueError(f"unsupported database {backend!r}; use sqlite or postgresql")


def create_engine(
    database_url: str, *, immediate: bool = False, **options: Any
) -> AsyncEngine:
    """Create the async engine; SQLite gets WAL, foreign keys and a busy timeout.

    With `immediate`, SQLite transactions start with BEGIN IMMEDIATE, which
    takes the write lock up front: writers then queue on the busy timeout
    instead of failing when a read lock cannot be upgraded. Readers keep a
    deferred BEGIN, which in WAL mode takes no write lock, so a long read
    does not hold up writers.
    """
    url = async_url(database_url)
    # Parameters hold phone numbers and message text: keep them out of error
    # messages and logs.
    options.setdefault("hide_parameters", True)
    if url.get_backend_name() == "sqlite":
        _make_folder(url)
        engine = create_async_engine(url, **options)
        _configure_sqlite(engine.sync_engine, immediate)
        return engine
    options.setdefault("pool_pre_ping", True)
    return create_async_engine(url, **options)


def create_sync_engine(database_url: str) -> Engine:
    """Create the synchronous engine of the batch writer's thread."""
    url = sync_url(database_url)
    if url.get_backend_name() == "sqlite":
        _make_folder(url)
        engine = sqlalchemy.create_engine(
            url, connect_args={"check_same_thread": False}, hide_parameters=True
        )
        _configure_sqlite(engine, immediate=True, driver_begin=True)
        return engine
    return sqlalchemy.create_engine(
        url, pool_pre_ping=True, pool_size=2, hide_parameters=True
    )


def _make_folder(url: URL) -> None:
    if url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)


def _configure_sqlite(
    sync_engine: Engine, immediate: bool, *, driver_begin: bool = False
) -> None:
    """Set SQLite's options on each new connection and issue BEGIN ourselves.

    With `driver_begin` (synchronous engines only), BEGIN goes straight to
    sqlite3. The batch writer begins a transaction per batch, and a
    transaction begun this way measured 12 µs against 18 µs through
    SQLAlchemy (docs/benchmarks.md).
    """

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
        cursor.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
        cursor.close()

    begin = "BEGIN IMMEDIATE" if immediate else "BEGIN"

    @event.listens_for(sync_engine, "begin")
    def _begin(connection: Any) -> None:
        if driver_begin:
            connection.connection.driver_connection.execute(begin)
        else:
            connection.exec_driver_sql(begin)


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
        self.database_url = database_url
        self._batch_engine: Engine | None = None

    def batch_sessions(self) -> sessionmaker[Session]:
        """Synchronous sessions for the batch writer's thread, created on first use."""
        if self._batch_engine is None:
            self._batch_engine = create_sync_engine(self.database_url)
        return sessionmaker(self._batch_engine, expire_on_commit=False)

    async def dispose(self) -> None:
        await self.write_engine.dispose()
        if self.read_engine is not self.write_engine:
            await self.read_engine.dispose()
        if self._batch_engine is not None:
            self._batch_engine.dispose()


@asynccontextmanager
async def transaction(
    sessions: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """Yield a session inside a transaction that commits on success."""
    async with sessions() as session, session.begin():
        yield session
