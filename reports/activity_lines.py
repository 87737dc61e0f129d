"""The activity export on a SQLite file: CSV lines from sqlite3 on worker threads.

The query returns the touch's own columns and, worked out by SQLite, its
status and text cell, with the channel, direction and status as one JSON
array. Reps with their teams, and customers unless there are
very many, are read once into cells by id. Channels and times are cached as
cells, so each row costs one f-string in Python. The bytes are the same as
`export.encode_rows` writes for `export.activity_row`.

The export is in time order. Where the ids of touches follow their time,
as when webhooks insert them as they happen, reading along the time index
visits the table's pages in order. Where they do not, each row reads a
random page, and scanning the table in storage order and sorting the rows
costs less. `reads_in_storage_order` weighs the two. PostgreSQL's planner
does the same with `pg_stats.correlation`, which its documentation
describes as the correlation between physical row order and the order of
a column's values.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Select, bindparam, case, func, null, select
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import aliased

from capture.models import Activity, Call, Customer, Message, Team, User, UTCDateTime
from capture.sql import _Compiled
from reports.csv_cells import LocalTimes, csv_text
from reports.export import ExportFilter, filter_conditions
from reports.periods import DateRange

# Rows per fetch from the driver: each fetch is one hop to another thread.
ROWS_PER_FETCH = 5000
# SQLAlchemy's SQLite DATETIME text: "2026-06-01 12:34:56.123456".
_STAMP_LENGTH = 26
# Cached cells per cache, so that memory stays flat however many rows.
_MAX_CACHED = 100_000
# Customers read into cells before the export when there are at most this
# many (about 160 bytes each with a short name). More are joined to each row.
PRELOADED_CUSTOMERS = 100_000

# Costs of the two ways to read the rows in time order, relative to reading
# one row in a scan of the table. They are estimates from one machine (2-core
# x86_64, the database of bench/reports.py read through sqlite3): a scanned
# row took about 0.12 us, a row read from a random page about 4.3 us more,
# and sorting about 0.4 us a row.
RANDOM_READ_COST = 36
SORT_COST = 3
# Touches sampled at each of SAMPLE_POINTS times in the range, to measure
# how closely ids follow time. Two ids at most NEAR_IDS apart count as
# near, because the page of the second is likely still in SQLite's cache.
SAMPLE_ROWS = 256
SAMPLE_POINTS = 4
NEAR_IDS = 1000


class LocalStamps(dict[str, tuple[str, str] | None]):
    """Local time cells by UTC hour, or by minute where offsets are not whole hours.

    The key is the start of a stored timestamp, "2026-06-01 12" for an hour.
    The value is the local start of that hour, "2026-06-01T05", and the text
    that follows the seconds: the offset and the date cell, "-07:00,2026-06-01,".
    It is None when the offset changes within the hour or is not a whole
    number of hours, and such timestamps are converted one by one.
    """

    def __init__(self, zone: ZoneInfo, key_length: int) -> None:
        super().__init__()
        self.zone = zone
        self.key_length = key_length
        self.span = timedelta(hours=1) if key_length == 13 else timedelta(minutes=1)

    def __missing__(self, key: str) -> tuple[str, str] | None:
        if len(self) >= _MAX_CACHED:
            self.clear()
        value = self[key] = self._cells(key)
        return value

    def _cells(self, key: str) -> tuple[str, str] | None:
        if len(key) != self.key_length or key[10] != " ":
            return None
        try:
            start = datetime.fromisoformat(key).replace(tzinfo=UTC)
        except ValueError:
            return None
        first = start.astimezone(self.zone)
        last = (start + self.span - timedelta(microseconds=1)).astimezone(self.zone)
        offset = first.utcoffset()
        if offset is None or offset != last.utcoffset() or offset % self.span:
            return None
        local = first.isoformat(timespec="seconds")
        return local[: self.key_length], f"{local[19:]},{local[:10]},"


def stamp_key_length(period: DateRange) -> int:
    """Return the length of a `LocalStamps` key: 13 (an hour) when the zone's
    offsets over `period` are whole hours, else 16 (a minute).

    The offsets are read every 30 days, which finds the daylight-saving
    offsets of a half-hour zone, as they last for months.
    """
    moment = period.start
    while moment <= period.end:
        offset = moment.astimezone(period.zone).utcoffset()
        if offset is not None and offset % timedelta(hours=1):
            return 16
        moment += timedelta(days=30)
    return 13


class _KindCells(dict[str, str]):
    """The channel, direction and status cells by the JSON array of the three."""

    def __missing__(self, key: str) -> str:
        if len(self) >= _MAX_CACHED:
            self.clear()
        cells = self[key] = ",".join(csv_text(value) for value in json.loads(key))
        return cells


class LineFormatter:
    """Formats rows of `lines_query` as CSV lines encoded in UTF-8."""

    def __init__(
        self,
        period: DateRange,
        reps: dict[int, str],
        customers: dict[int | None, str] | None = None,
    ) -> None:
        """Format with the cells of `reps` and of `customers`, when all
        customers were read before. Otherwise each row carries its
        customer's name."""
        self.key_length = stamp_key_length(period)
        self.stamps = LocalStamps(period.zone, self.key_length)
        self.local_text = LocalTimes(period.zone).text
        self.reps = reps
        self.customers_read = customers is not None
        self.customers: dict[int | None, str] = {None: ","}
        self.customers.update(customers or {})
        self.kinds = _KindCells()

    def encode(self, records: Iterable[Any]) -> bytes:
        lines: list[str] = []
        append = lines.append
        stamps, reps, customers, kinds = (
            self.stamps,
            self.reps,
            self.customers,
            self.kinds,
        )
        length = self.key_length
        for (
            activity_id,
            occurred_at,
            rep_id,
            customer_id,
            customer,
            kind,
            talk_seconds,
            text,
        ) in records:
            stamp = stamps[occurred_at[:length]]
            if stamp is None or len(occurred_at) != _STAMP_LENGTH:
                when = self._when(occurred_at)
            else:
                when = stamp[0] + occurred_at[length:19] + stamp[1]
            try:
                customer_cells = customers[customer_id]
            except KeyError:
                customer_cells = self._customer(customer_id, customer)
            append(
                f"{activity_id},{when}{reps.get(rep_id, ',,')},{customer_cells},"
                f"{kinds[kind]},"
                f"{'' if talk_seconds is None else talk_seconds},"
                f"{csv_text(text) if text else ''}\r\n"
            )
        return "".join(lines).encode("utf-8")

    def _when(self, occurred_at: str) -> str:
        local = self.local_text(occurred_at)
        return f"{local},{local[:10]},"

    def _customer(self, customer_id: int, name: str | None) -> str:
        cells = f"{customer_id},{csv_text(name)}"
        # All customers were read before, so this one has no row. Keep the
        # cache to the customers that exist.
        if self.customers_read:
            return cells
        if len(self.customers) >= _MAX_CACHED:
            self.customers.clear()
            self.customers[None] = ","
        self.customers[customer_id] = cells
        return cells


