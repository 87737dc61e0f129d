"""Per-rep touch counts by day and by month, kept up to date as touches arrive.

Code that inserts touches calls `mark_new` with their ids; code that may
change a touch's rep, direction, time or talk time calls `mark_changed`
with the values before the change. The transaction's owner calls
`refresh_marked` before it commits: it reads the marked touches as they
are now, subtracts what they counted before, and adds the difference to
the (rep, day, channel, direction) rows of `touch_days` and the (rep,
month) rows of `touch_months` with one upsert each. A month row splits its
touches into the columns the per-rep summary shows (`MONTH_COLUMNS`).
A duplicate webhook changes nothing, so it adds nothing, and a late event
that moves a call to another day or month moves its count with it. The
same call recomputes the first-touch facts (`capture.firsts`) of the
marked touches' customers.

Code that has the touches' values after its change may pass them with
`mark_current`, which spares `refresh_marked` reading them back. A later
`mark_changed` of the same touch in the transaction discards them.

Days and months are calendar days and months in the organisation's time
zone. After the `timezone` setting changes, run `touchline reports rebuild`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, bindparam, delete, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from capture import firsts
from capture.models import Activity, Call, TouchDay, TouchMonth, table_of
from capture.sql import Prepared

# session.info keys of the marks waiting for `refresh_marked`.
_NEW = "rollups.new"
_BEFORE = "rollups.before"
_CURRENT = "rollups.current"
TOUCH_DAYS = table_of(TouchDay)
TOUCH_MONTHS = table_of(TouchMonth)
# Rows of one INSERT when a rebuild writes the whole table.
REBUILD_CHUNK = 5000

Key = tuple[int, date, str, str]
# A touch as it counted before a change: id, rep id, direction, time, talk.
Before = tuple[int, int | None, str, datetime, int | None, int | None]
# A touch as it counts now: id, rep id, channel, direction, time, talk, automatic,
# customer id.
Current = tuple[int, int | None, str, str, datetime, int | None, bool, int | None]


def mark_new(session: Session, activity_ids: Iterable[int]) -> None:
    """Note touches inserted in this transaction."""
    new: set[int] = session.info.setdefault(_NEW, set())
    new.update(activity_ids)


def mark_changed(session: Session, before: Iterable[Before]) -> None:
    """Note touches that may change, with what they counted before the change.

    Each item is (id, rep id, direction, time, talk seconds, customer id).
    The rep and the direction matter as much as the time: a call's rep can
    become known only when a later leg arrives, and its direction can come
    from its parent leg. The customer and the time move first-touch facts.
    """
    known: dict[int, Before] = session.info.setdefault(_BEFORE, {})
    current: dict[int, Current] = session.info.get(_CURRENT, {})
    for item in before:
        known.setdefault(item[0], item)
        current.pop(item[0], None)


def mark_current(session: Session, rows: Iterable[Current]) -> None:
    """Note marked touches' values after the transaction's last change to them."""
    current: dict[int, Current] = session.info.setdefault(_CURRENT, {})
    for row in rows:
        current[row[0]] = row


def refresh_marked(session: Session, zone: ZoneInfo) -> int:
    """Add the marked touches' changes to the counts; return the day rows changed.

    Also recomputes the first-touch facts of the touches' customers and of
    the customers marked with `firsts.mark_customers`.
    """
    new: set[int] = session.info.pop(_NEW, set())
    before: dict[int, Before] = session.info.pop(_BEFORE, {})
    current: dict[int, Current] = session.info.pop(_CURRENT, {})
    customers = firsts.marked_customers(session)
    if not new and not before:
        firsts.refresh(session, zone, customers)
        return 0
    deltas: dict[Key, list[int]] = defaultdict(lambda: [0, 0, 0])
    for row in _current(session, new | set(before), current):
        activity_id, rep_id, channel, direction, moment, talk, automatic = row[:7]
        old = before.get(activity_id) if activity_id not in new else None
        customers.update(_customers_changed(old, moment, row[7]))
        if automatic:
            continue
        if rep_id is not None:
            key = (rep_id, local_day(moment, zone), channel, direction)
            _count(deltas, key, talk, 1)
        if old is not None:
            _, old_rep, old_direction, old_moment, old_talk, _ = old
            if old_rep is not None:
                key = (old_rep, local_day(old_moment, zone), channel, old_direction)
                _count(deltas, key, old_talk, -1)
    changed = {key: value for key, value in deltas.items() if any(value)}
    _apply(session, changed)
    firsts.refresh(session, zone, customers)
    return len(changed)


def _customers_changed(
    old: Before | None, moment: datetime, customer_id: int | None
) -> set[int]:
    """Return the customers whose first-touch facts a touch's change can move.

    Most status callbacks of a call change neither its time nor its
    customer, and those batches then skip `firsts.refresh`.
    """
    if old is None:
        return {customer_id} if customer_id is not None else set()
    old_customer, old_moment = old[5], old[3]
    if old_customer == customer_id and old_moment == moment:
        return set()
    return {id_ for id_ in (old_customer, customer_id) if id_ is not None}


def _current(session: Session, ids: set[int], known: dict[int, Current]) -> list[Any]:
    rows: list[Any] = [known[id_] for id_ in ids if id_ in known]
    missing = [id_ for id_ in ids if id_ not in known]
    if not missing:
        return rows
    query = (
        select(
            Activity.id,
            Activity.rep_id,
            Activity.channel,
            Activity.direction,
            Activity.occurred_at,
            Call.talk_seconds,
            Activity.automatic,
            Activity.customer_id,
        )
        .outerjoin(Call, Call.activity_id == Activity.id)
        .where(Activity.id.in_(missing))
    )
    rows.extend(session.execute(query))
    return rows


def _count(deltas: dict[Key, list[int]], key: Key, talk: int | None, sign: int) -> None:
    counts = deltas[key]
    counts[0] += sign
    if key[2] == "call" and talk:
        counts[1] += sign if talk > 0 else 0
        counts[2] += sign * talk


def _upsert_days(dialect: str) -> Any:
    """Add each row's counts to its stored (rep, day, channel, direction) row."""
    module: Any = postgresql if dialect == "postgresql" else sqlite
    table = TOUCH_DAYS
    statement = module.insert(table).values({name: bindparam(name) for name in COUNTED})
    return statement.on_conflict_do_update(
        index_elements=["rep_id", "day", "channel", "direction"],
        set_={
            "touches": table.c.touches + statement.excluded.touches,
            "answered": table.c.answered + statement.excluded.answered,
            "talk_seconds": table.c.talk_seconds + statement.excluded.talk_seconds,
        },
    )


