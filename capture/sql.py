"""Statements that differ between SQLite and PostgreSQL."""

from __future__ import annotations

import functools
import json
import operator
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    Table,
    any_,
    bindparam,
    func,
    literal_column,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import QueryableAttribute, Session


def one_of(
    dialect: str, column: ColumnElement[Any] | QueryableAttribute[Any], name: str
) -> ColumnElement[bool]:
    """`column IN (values)`, with the values bound as one parameter `name`.

    An expanding IN list makes SQLAlchemy rewrite and re-render the SQL on
    every execution, which cost more than the query in the webhook writer.
    A single parameter keeps one SQL text for any number of values: a JSON
    array read by `json_each` on SQLite, an array with `= ANY` on PostgreSQL.
    Bind the values with `values_of`.
    """
    if dialect == "postgresql":
        return column == any_(bindparam(name, type_=postgresql.ARRAY(column.type)))
    values: Select[Any] = select(literal_column("value")).select_from(
        func.json_each(bindparam(name))
    )
    return column.in_(values)


def values_of(dialect: str, values: Iterable[Any]) -> Any:
    """Return the parameter value for `one_of`."""
    if dialect == "postgresql":
        return list(values)
    return json.dumps(list(values))


# session.info key of the transaction, driver connection and dialect that
# `_driver` found last.
_DRIVER = "sql.driver"


def _driver(session: Session) -> tuple[Any, Dialect]:
    """Return the driver's connection under the session's transaction, and its
    dialect.

    The batch writer runs about a dozen statements per batch through the
    driver. Asking the session for its connection each time cost about
    1 to 2.5 us per webhook, so the connection is cached for the rest of
    the transaction. In a new transaction the session is called again,
    which also begins that transaction.
    """
    transaction = session.get_transaction()
    cached = session.info.get(_DRIVER)
    if cached is not None and transaction is not None and cached[0] is transaction:
        return cached[1], cached[2]
    connection = session.connection()
    driver = connection.connection.dbapi_connection
    session.info[_DRIVER] = (session.get_transaction(), driver, connection.dialect)
    return driver, connection.dialect


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


def insert_rows(
    session: Session,
    table: Table,
    rows: list[dict[str, Any]],
    *,
    returning: tuple[str, ...] = (),
    ignore_conflicts: bool = False,
) -> list[tuple[Any, ...]]:
    """Insert rows with one multi-row INSERT; return the `returning` columns.

    Every row must have the same keys, which are column names. With
    `ignore_conflicts`, rows that break a unique constraint are skipped and
    only the rows inserted come back. The returned rows are in no particular
    order, so `returning` should name a key.

    This is the webhook writer's hot path. A statement built and compiled
    by SQLAlchemy for each batch cost several times what SQLite spends
    running it. So the SQL text is made once for each shape of batch, and
    the values go to the driver with each column type's bind conversion.
    """
    if not rows:
        return []
    driver, dialect = _driver(session)
    names = tuple(rows[0])
    shape = _InsertShape(dialect.paramstyle, table, names, returning, ignore_conflicts)
    converters = _converters(dialect, table, names)
    values_of_row = operator.itemgetter(*names)
    # The driver's own cursor, inside the transaction the session began.
    cursor = driver.cursor()
    results: list[tuple[Any, ...]] = []
    try:
        for start in range(0, len(rows), MAX_ROWS_PER_INSERT):
            chunk = rows[start : start + MAX_ROWS_PER_INSERT]
            values: list[Any] = []
            for row in chunk:
                if len(row) != len(names):
                    raise ValueError(f"rows for {table.name} differ in their columns")
                row_values = (
                    list(values_of_row(row)) if len(names) > 1 else [row[names[0]]]
                )
                for index, convert in converters:
                    row_values[index] = convert(row_values[index])
                values.extend(row_values)
            cursor.execute(shape.sql(len(chunk)), values)
            if returning:
                results.extend(tuple(row) for row in cursor.fetchall())
    finally:
        cursor.close()
    return results


# Rows per statement; keeps the number of bound values under SQLite's limit.
MAX_ROWS_PER_INSERT = 500


