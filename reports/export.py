"""The activity export as CSV that Excel opens cleanly.

UTF-8 with a byte-order mark, CRLF line ends (RFC 4180), times in the
organisation's time zone, and text cells that start with a formula character
prefixed with an apostrophe so that a spreadsheet shows them as text. Each
active custom field adds a column `field:<key>` after the fixed ones, with
the touch's customer's value.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, func, select, true
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from capture.access import Viewer, visible_activities
from capture.models import (
    Activity,
    Call,
    Customer,
    CustomField,
    Message,
    Team,
    User,
)
from capture.values import active_fields
from reports.field_values import field_cells, field_values
from reports.periods import DateRange

BOM = "\ufeff"
# Characters that make a spreadsheet read a cell as a formula (OWASP CSV
# injection guidance: =, +, -, @, tab and carriage return).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
ROWS_PER_CHUNK = 2000

COLUMNS = (
    "activity_id",
    "occurred_at",
    "date",
    "rep",
    "rep_email",
    "team",
    "customer_id",
    "customer",
    "channel",
    "direction",
    "status",
    "talk_seconds",
    "text",
)


def neutralise(value: Any) -> Any:
    """Prefix text that a spreadsheet would run as a formula; keep numbers."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def _scope(viewer: Viewer | None) -> ColumnElement[bool]:
    """Filter on `Activity`; None, for the command line, exports every touch."""
    return true() if viewer is None else visible_activities(viewer)


@dataclass(frozen=True)
class ExportFilter:
    """The rows an export contains: the page filters plus a rep and a channel."""

    period: DateRange
    viewer: Viewer | None
    team_id: int | None = None
    rep_id: int | None = None
    channel: str | None = None


def filter_conditions(options: ExportFilter, rep: Any) -> list[ColumnElement[bool]]:
    period = options.period
    conditions = [
        Activity.occurred_at >= period.start,
        Activity.occurred_at < period.end,
        _scope(options.viewer),
    ]
    if options.team_id is not None:
        conditions.append(rep.team_id == options.team_id)
    if options.rep_id is not None:
        conditions.append(Activity.rep_id == options.rep_id)
    if options.channel is not None:
        conditions.append(Activity.channel == options.channel)
    return conditions


def _rows_query(options: ExportFilter) -> Any:
    rep = aliased(User)
    # Columns, not mapped objects: building an ORM object per row was most
    # of the export's time.
    return (
        select(
            Activity.id,
            Activity.occurred_at,
            rep.name,
            rep.email,
            Team.name,
            Activity.customer_id,
            Customer.name,
            Activity.channel,
            Activity.direction,
            Call.status,
            Message.id,
            Message.status,
            Call.talk_seconds,
            Message.body,
            Activity.summary,
            Activity.automatic,
        )
        .outerjoin(rep, Activity.rep_id == rep.id)
        .outerjoin(Team, rep.team_id == Team.id)
        .outerjoin(Customer, Activity.customer_id == Customer.id)
        .outerjoin(Call, Call.activity_id == Activity.id)
        .outerjoin(Message, Message.activity_id == Activity.id)
        .where(*filter_conditions(options, rep))
        .order_by(Activity.occurred_at, Activity.id)
        .execution_options(yield_per=ROWS_PER_CHUNK)
    )


def activity_row(record: Any, zone: ZoneInfo) -> list[Any]:
    """Build one export row, keeping times as datetime and date values."""
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
    local: datetime = occurred_at.astimezone(zone)
    status = call_status or message_status or ""
    if channel == "email":
        status = email_status(automatic, direction)
    text = body if message_id is not None else summary
    return [
        activity_id,
        local,
        local.date(),
        rep_name or "",
        rep_email or "",
        team or "",
        customer_id if customer_id is not None else "",
        customer or "",
        channel,
        direction,
        status,
        talk_seconds if talk_seconds is not None else "",
        text or "",
    ]


def email_status(automatic: bool, direction: str) -> str:
    """Return sent or received, so that a sheet counts a rep's emails by
    filtering; automatic mail, which is no touch, says automatic."""
    if automatic:
        return "automatic"
    return "sent" if direction == "outbound" else "received"


def csv_cell(value: Any) -> Any:
    """Convert a cell to CSV text, with times to the second and their offset."""
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    if isinstance(value, date):
        return value.isoformat()
    if value is None:
        return ""
    return neutralise(value)


def encode_rows(rows: Iterable[list[Any]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    for row in rows:
        writer.writerow([csv_cell(cell) for cell in row])
    return buffer.getvalue().encode("utf-8")


async def count_activities(
    session: AsyncSession, period: DateRange, viewer: Viewer | None
) -> int:
    return await count_rows(session, ExportFilter(period, viewer))


async def count_rows(session: AsyncSession, options: ExportFilter) -> int:
    rep = aliased(User)
    query = select(func.count()).select_from(Activity)
    # SQLite 3.40 keeps an unused outer join, and joining users made it read
    # every touch's row from the table where the time index alone suffices.
    if options.team_id is not None:
        query = query.outerjoin(rep, Activity.rep_id == rep.id)
    query = query.where(*filter_conditions(options, rep))
    return int(await session.scalar(query) or 0)


async def activity_rows(
    session: AsyncSession,
    options: ExportFilter,
    fields: list[CustomField] | None = None,
) -> AsyncIterator[list[list[Any]]]:
    """Yield the export rows in chunks of `ROWS_PER_CHUNK`.

    Each row ends with one cell per custom field in `fields`, if any.
    """
    fields = fields or []
    result = await session.stream(_rows_query(options))
    async for partition in result.partitions(ROWS_PER_CHUNK):
        customer_ids = {record[5] for record in partition} - {None}
        values = await _field_values(session, fields, customer_ids)
        yield [
            activity_row(record, options.period.zone)
            + _field_cells(record[5], fields, values)
            for record in partition
        ]


async def activities_csv(
    session: AsyncSession,
    period: DateRange,
    viewer: Viewer | None,
    on_rows: Callable[[int], None] | None = None,
) -> AsyncIterator[bytes]:
    """Yield the export in chunks, so memory stays flat however many rows.

    Only touches the viewer may see are exported; a `viewer` of None, for
    the command line, exports all. `on_rows` is called with the number of
    rows in each chunk, for progress.
    """
    async for chunk in activities_csv_of(
        session, ExportFilter(period, viewer), on_rows
    ):
        yield chunk


async def activities_csv_of(
    session: AsyncSession,
    options: ExportFilter,
    on_rows: Callable[[int], None] | None = None,
) -> AsyncIterator[bytes]:
    # Imported here because reports.activity_csv builds on this module.
    from reports.activity_csv import encoded_activity_rows

    fields = await active_fields(session)
    header = [*COLUMNS, *(f"field:{field.key}" for field in fields)]
    yield BOM.encode("utf-8") + encode_rows([header])
    async for chunk, count in encoded_activity_rows(session, options, fields):
        yield chunk
        if on_rows is not None:
            on_rows(count)


async def _field_values(
    session: AsyncSession, fields: list[CustomField], customer_ids: set[int]
) -> dict[tuple[int, int], Any]:
    """Return typed custom field values of some customers by (customer id,
    field id): numbers stay numbers and dates stay dates."""
    return await field_values(session, fields, customer_ids)


def _field_cells(
    customer_id: int | None,
    fields: list[CustomField],
    values: dict[tuple[int, int], Any],
) -> list[Any]:
    return field_cells(customer_id, fields, values)
