"""The activity export's CSV rows, read from the driver and formatted per column.

The rows come straight from a database driver in chunks of 5,000, without
SQLAlchemy's row objects and result conversion: on a SQLite file from
sqlite3 on a worker thread, otherwise from the session's server-side
cursor. Each column is formatted by a function chosen once. The text is
the same as `export.encode_rows` writes for `export.activity_row`: times
to the second with their offset in the organisation's time zone, formula
characters neutralised in text cells, numbers left as numbers.
"""

from __future__ import annotations

import asyncio
import csv
import io
import sqlite3
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from capture.models import CustomField
from capture.sql import _Compiled
from reports.export import (
    FORMULA_STARTS,
    ExportFilter,
    _field_cells,
    _field_values,
    _rows_query,
    email_status,
)

# Rows per fetch from the driver: each fetch is one hop to another thread.
ROWS_PER_FETCH = 5000
_LAST_MICROSECOND = timedelta(hours=1, microseconds=-1)


class LocalTimes:
    """Formats UTC timestamps as local ISO times to the second with the offset.

    The offset is looked up once per UTC hour and kept when it is the same
    at both ends of the hour. An hour that contains a change of offset (as in
    zones that change at a half hour in UTC) is converted row by row.
    """

    def __init__(self, zone: ZoneInfo) -> None:
        self.zone = zone
        self.offsets: dict[Any, tuple[timedelta, str] | None] = {}

    def text(self, value: Any) -> str:
        """Return the local time of a driver value: SQLite text or a naive datetime."""
        moment = datetime.fromisoformat(value) if isinstance(value, str) else value
        key = (moment.year, moment.month, moment.day, moment.hour)
        try:
            offset = self.offsets[key]
        except KeyError:
            offset = self.offsets[key] = self._hour_offset(moment)
        if offset is None:
            aware = moment.replace(tzinfo=UTC).astimezone(self.zone)
            return aware.isoformat(timespec="seconds")
        return (moment + offset[0]).isoformat(timespec="seconds") + offset[1]

    def _hour_offset(self, moment: datetime) -> tuple[timedelta, str] | None:
        hour = moment.replace(minute=0, second=0, microsecond=0, tzinfo=UTC)
        first = hour.astimezone(self.zone)
        last = (hour + _LAST_MICROSECOND).astimezone(self.zone)
        if first.utcoffset() != last.utcoffset():
            return None
        offset = first.utcoffset()
        assert offset is not None
        # The suffix after the seconds: "-07:00", or "+05:53:28" in old zones.
        return offset, first.isoformat(timespec="seconds")[19:]


def _text(value: str | None) -> str:
    if not value:
        return ""
    if value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


class _TextCells(dict[Any, str]):
    """Neutralised text by value, for columns with few distinct values."""

    def __missing__(self, value: Any) -> str:
        text = self[value] = _text(value)
        return text


def row_formatter(zone: ZoneInfo) -> Callable[[Any], tuple[Any, ...]]:
    """Return a function from a raw row of the export query to its CSV cells."""
    local_text = LocalTimes(zone).text
    # One cache per column keeps each small: reps, teams, channels, statuses.
    names, emails, teams = _TextCells(), _TextCells(), _TextCells()
    channels, directions, statuses = _TextCells(), _TextCells(), _TextCells()

    def format_row(record: Any) -> tuple[Any, ...]:
        (
            activity_id,
            occurred_at,
            rep_name,
            rep_email,
            team,
            customer_id,
            customer,
            channel,
            direction,
            call_status,
            message_id,
            message_status,
            talk_seconds,
            body,
            summary,
            automatic,
        ) = record
        local = local_text(occurred_at)
        if channel == "email":
            status = email_status(bool(automatic), direction)
        else:
            status = call_status or message_status or ""
        return (
            activity_id,
            local,
            local[:10],
            names[rep_name],
            emails[rep_email],
            teams[team],
            "" if customer_id is None else customer_id,
            _text(customer),
            channels[channel],
            directions[direction],
            statuses[status],
            "" if talk_seconds is None else talk_seconds,
            _text(body if message_id is not None else summary),
        )

    return format_row