@dataclass(frozen=True)
class _InsertShape:
    # The driver's parameter style: qmark (sqlite3), format or pyformat
    # (psycopg), numeric_dollar (asyncpg).
    paramstyle: str
    table: Table
    names: tuple[str, ...]
    returning: tuple[str, ...]
    ignore_conflicts: bool

    def sql(self, count: int) -> str:
        return _insert_sql(self, count)


@functools.lru_cache(maxsize=256)
def _insert_sql(shape: _InsertShape, count: int) -> str:
    width = len(shape.names)
    rows = []
    for row in range(count):
        markers = [_marker(shape.paramstyle, row * width + n + 1) for n in range(width)]
        rows.append("(" + ", ".join(markers) + ")")
    columns = ", ".join(_quoted(shape.table.c[name].name) for name in shape.names)
    sql = f"INSERT INTO {_quoted(shape.table.name)} ({columns}) VALUES "
    sql += ", ".join(rows)
    if shape.ignore_conflicts:
        sql += " ON CONFLICT DO NOTHING"
    if shape.returning:
        sql += " RETURNING " + ", ".join(_quoted(name) for name in shape.returning)
    return sql


def _marker(paramstyle: str, position: int) -> str:
    if paramstyle == "qmark":
        return "?"
    if paramstyle in ("format", "pyformat"):
        return "%s"
    if paramstyle == "numeric_dollar":
        return f"${position}"
    raise ValueError(f"unsupported parameter style {paramstyle!r}")


def _quoted(name: str) -> str:
    # Names come from the models, never from input; quoting guards keywords.
    return '"' + name.replace('"', '""') + '"'


@functools.lru_cache(maxsize=64)
def _check_defaults(table: Table, names: tuple[str, ...]) -> None:
    """Refuse rows that leave out a column whose default Python computes."""
    missing = [
        column.name
        for column in table.columns
        if column.default is not None and column.name not in names
    ]
    if missing:
        raise ValueError(f"insert into {table.name} needs {', '.join(missing)}")


@functools.lru_cache(maxsize=64)
def _converters(
    dialect: Dialect, table: Table, names: tuple[str, ...]
) -> tuple[tuple[int, Callable[[Any], Any]], ...]:
    """Return the position and bind conversion of each column that has one."""
    _check_defaults(table, names)
    found = []
    for index, name in enumerate(names):
        convert = table.c[name].type._cached_bind_processor(dialect)
        if convert is not None:
            found.append((index, convert))
    return tuple(found)


