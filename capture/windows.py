"""Fuzzy due windows of next-step plans, resolved to UTC instants.

A window is resolved once, when the plan is set, from the moment it is set
and the owner's time zone. Local wall-clock times are built with zoneinfo
and converted to UTC, so a day on which daylight saving starts is 23 hours
long and one on which it ends is 25. A wall-clock time that falls in the
gap of a spring-forward change resolves to the same UTC instant as that
time in the offset before the change, which is the first instant after
the gap. The rules are written out in docs/plans.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from capture.errors import InvalidInput
from capture.settings import WEEKDAYS, Settings

WINDOWS = ("later_today", "tonight", "tomorrow", "this_week", "next_week", "next_month")
# A plan with an exact time is due from that time until this much after it.
EXACT_WINDOW = "exact"
EXACT_GRACE = timedelta(hours=1)
MINUTES_PER_DAY = 24 * 60


@dataclass(frozen=True)
class WindowRules:
    """The organisation's working day, evening and week, in local minutes."""

    day_start: int = 9 * 60
    day_end: int = 18 * 60
    evening_start: int = 18 * 60
    evening_end: int = 22 * 60
    # 0 is Monday, as in `date.weekday()`.
    week_start: int = 0

    @classmethod
    def of(cls, settings: Settings) -> WindowRules:
        day_start, day_end = _span_minutes(settings.working_hours)
        evening_start, evening_end = _span_minutes(settings.evening_hours)
        return cls(
            day_start,
            day_end,
            evening_start,
            evening_end,
            WEEKDAYS.index(settings.week_start),
        )


@dataclass(frozen=True)
class Due:
    """A resolved window: due from `start` (inclusive) to `end` (exclusive)."""

    start: datetime
    end: datetime


def _span_minutes(text: str) -> tuple[int, int]:
    start, _, end = text.partition("-")
    return _minutes(start), _minutes(end)


def _minutes(text: str) -> int:
    hours, _, minutes = text.partition(":")
    return int(hours) * 60 + int(minutes)


def zone_named(name: str | None, fallback: tzinfo) -> tzinfo:
    """Return the zone called `name`, or `fallback` when it is unset or unknown."""
    if not name:
        return fallback
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return fallback


def local_instant(day: date, minutes: int, zone: tzinfo) -> datetime:
    """Return the UTC instant of a local wall-clock time; 24:00 is next midnight."""
    if minutes >= MINUTES_PER_DAY:
        day, minutes = day + timedelta(days=1), minutes - MINUTES_PER_DAY
        return local_instant(day, minutes, zone)
    wall = datetime.combine(day, time(minutes // 60, minutes % 60), zone)
    return wall.astimezone(UTC)


def resolve(window: str, now: datetime, zone: tzinfo, rules: WindowRules) -> Due:
    """Resolve a named window at `now` (aware) in `zone`."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    today = now.astimezone(zone).date()
    midnight = local_instant(today + timedelta(days=1), 0, zone)
    if window == "later_today":
        day_end = local_instant(today, rules.day_end, zone)
        return Due(now, day_end if now < day_end else midnight)
    if window == "tonight":
        evening_start = local_instant(today, rules.evening_start, zone)
        evening_end = local_instant(today, rules.evening_end, zone)
        if now >= evening_end:
            return Due(now, max(midnight, now))
        return Due(max(now, evening_start), evening_end)
    if window == "tomorrow":
        tomorrow = today + timedelta(days=1)
        return Due(midnight, local_instant(tomorrow + timedelta(days=1), 0, zone))
    if window in ("this_week", "next_week"):
        next_start = _next_week_start(today, rules.week_start)
        if window == "this_week":
            return Due(now, local_instant(next_start, 0, zone))
        after = next_start + timedelta(days=7)
        return Due(local_instant(next_start, 0, zone), local_instant(after, 0, zone))
    if window == "next_month":
        first = _first_of_next_month(today)
        return Due(
            local_instant(first, 0, zone),
            local_instant(_first_of_next_month(first), 0, zone),
        )
    raise InvalidInput(
        f"window {window!r} is unknown; use one of {', '.join(WINDOWS)}", "window"
    )


def exact(moment: datetime) -> Due:
    """Return the window of a plan set for an exact time."""
    if moment.tzinfo is None:
        raise InvalidInput("due_at needs a UTC offset", "due_at")
    start = moment.astimezone(UTC)
    return Due(start, start + EXACT_GRACE)


def _next_week_start(today: date, week_start: int) -> date:
    """Return the first day of the week after the one containing `today`."""
    days = (week_start - today.weekday()) % 7
    return today + timedelta(days=days or 7)


def _first_of_next_month(day: date) -> date:
    if day.month == 12:
        return date(day.year + 1, 1, 1)
    return date(day.year, day.month + 1, 1)