def _field_text(value: Any) -> Any:
    return _text(value) if isinstance(value, str) else value


def _encode(
    format_row: Callable[[Any], tuple[Any, ...]],
    records: list[Any],
    fields: list[CustomField],
    values: dict[tuple[int, int], str],
) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    if fields:
        writer.writerows(
            format_row(record)
            + tuple(
                _field_text(cell) for cell in _field_cells(record[5], fields, values)
            )
            for record in records
        )
    else:
        writer.writerows(map(format_row, records))
    return buffer.getvalue().encode("utf-8")


async def encoded_activity_rows(
    session: AsyncSession,
    options: ExportFilter,
    fields: list[CustomField],
) -> AsyncIterator[tuple[bytes, int]]:
    """Yield the export's rows as CSV bytes, with the number of rows in each chunk.

    Each row ends with one cell per custom field in `fields`, if any. On a
    SQLite file the rows are read and formatted on a worker thread with
    their own connection, so the event loop only writes the bytes out.
    """
    format_row = row_formatter(options.period.zone)
    connection = await session.connection()
    query = _rows_query(options)
    path = _sqlite_file(connection)
    if path is not None and not fields:
        async for chunk in _sqlite_chunks(path, connection, query, format_row):
            yield chunk
        return
    async for records in _raw_rows(connection, query):
        values: dict[tuple[int, int], str] = {}
        if fields:
            ids = {record[5] for record in records} - {None}
            values = await _field_values(session, fields, ids)
        yield _encode(format_row, records, fields, values), len(records)


def _sqlite_file(connection: AsyncConnection) -> str | None:
    url = connection.engine.url
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return url.database


async def _sqlite_chunks(
    path: str,
    connection: AsyncConnection,
    query: Any,
    format_row: Callable[[Any], tuple[Any, ...]],
) -> AsyncIterator[tuple[bytes, int]]:
    """Read the rows on one worker thread while another encodes the last chunk.

    sqlite3 releases the GIL while SQLite steps through the query, so the
    reading and the encoding overlap on two cores. The thread's connection
    reads the rows committed when the query starts, as any other reader of
    the file would.
    """
    compiled = _Compiled.of(query, connection.dialect)
    reader = await asyncio.to_thread(
        sqlite3.connect, path, check_same_thread=False, uri=path.startswith("file:")
    )
    fetching: asyncio.Future[list[Any]] | None = None
    try:
        cursor = await asyncio.to_thread(
            reader.execute, compiled.sql, compiled.bind({})
        )

        def fetch() -> list[Any]:
            return cursor.fetchmany(ROWS_PER_FETCH)

        fetching = asyncio.ensure_future(asyncio.to_thread(fetch))
        while True:
            records = await fetching
            if not records:
                return
            # One fetch at a time uses the cursor, never two at once.
            fetching = asyncio.ensure_future(asyncio.to_thread(fetch))
            chunk = await asyncio.to_thread(_encode, format_row, records, [], {})
            yield chunk, len(records)
    finally:
        if fetching is not None and not fetching.done():
            # The thread cannot be stopped, so let it finish before closing.
            await asyncio.wait([fetching])
        await asyncio.to_thread(reader.close)


async def _raw_rows(
    connection: AsyncConnection, query: Any
) -> AsyncIterator[list[Any]]:
    """Run `query` on the driver's server-side cursor; yield its rows in chunks.

    The rows are the driver's own: timestamps are SQLite text or naive UTC
    datetimes. The cursor runs inside the session's transaction.
    """
    compiled = _Compiled.of(query, connection.dialect)
    raw = await connection.get_raw_connection()
    dbapi = raw.dbapi_connection
    assert dbapi is not None

    def execute(_: Any) -> Any:
        cursor = dbapi.cursor(server_side=True)
        cursor.execute(compiled.sql, compiled.bind({}))
        return cursor

    cursor = await connection.run_sync(execute)
    try:
        while True:
            rows = await connection.run_sync(lambda _: cursor.fetchmany(ROWS_PER_FETCH))
            if not rows:
                return
            yield rows
    finally:
        await connection.run_sync(lambda _: cursor.close())