class Prepared:
    """A Core statement compiled once for each database and run on its driver.

    For the webhook writer's queries, where SQLAlchemy's execution and result
    handling cost more than SQLite spends on the query. `build` makes the
    statement for a dialect name. Parameters are converted by the column
    types, as SQLAlchemy would; rows come back as the driver returns them, so
    timestamps need `utc()`.
    """

    def __init__(self, build: Callable[[str], Any]) -> None:
        self.build = build
        # By dialect and driver: psycopg and asyncpg write parameters differently.
        self.compiled: dict[tuple[str, str], _Compiled] = {}

    def rows(
        self, session: Session, parameters: dict[str, Any]
    ) -> list[tuple[Any, ...]]:
        driver, dialect = _driver(session)
        compiled = self._for(dialect)
        cursor = driver.cursor()
        try:
            cursor.execute(compiled.sql, compiled.bind(parameters))
            return [tuple(row) for row in cursor.fetchall()]
        finally:
            cursor.close()

    async def fetch(
        self, session: AsyncSession, parameters: dict[str, Any]
    ) -> list[tuple[Any, ...]]:
        """Return the statement's rows, as `rows` does, for an async session.

        It makes one call to the driver. Through SQLAlchemy's cursor,
        aiosqlite hands work to its thread four times per statement (open,
        execute, fetch, close). Each handover costs about 0.1 ms, so a
        report that runs in 3 ms of SQLite paid half as much again.
        aiosqlite's `execute_fetchall` and asyncpg's `fetch` do it in one.
        """
        connection = await session.connection()
        raw = await connection.get_raw_connection()
        driver: Any = raw.driver_connection
        compiled = self._for(connection.dialect)
        values = compiled.bind(parameters)
        if connection.dialect.name == "postgresql":
            # NOTE: asyncpg caches the statement's plan. After a migration
            # changes a table it reads, the first call in an open transaction
            # on each connection can fail, because SQLAlchemy's recovery from
            # a stale plan does not apply to calls made on the driver.
            return [tuple(row) for row in await driver.fetch(compiled.sql, *values)]
        return [
            tuple(row) for row in await driver.execute_fetchall(compiled.sql, values)
        ]

    def run_many(self, session: Session, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        driver, dialect = _driver(session)
        compiled = self._for(dialect)
        cursor = driver.cursor()
        try:
            cursor.executemany(compiled.sql, [compiled.bind(row) for row in rows])
        finally:
            cursor.close()

    def _for(self, dialect: Dialect) -> _Compiled:
        key = (dialect.name, dialect.driver)
        compiled = self.compiled.get(key)
        if compiled is None:
            compiled = _Compiled.of(self.build(dialect.name), dialect)
            self.compiled[key] = compiled
        return compiled


@dataclass(frozen=True)
class _Compiled:
    sql: str
    # Parameter names in order for drivers with positional markers, else None.
    positions: tuple[str, ...] | None
    defaults: dict[str, Any]
    converters: dict[str, Callable[[Any], Any]]

    @classmethod
    def of(cls, statement: Any, dialect: Dialect) -> _Compiled:
        compiled = statement.compile(dialect=dialect)
        converters = {}
        for name, bind in compiled.binds.items():
            convert = bind.type._cached_bind_processor(dialect)
            if convert is not None:
                converters[name] = convert
        positions = compiled.positiontup
        return cls(
            sql=str(compiled),
            positions=tuple(positions) if positions is not None else None,
            defaults={
                name: bind.effective_value
                for name, bind in compiled.binds.items()
                if not bind.required
            },
            converters=converters,
        )

    def bind(self, parameters: dict[str, Any]) -> Any:
        values = {**self.defaults, **parameters}
        for name, convert in self.converters.items():
            values[name] = convert(values[name])
        if self.positions is None:
            return values
        return tuple(values[name] for name in self.positions)


def lock_keys(session: Session, keys: Iterable[str]) -> None:
    """Hold a lock on each key until the transaction ends (PostgreSQL only).

    Two web processes can receive callbacks of the same call at once. Without
    a lock both find no stored call, both insert it, and one batch fails on
    the unique key. Each key maps to a transaction-level advisory lock, and
    the locks are taken in ascending order, so two transactions never wait
    on each other in a cycle through them. On SQLite nothing is done,
    because BEGIN IMMEDIATE already lets one writing transaction run at a
    time. Two keys that share a 32-bit hash only wait for each other.
    """
    driver, dialect = _driver(session)
    if dialect.name != "postgresql":
        return
    hashes = sorted({_lock_hash(key) for key in keys})
    if not hashes:
        return
    cursor = driver.cursor()
    try:
        cursor.execute(
            "SELECT pg_advisory_xact_lock(%s, key) FROM unnest(%s::int4[]) AS key",
            (ADVISORY_LOCK_SPACE, hashes),
        )
    finally:
        cursor.close()


# The first of PostgreSQL's two advisory lock keys, for the writer's locks.
ADVISORY_LOCK_SPACE = 0x544C


def _lock_hash(key: str) -> int:
    # CRC-32 as a signed 32-bit integer, the type of an advisory lock key.
    value = zlib.crc32(key.encode())
    return value - (1 << 32) if value >= 1 << 31 else value


def utc(value: Any) -> datetime:
    """Return a timestamp column read by the driver as an aware UTC datetime.

    SQLite returns the text SQLAlchemy stored; PostgreSQL a naive datetime.
    """
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        raise TypeError(f"{value!r} is not a timestamp")
    return value.replace(tzinfo=UTC)


def utc_or_none(value: Any) -> datetime | None:
    """`utc` for a column that may be NULL."""
    return None if value is None else utc(value)