def lines_query(options: ExportFilter, join_customers: bool) -> Select[Any]:
    """Select the rows `LineFormatter` formats, with the export's filters.

    Without `join_customers` the customer's name is NULL, for a formatter
    given all customers' cells.
    """
    rep = aliased(User)
    email_status = case(
        (Activity.automatic, "automatic"),
        (Activity.direction == "outbound", "sent"),
        else_="received",
    )
    status = case(
        (Activity.channel == "email", email_status),
        else_=func.coalesce(
            func.nullif(Call.status, ""), func.nullif(Message.status, ""), ""
        ),
    )
    # One text costs less to read than three Python objects per row, and the
    # cells are cached by it. JSON keeps any character of the three exact.
    kind = func.json_array(Activity.channel, Activity.direction, status)
    text = case((Message.id.is_not(None), Message.body), else_=Activity.summary)
    query = (
        select(
            Activity.id,
            Activity.occurred_at,
            Activity.rep_id,
            Activity.customer_id,
            Customer.name if join_customers else null(),
            kind,
            Call.talk_seconds,
            text,
        )
        .select_from(Activity)
        .outerjoin(Call, Call.activity_id == Activity.id)
        .outerjoin(Message, Message.activity_id == Activity.id)
        .where(*filter_conditions(options, rep))
        .order_by(Activity.occurred_at, Activity.id)
    )
    if join_customers:
        query = query.outerjoin(Customer, Activity.customer_id == Customer.id)
    # The rep's cells come from `rep_cells`, so only a team filter needs the join.
    if options.team_id is not None:
        query = query.outerjoin(rep, Activity.rep_id == rep.id)
    return query


def rep_cells(reader: sqlite3.Connection, dialect: Dialect) -> dict[int, str]:
    """Read each user's name, email and team as three CSV cells, by user id."""
    query = select(User.id, User.name, User.email, Team.name).outerjoin(
        Team, User.team_id == Team.id
    )
    compiled = _Compiled.of(query, dialect)
    return {
        user_id: f"{csv_text(name)},{csv_text(email)},{csv_text(team)}"
        for user_id, name, email, team in reader.execute(
            compiled.sql, compiled.bind({})
        )
    }


def customer_cells(
    reader: sqlite3.Connection, dialect: Dialect
) -> dict[int | None, str] | None:
    """Read each customer's id and name as two CSV cells, by customer id,
    or return None when there are more than PRELOADED_CUSTOMERS."""
    if _scalar(reader, dialect, select(func.count(Customer.id))) > PRELOADED_CUSTOMERS:
        return None
    compiled = _Compiled.of(select(Customer.id, Customer.name), dialect)
    return {
        customer_id: f"{customer_id},{csv_text(name)}"
        for customer_id, name in reader.execute(compiled.sql, compiled.bind({}))
    }