COUNTED = (
    "rep_id",
    "day",
    "channel",
    "direction",
    "touches",
    "answered",
    "talk_seconds",
)
# The month columns that count the touches of a (channel, direction). A
# touch of any other channel counts only in `touches`, as an other touch.
MONTH_COLUMNS: dict[tuple[str, str], str] = {
    ("call", "outbound"): "calls_made",
    ("call", "inbound"): "calls_received",
    ("sms", "outbound"): "sms_sent",
    ("sms", "inbound"): "sms_received",
    ("mms", "outbound"): "sms_sent",
    ("mms", "inbound"): "sms_received",
    ("email", "outbound"): "emails_sent",
    ("email", "inbound"): "emails_received",
}
# The counts of a month row after its rep and month, in order.
MONTH_COUNTS = (
    "touches",
    "calls_made",
    "calls_received",
    "sms_sent",
    "sms_received",
    "emails_sent",
    "emails_received",
    "answered",
    "talk_seconds",
)
MONTH_COUNTED = ("rep_id", "month", *MONTH_COUNTS)
_MONTH_INDEX = {name: index for index, name in enumerate(MONTH_COUNTS)}
MonthKey = tuple[int, date]


def _upsert_months(dialect: str) -> Any:
    """Add each row's counts to its stored (rep, month) row."""
    module: Any = postgresql if dialect == "postgresql" else sqlite
    table = TOUCH_MONTHS
    statement = module.insert(table).values(
        {name: bindparam(name) for name in MONTH_COUNTED}
    )
    return statement.on_conflict_do_update(
        index_elements=["rep_id", "month"],
        set_={name: table.c[name] + statement.excluded[name] for name in MONTH_COUNTS},
    )


