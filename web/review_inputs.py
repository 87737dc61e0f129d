"""Read the query and form values of search, tracker and review requests."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from aiohttp.web_request import FileField
from multidict import MultiDictProxy

from capture.errors import InvalidInput
from capture.queries import parse_id
from reports.periods import parse_date
from transcripts.review_queue import REVIEWED_CHOICES, QueueFilters
from transcripts.search import SOURCES, SearchFilters

# Control characters other than tab and line breaks, which text areas send.
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
MOMENT = re.compile(r"(?:(\d+):)?(\d+)(?:[.,](\d{1,3}))?")
Form = MultiDictProxy[str | bytes | bytearray | FileField]


def optional_id(raw: str | None, field: str) -> int | None:
    if raw is None or raw == "":
        return None
    number = parse_id(raw)
    if number is None:
        raise InvalidInput(f"{field} {raw[:20]!r} is not an id", field)
    return number


def day_bounds(
    first: str | None, last: str | None, zone: ZoneInfo
) -> tuple[datetime | None, datetime | None]:
    """Turn optional inclusive `from` and `to` days into UTC bounds."""
    start = end = None
    if first:
        start = datetime.combine(parse_date(first, "from"), time(), zone)
    if last:
        following = parse_date(last, "to") + timedelta(days=1)
        end = datetime.combine(following, time(), zone)
    if start is not None and end is not None and end <= start:
        raise InvalidInput(f"to {last} is before from {first}", "to")
    return start, end


def search_filters(query: Mapping[str, str], zone: ZoneInfo) -> SearchFilters:
    source = query.get("source", "")
    if source and source not in SOURCES:
        raise InvalidInput(
            f"source {source[:20]!r} is not one of {', '.join(SOURCES)}", "source"
        )
    start, end = day_bounds(query.get("from"), query.get("to"), zone)
    return SearchFilters(
        rep_id=optional_id(query.get("rep"), "rep"),
        customer_id=optional_id(query.get("customer"), "customer"),
        start=start,
        end=end,
        sources=(source,) if source else SOURCES,
    )


def offset_cursor(raw: str | None) -> int:
    if not raw:
        return 0
    number = parse_id(raw)
    if number is None:
        raise InvalidInput(f"cursor {raw[:20]!r} is not valid", "cursor")
    return number


def queue_filters(query: Mapping[str, str]) -> QueueFilters:
    reviewed = query.get("reviewed") or "no"
    if reviewed not in REVIEWED_CHOICES:
        raise InvalidInput(
            f"reviewed {reviewed[:20]!r} is not one of {', '.join(REVIEWED_CHOICES)}",
            "reviewed",
        )
    minutes = optional_id(query.get("min_minutes"), "min_minutes")
    return QueueFilters(
        min_talk_seconds=None if minutes is None else minutes * 60,
        tracker_id=optional_id(query.get("tracker"), "tracker"),
        signing_stage=query.get("signing") in ("1", "on", "yes", "true"),
        rep_id=optional_id(query.get("rep"), "rep"),
        reviewed=reviewed,
    )


def parse_moment(raw: str, field: str = "at") -> int:
    """Read a moment of a recording, "75", "1:15" or "1:15.5", as milliseconds."""
    found = MOMENT.fullmatch(raw.strip())
    if found is None:
        raise InvalidInput(
            f"{field} {raw[:20]!r} is not a moment such as 1:15 or 75", field
        )
    minutes, seconds, fraction = found.groups()
    if minutes is not None and int(seconds) >= 60:
        raise InvalidInput(f"{field} {raw[:20]!r} has 60 or more seconds", field)
    total = int(minutes or 0) * 60 + int(seconds)
    return total * 1000 + int((fraction or "0").ljust(3, "0"))


def long_text(form: Form, name: str, max_length: int) -> str:
    """Return a multi-line form field, with tabs and line breaks allowed."""
    value = form.get(name, "")
    if not isinstance(value, str):
        raise InvalidInput(f"{name} must be text, not a file", name)
    if CONTROL.search(value):
        raise InvalidInput(f"{name} contains control characters", name)
    if len(value) > max_length:
        raise InvalidInput(f"{name} is longer than {max_length} characters", name)
    return value
