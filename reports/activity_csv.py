"""The activity export's CSV rows, read from the driver and formatted per column.

On a SQLite file without custom fields, `activity_lines` reads and formats
the rows. Otherwise they come from the session's server-side cursor in
chunks of 5,000, without SQLAlchemy's row objects and result conversion,
and each column is formatted by a function chosen once. The text is the
same as `export.encode_rows` writes for `export.activity_row`: times to the
second with their offset in the organisation's time zone, formula
characters neutralised in text cells, numbers left as numbers.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Callable
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from capture.models import CustomField
from capture.sql import _Compiled
from reports.activity_lines import sqlite_chunks
from reports.csv_cells import LocalTimes, text_cell
from reports.export import (
    ExportFilter,
    _field_cells,
    _field_values,
    _rows_query,
    email_status,
)

# Rows per fetch from the driver's server-side cursor.
ROWS_PER_FETCH = 5000


class _TextCells(dict[Any, str]):
    """Neutralised text by value, for columns with few distinct values."""

    def __missing__(self, value: Any) -> str:
        text = self[value] = text_cell(value)
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
            text_cell(customer),
            channels[channel],
            directions[direction],
            statuses[status],
            "" if talk_seconds is None else talk_seconds,
            text_cell(body if message_id is not None else summary),
        )

    return format_row


def _field_text(value: Any) -> Any:
    return text_cell(value) if isinstance(value, str) else value


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
    SQLite file without custom fields the rows are read and formatted on
    worker threads with their own connection, so the event loop only writes
    the bytes out.
    """
    format_row = row_formatter(options.period.zone)
    connection = await session.connection()
    query = _rows_query(options)
    path = _sqlite_file(connection)
    if path is not None and not fields:
        async for chunk in sqlite_chunks(path, connection.dialect, options):
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