def clustered_share(
    reader: sqlite3.Connection, dialect: Dialect, period: DateRange
) -> float | None:
    """Return the share of touches in time order whose id is near the last
    one's, from samples across `period`, or None when there are too few."""
    since = bindparam("since", type_=UTCDateTime)
    query = (
        select(Activity.id)
        .where(Activity.occurred_at >= since, Activity.occurred_at < period.end)
        .order_by(Activity.occurred_at, Activity.id)
        .limit(SAMPLE_ROWS)
    )
    compiled = _Compiled.of(query, dialect)
    step = (period.end - period.start) / SAMPLE_POINTS
    near = pairs = 0
    for point in range(SAMPLE_POINTS):
        parameters = compiled.bind({"since": period.start + step * point})
        ids = [row[0] for row in reader.execute(compiled.sql, parameters)]
        pairs += max(len(ids) - 1, 0)
        near += sum(
            abs(later - earlier) <= NEAR_IDS for earlier, later in pairwise(ids)
        )
    if pairs < SAMPLE_ROWS:
        return None
    return near / pairs


def reads_in_storage_order(
    reader: sqlite3.Connection, dialect: Dialect, options: ExportFilter
) -> bool:
    """Return whether scanning the table and sorting costs less than reading
    the rows along the time index.

    A rep's touches are read along the index of rep and time, which this
    does not weigh, so an export of one rep always uses the index.
    """
    if options.rep_id is not None:
        return False
    clustered = clustered_share(reader, dialect, options.period)
    if clustered is None:
        return False
    # Per row in the range: what reading it out of order costs more, less
    # what sorting it costs. The scan reads every row of the table once.
    saved = (1 - clustered) * RANDOM_READ_COST - SORT_COST
    if saved <= 1:
        return False
    period = options.period
    in_range = select(func.count()).where(
        Activity.occurred_at >= period.start, Activity.occurred_at < period.end
    )
    table = select(func.max(Activity.id) - func.min(Activity.id) + 1)
    rows = _scalar(reader, dialect, in_range)
    table_rows = _scalar(reader, dialect, table)
    return rows * saved > table_rows


def _scalar(reader: sqlite3.Connection, dialect: Dialect, query: Any) -> int:
    compiled = _Compiled.of(query, dialect)
    (value,) = reader.execute(compiled.sql, compiled.bind({})).fetchone()
    return int(value or 0)


def _without_indexes(sql: str) -> str:
    """Make SQLite scan the touches in storage order, then sort them."""
    table = f"FROM {Activity.__tablename__} "
    if table not in sql:
        raise ValueError(f"no {table!r} in the export query")
    return sql.replace(table, f"{table}NOT INDEXED ", 1)


def start_export(
    reader: sqlite3.Connection, dialect: Dialect, options: ExportFilter
) -> tuple[sqlite3.Cursor, LineFormatter]:
    """Run the export query in one read transaction with the reps' and
    customers' cells.

    Return its cursor and the formatter of its rows.
    """
    reader.execute("BEGIN")
    customers = customer_cells(reader, dialect)
    formatter = LineFormatter(options.period, rep_cells(reader, dialect), customers)
    compiled = _Compiled.of(lines_query(options, customers is None), dialect)
    sql = compiled.sql
    if reads_in_storage_order(reader, dialect, options):
        sql = _without_indexes(sql)
    return reader.execute(sql, compiled.bind({})), formatter


def _connect(path: str) -> sqlite3.Connection:
    # Autocommit, so that start_export's BEGIN opens the transaction.
    return sqlite3.connect(
        path,
        check_same_thread=False,
        isolation_level=None,
        uri=path.startswith("file:"),
    )


async def sqlite_chunks(
    path: str, dialect: Dialect, options: ExportFilter
) -> AsyncIterator[tuple[bytes, int]]:
    """Yield the export's lines as CSV bytes, with the number of rows in each.

    One worker thread reads the rows while another formats the last chunk,
    so the event loop only writes the bytes out. The two threads overlap
    little, because sqlite3 takes the GIL back for every row it steps to.
    The threads' own connection reads the cells of reps and customers and
    the rows in one read transaction, as committed when it starts.
    """
    reader = await asyncio.to_thread(_connect, path)
    fetching: asyncio.Future[list[Any]] | None = None
    try:
        cursor, formatter = await asyncio.to_thread(
            start_export, reader, dialect, options
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
            chunk = await asyncio.to_thread(formatter.encode, records)
            yield chunk, len(records)
    finally:
        if fetching is not None and not fetching.done():
            # The thread cannot be stopped, so let it finish before closing.
            await asyncio.wait([fetching])
        await asyncio.to_thread(reader.close)
