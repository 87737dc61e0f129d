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
from datetime import datetime
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
    CustomFieldValue,
    Message,
    Team,
    User,
)
from capture.values import active_fields
from reports.periods import DateRange

BOM = "\ufeff"
# Characters that make a spreadsheet read a cell as a formula (OWASP CSV
# injection guidance: =, +, -, @, tab and carriage return).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
ROWS_PER_CHUNK = 500

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


def _rows_query(period: DateRange, viewer: Viewer | None) -> Any:
    rep = aliased(User)
    return (
        select(Activity, rep.name, rep.email, Team.name, Customer.name, Call, Message)
        .outerjoin(rep, Activity.rep_id == rep.id)
        .outerjoin(Team, rep.team_id == Team.id)
        .outerjoin(Customer, Activity.customer_id == Customer.id)
        .outerjoin(Call, Call.activity_id == Activity.id)
        .outerjoin(Message, Message.activity_id == Activity.id)
        .where(Activity.occurred_at >= period.start, Activity.occurred_at < period.end)
        .where(_scope(viewer))
        .order_by(Activity.occurred_at, Activity.id)
        .execution_options(yield_per=ROWS_PER_CHUNK)
    )


def _row(record: Any, zone: ZoneInfo) -> list[Any]:
    activity, rep_name, rep_email, team, customer, call, message = record
    local: datetime = activity.occurred_at.astimezone(zone)
    status = ""
    if call is not None:
        status = call.status
    elif message is not None:
        status = message.status
    elif activity.channel == "email":
        status = email_status(activity)
    text = message.body if message else activity.summary
    return [
        activity.id,
        local.isoformat(timespec="seconds"),
        local.date().isoformat(),
        rep_name or "",
        rep_email or "",
        team or "",
        activity.customer_id if activity.customer_id is not None else "",
        customer or "",
        activity.channel,
        activity.direction,
        status,
        call.talk_seconds if call and call.talk_seconds is not None else "",
        text or "",
    ]


def email_status(activity: Activity) -> str:
    """Return sent or received, so that a sheet counts a rep's emails by
    filtering; automatic mail, which is no touch, says automatic."""
    if activity.automatic:
        return "automatic"
    return "sent" if activity.direction == "outbound" else "received"


def encode_rows(rows: Iterable[list[Any]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    for row in rows:
        writer.writerow([neutralise(cell) for cell in row])
    return buffer.getvalue().encode("utf-8")


async def count_activities(
    session: AsyncSession, period: DateRange, viewer: Viewer | None
) -> int:
    query = select(func.count()).where(
        Activity.occurred_at >= period.start,
        Activity.occurred_at < period.end,
        _scope(viewer),
    )
    return int(await session.scalar(query) or 0)


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
    fields = await active_fields(session)
    header = [*COLUMNS, *(f"field:{field.key}" for field in fields)]
    yield BOM.encode("utf-8") + encode_rows([header])
    result = await session.stream(_rows_query(period, viewer))
    async for partition in result.partitions(ROWS_PER_CHUNK):
        customer_ids = {record[0].customer_id for record in partition} - {None}
        values = await _field_values(session, fields, customer_ids)
        yield encode_rows(
            _row(record, period.zone) + _field_cells(record[0], fields, values)
            for record in partition
        )
        if on_rows is not None:
            on_rows(len(partition))


async def _field_values(
    session: AsyncSession, fields: list[CustomField], customer_ids: set[int]
) -> dict[tuple[int, int], str]:
    """Return custom field values of some customers by (customer id, field id)."""
    if not fields or not customer_ids:
        return {}
    query = select(
        CustomFieldValue.customer_id,
        CustomFieldValue.field_id,
        CustomFieldValue.text_value,
    ).where(
        CustomFieldValue.customer_id.in_(customer_ids),
        CustomFieldValue.field_id.in_([field.id for field in fields]),
    )
    rows = (await session.execute(query)).all()
    return {(customer_id, field_id): text for customer_id, field_id, text in rows}


def _field_cells(
    activity: Activity, fields: list[CustomField], values: dict[tuple[int, int], str]
) -> list[Any]:
    if activity.customer_id is None:
        return ["" for _ in fields]
    return [values.get((activity.customer_id, field.id), "") for field in fields]