# Compiled once: the writer runs them in every batch that adds a touch.
UPSERT = Prepared(_upsert_days)
UPSERT_MONTHS = Prepared(_upsert_months)


def _apply(session: Session, deltas: dict[Key, list[int]]) -> None:
    """Add `deltas` to their day and month rows, then drop rows left at zero."""
    if not deltas:
        return
    months = month_totals(deltas)
    UPSERT.run_many(
        session,
        [
            dict(zip(COUNTED, (*key, *counts), strict=True))
            for key, counts in sorted(deltas.items())
        ],
    )
    UPSERT_MONTHS.run_many(
        session,
        [
            dict(zip(MONTH_COUNTED, (*key, *counts), strict=True))
            for key, counts in sorted(months.items())
            if any(counts)
        ],
    )
    if any(counts[0] < 0 for counts in deltas.values()):
        reps = {key[0] for key in deltas}
        for table in (TOUCH_DAYS, TOUCH_MONTHS):
            session.execute(
                delete(table).where(
                    and_(table.c.touches == 0, table.c.rep_id.in_(reps))
                )
            )


def month_totals(days: dict[Key, list[int]]) -> dict[MonthKey, list[int]]:
    """Sum (rep, day, channel, direction) counts into (rep, month) rows.

    Each row's counts are in the order of MONTH_COUNTS.
    """
    months: dict[MonthKey, list[int]] = defaultdict(lambda: [0] * len(MONTH_COUNTS))
    for (rep_id, day, channel, direction), (touches, answered, talk) in days.items():
        total = months[(rep_id, day.replace(day=1))]
        total[0] += touches
        column = MONTH_COLUMNS.get((channel, direction))
        if column is not None:
            total[_MONTH_INDEX[column]] += touches
        total[-2] += answered
        total[-1] += talk
    return months


def local_day(moment: datetime, zone: ZoneInfo) -> date:
    return moment.astimezone(zone).date()


def rebuild(session: Session, zone: ZoneInfo) -> int:
    """Count every touch again into emptied tables; return the day rows written.

    Rebuilds the day and month counts and every customer's first-touch facts.
    """
    session.execute(delete(TOUCH_DAYS))
    session.execute(delete(TOUCH_MONTHS))
    query = (
        select(
            Activity.rep_id,
            Activity.occurred_at,
            Activity.channel,
            Activity.direction,
            Call.talk_seconds,
        )
        .outerjoin(Call, Call.activity_id == Activity.id)
        .where(Activity.rep_id.is_not(None), Activity.automatic.is_(False))
        .execution_options(yield_per=REBUILD_CHUNK)
    )
    totals: dict[Key, list[int]] = defaultdict(lambda: [0, 0, 0])
    for rep_id, moment, channel, direction, talk in session.execute(query):
        if rep_id is None:
            continue
        counts = totals[(rep_id, local_day(moment, zone), channel, direction)]
        counts[0] += 1
        if channel == "call" and talk:
            counts[1] += 1 if talk > 0 else 0
            counts[2] += talk
    rows = [
        {
            "rep_id": rep_id,
            "day": day,
            "channel": channel,
            "direction": direction,
            "touches": touches,
            "answered": answered,
            "talk_seconds": talk_seconds,
        }
        for (rep_id, day, channel, direction), (touches, answered, talk_seconds) in (
            totals.items()
        )
    ]
    for start in range(0, len(rows), REBUILD_CHUNK):
        session.execute(insert(TOUCH_DAYS), rows[start : start + REBUILD_CHUNK])
    month_rows = [
        dict(zip(MONTH_COUNTED, (*key, *counts), strict=True))
        for key, counts in month_totals(totals).items()
    ]
    for start in range(0, len(month_rows), REBUILD_CHUNK):
        session.execute(insert(TOUCH_MONTHS), month_rows[start : start + REBUILD_CHUNK])
    firsts.rebuild(session, zone)
    return len(rows)
