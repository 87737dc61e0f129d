"""Cells of the activity export: local times and text a spreadsheet shows as text.

The functions here write the same text as `export.encode_rows` does through
the csv module. Times are to the second with their offset in the
organisation's time zone. Text cells have formula characters neutralised,
and a cell is quoted as the csv module's minimal quoting does with CRLF
line ends.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from reports.export import FORMULA_STARTS

_LAST_MICROSECOND = timedelta(hours=1, microseconds=-1)
# The characters that make the csv module quote a cell when the line
# terminator is "\r\n": the delimiter, the quote character, CR and LF.
_NEEDS_QUOTES = re.compile('[,"\r\n]')


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


def text_cell(value: str | None) -> str:
    """Return a text value for a cell: empty for None, a formula neutralised."""
    if not value:
        return ""
    if value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def csv_field(text: str) -> str:
    """Quote `text` as the csv module's minimal quoting does, if it must be."""
    if _NEEDS_QUOTES.search(text) is None:
        return text
    return '"' + text.replace('"', '""') + '"'


def csv_text(value: str | None) -> str:
    """Return a text value as one neutralised and quoted CSV field."""
    return csv_field(text_cell(value))
