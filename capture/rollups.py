"""Per-rep daily touch counts (`touch_days`), kept up to date as touches arrive.

Code that inserts or changes touches calls `mark` with their ids, and the
transaction's owner calls `refresh_marked` before it commits. The refresh
rewrites every (rep, day) that a marked touch is in, or was in before a
late event moved it, from the touches themselves. So a late or duplicate
webhook leaves the counts exactly what a scan of the touches would give,
and a batch costs three statements however many touches it changed.

Days are calendar days in the organisation's time zone. After the
`timezone` setting changes, run `touchline reports rebuild`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    Date,
    Integer,
    and_,
    case,
    cast,
    delete,
    func,
    insert,
    literal,
    select,
    tuple_,
    union_all,
)
from sqlalchemy.orm import Session

from capture.models import Activity, Call, TouchDay, UTCDateTime, table_of

# session.info keys of the marks waiting for `refresh_marked`.
_MARKED_IDS = "rollups.activity_ids"
_EARLIER = "rollups.earlier"
TOUCH_DAYS = table_of(TouchDay)
# Rows of one INSERT when a rebuild writes the whole table.
REBUILD_CHUNK = 5000


@dataclass(frozen=True)
class DayKey:
    rep_id: int
    day: date


def mark(
    session: Session,
    activity_ids: Iterable[int],
    earlier: Iterable[tuple[int, datetime]] = (),
) -> None:
    """Note touches whose counts changed; `earlier` lists (id, old time) pairs."""
    marked: set[int] = session.info.setdefault(_MARKED_IDS, set())
    marked.update(activity_ids)
    moved: list[tuple[int, datetime]] = session.info.setdefault(_EARLIER, [])
    moved.extend(earlier)


def refresh_marked(session: Session, zone: ZoneInfo) -> int:
    """Rewrite the (rep, day) rows of the marked touches; return how many days."""
    marked: set[int] = session.info.pop(_MARKED_IDS, set())
    moved: list[tuple[int, datetime]] = session.info.pop(_EARLIER, [])
    if not marked and not moved:
        return 0
    ids = marked | {activity_id for activity_id, _ in moved}
    rows = session.execute(
        select(Activity.id, Activity.rep_id, Activity.occurred_at).where(
            Activity.id.in_(ids), Activity.rep_id.is_not(None)
        )
    ).all()
    reps: dict[int, int] = {}
    keys: set[DayKey] = set()
    for activity_id, rep_id, moment in rows:
        if rep_id is not None:
            reps[activity_id] = rep_id
            keys.add(DayKey(rep_id, local_day(moment, zone)))
    for activity_id, moment in moved:
        if activity_id in reps:
            keys.add(DayKey(reps[activity_id], local_day(moment, zone)))
    refresh_days(session, keys, zone)
    return len(keys)


def local_day(moment: datetime, zone: ZoneInfo) -> date:
    return moment.astimezone(zone).date()


def day_bounds(day: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """The UTC instants where `day` starts and ends in `zone`."""
    start = datetime.combine(day, time(), zone)
    end = datetime.combine(day + timedelta(days=1), time(), zone)
    return start, end


def refresh_days(session: Session, keys: set[DayKey], zone: ZoneInfo) -> None:
    """Delete the rows of `keys` and insert them again, counted from the touches."""
    if not keys:
        return
    ordered = sorted(keys, key=lambda key: (key.rep_id, key.day))
    session.execute(
        delete(TOUCH_DAYS).where(
            tuple_(TOUCH_DAYS.c.rep_id, TOUCH_DAYS.c.day).in_(
                [(key.rep_id, key.day) for key in ordered]
            )
        )
    )
    days = _days_table(ordered, zone, session.get_bind().dialect.name)
    session.execute(
        insert(TOUCH_DAYS).from_select(
            [
                "rep_id",
                "day",
                "channel",
                "direction",
                "touches",
                "answered",
                "talk_seconds",
            ],
            _counts_query(days),
        )
    )


def _days_table(keys: list[DayKey], zone: ZoneInfo, dialect: str) -> Any:
    """The keys as a derived table of rep, day and the day's UTC bounds."""
    selects = []
    for key in keys:
        start, end = day_bounds(key.day, zone)
        selects.append(
            select(
                _typed(key.rep_id, Integer(), dialect).label("rep_id"),
                _typed(key.day, Date(), dialect).label("day"),
                _typed(start, UTCDateTime(), dialect).label("starts"),
                _typed(end, UTCDateTime(), dialect).label("ends"),
            )
        )
    return union_all(*selects).subquery("days")


def _typed(value: Any, type_: Any, dialect: str) -> Any:
    """A bound value that PostgreSQL can type inside a UNION.

    SQLite gets no CAST, because CAST(text AS DATETIME) there yields a number.
    """
    bound = literal(value, type_)
    return cast(bound, type_) if dialect == "postgresql" else bound


def _counts_query(days: Any) -> Any:
    is_call = Activity.channel == "call"
    answered = case((and_(is_call, Call.talk_seconds > 0), 1), else_=0)
    talk = case((is_call, func.coalesce(Call.talk_seconds, 0)), else_=0)
    return (
        select(
            days.c.rep_id,
            days.c.day,
            Activity.channel,
            Activity.direction,
            func.count(),
            func.sum(answered),
            func.sum(talk),
        )
        .select_from(days)
        .join(
            Activity,
            and_(
                Activity.rep_id == days.c.rep_id,
                Activity.occurred_at >= days.c.starts,
                Activity.occurred_at < days.c.ends,
            ),
        )
        .outerjoin(Call, Call.activity_id == Activity.id)
        .where(Activity.automatic.is_(False))
        .group_by(days.c.rep_id, days.c.day, Activity.channel, Activity.direction)
    )


def rebuild(session: Session, zone: ZoneInfo) -> int:
    """Count every touch again into an emptied table; return the rows written."""
    session.execute(delete(TOUCH_DAYS))
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
    totals: dict[tuple[int, date, str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
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
    return len(rows)
