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


KINDS = ("month", "quarter", "year")
MONTHS_OF = {"month": 1, "quarter": 3, "year": 12}


@dataclass(frozen=True)
class CalendarPeriod:
    """A calendar month, quarter or year in the organisation's time zone."""

    kind: str
    first: date
    zone: ZoneInfo

    @property
    def months(self) -> int:
        return MONTHS_OF[self.kind]

    @property
    def label(self) -> str:
        if self.kind == "year":
            return str(self.first.year)
        if self.kind == "quarter":
            return f"{self.first.year}-Q{(self.first.month - 1) // 3 + 1}"
        return f"{self.first.year}-{self.first.month:02d}"

    @property
    def range(self) -> DateRange:
        following = _add_months(self.first, self.months)
        return DateRange(self.first, following - timedelta(days=1), self.zone)

    def shifted(self, periods: int) -> CalendarPeriod:
        """The period `periods` periods later (earlier when negative)."""
        return CalendarPeriod(
            self.kind, _add_months(self.first, periods * self.months), self.zone
        )

    def previous(self) -> CalendarPeriod:
        return self.shifted(-1)

    def year_earlier(self) -> CalendarPeriod:
        return CalendarPeriod(self.kind, _add_months(self.first, -12), self.zone)


def _add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def period_containing(kind: str, day: date, zone: ZoneInfo) -> CalendarPeriod:
    if kind == "year":
        return CalendarPeriod(kind, date(day.year, 1, 1), zone)
    if kind == "quarter":
        return CalendarPeriod(
            kind, date(day.year, (day.month - 1) // 3 * 3 + 1, 1), zone
        )
    return CalendarPeriod(kind, date(day.year, day.month, 1), zone)


def parse_period(
    kind: str | None, label: str | None, today: date, zone: ZoneInfo
) -> CalendarPeriod:
    """Read `kind` (month, quarter, year) and `period` (2026-11, 2026-Q4, 2026).

    A missing `period` means the one containing `today`.
    """
    kind = kind or "month"
    if kind not in KINDS:
        raise InvalidInput(f"kind {kind!r} is not one of {', '.join(KINDS)}", "kind")
    if not label:
        return period_containing(kind, today, zone)
    first = _first_day(kind, label.strip())
    if first is None or not EARLIEST <= first <= LATEST:
        examples = {"month": "2026-11", "quarter": "2026-Q4", "year": "2026"}
        raise InvalidInput(
            f"period {label!r} is not a {kind} such as {examples[kind]}", "period"
        )
    return CalendarPeriod(kind, first, zone)


def _first_day(kind: str, label: str) -> date | None:
    try:
        if kind == "year" and label.isdigit() and len(label) == 4:
            return date(int(label), 1, 1)
        year, _, rest = label.partition("-")
        if not (year.isdigit() and len(year) == 4):
            return None
        if (
            kind == "quarter"
            and rest[:1] in ("Q", "q")
            and rest[1:] in ("1", "2", "3", "4")
        ):
            return date(int(year), (int(rest[1:]) - 1) * 3 + 1, 1)
        if kind == "month" and rest.isdigit() and len(rest) == 2:
            return date(int(year), int(rest), 1)
    except ValueError:
        return None
    return None
