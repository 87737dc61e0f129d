"""Date ranges in the organisation's time zone, turned into UTC bounds."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from capture.errors import InvalidInput

MAX_RANGE_DAYS = 3700
# Bounds that keep date arithmetic in range in any time zone.
EARLIEST = date(1900, 1, 1)
LATEST = date(2999, 12, 31)


@dataclass(frozen=True)
class DateRange:
    """Whole days `first`..`last` (inclusive) in `zone`."""

    first: date
    last: date
    zone: ZoneInfo

    @property
    def start(self) -> datetime:
        return datetime.combine(self.first, time(), self.zone).astimezone(UTC)

    @property
    def end(self) -> datetime:
        """The first instant after the range, in UTC."""
        following = self.last + timedelta(days=1)
        return datetime.combine(following, time(), self.zone).astimezone(UTC)


def parse_date(value: str | None, field: str) -> date:
    if not value:
        raise InvalidInput(
            f"{field} is missing; give an ISO date such as 2026-01-31", field
        )
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise InvalidInput(
            f"{field} {value!r} is not an ISO date (YYYY-MM-DD)", field
        ) from None
    if not EARLIEST <= day <= LATEST:
        raise InvalidInput(f"{field} {day} is outside {EARLIEST}..{LATEST}", field)
    return day


def parse_range(first: str | None, last: str | None, zone: ZoneInfo) -> DateRange:
    """Read `from` and `to` query values; both are inclusive days."""
    start = parse_date(first, "from")
    end = parse_date(last, "to")
    if end < start:
        raise InvalidInput(f"to {end} is before from {start}", "to")
    if (end - start).days > MAX_RANGE_DAYS:
        raise InvalidInput(f"the range is longer than {MAX_RANGE_DAYS} days", "to")
    return DateRange(start, end, zone)
