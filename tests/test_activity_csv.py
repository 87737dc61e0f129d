"""The activity export's fast CSV rows against the row-by-row reference.

`reports.activity_csv` formats the driver's raw rows; `reports.export`
builds rows of Python values and formats each cell. Both must write the
same bytes for the same touches.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from reports.activity_csv import LocalTimes, _encode, row_formatter
from reports.export import activity_row, encode_rows


def raw(moment: datetime, **values: Any) -> tuple[Any, ...]:
    """A row of the export query as sqlite3 returns it."""
    row = {
        "activity_id": 7,
        "occurred_at": moment.replace(tzinfo=None).isoformat(" ", "microseconds"),
        "rep_name": "Ana Reyes",
        "rep_email": "ana@example.test",
        "team": "West",
        "customer_id": 3,
        "customer": "Harbor Dental",
        "channel": "call",
        "direction": "outbound",
        "call_status": "completed",
        "message_id": None,
        "message_status": None,
        "talk_seconds": 42,
        "body": None,
        "summary": "",
        "automatic": 0,
    }
    row.update(values)
    return tuple(row.values())


def reference(record: tuple[Any, ...], zone: ZoneInfo) -> bytes:
    """The same row through the reference path, with SQLAlchemy's types."""
    values = list(record)
    values[1] = datetime.fromisoformat(values[1]).replace(tzinfo=UTC)
    values[15] = bool(values[15])
    return encode_rows([activity_row(values, zone)])


LOS_ANGELES = ZoneInfo("America/Los_Angeles")
# 09:00 UTC on 1 November 2026: daylight-saving time ends in Los Angeles.
DST_END = datetime(2026, 11, 1, 9, tzinfo=UTC)
ROWS = {
    "plain call": raw(DST_END - timedelta(minutes=1, microseconds=-250)),
    "after the change": raw(DST_END + timedelta(seconds=1)),
    "formula text": raw(
        DST_END,
        rep_name="=SUM(A1)",
        rep_email="+1@x.test",
        team="-team",
        customer="@customer",
        summary="\tnote",
    ),
    "carriage return": raw(DST_END, customer="\rname", summary="a,b\r\nc"),
    "no rep or customer": raw(
        DST_END,
        rep_name=None,
        rep_email=None,
        team=None,
        customer_id=None,
        customer=None,
        talk_seconds=None,
        call_status=None,
    ),
    "sms body": raw(
        DST_END,
        channel="sms",
        message_id=5,
        message_status="delivered",
        call_status=None,
        talk_seconds=None,
        body='=HYPERLINK("x")',
    ),
    "automatic email": raw(
        DST_END,
        channel="email",
        direction="outbound",
        automatic=1,
        call_status=None,
        talk_seconds=None,
    ),
    "received email": raw(
        DST_END,
        channel="email",
        direction="inbound",
        call_status=None,
        talk_seconds=None,
    ),
}


@pytest.mark.parametrize("name", list(ROWS))
def test_fast_row_matches_reference(name: str) -> None:
    record = ROWS[name]

    fast = _encode(row_formatter(LOS_ANGELES), [record], [], {})

    assert fast == reference(record, LOS_ANGELES)


@pytest.mark.parametrize(
    "zone_name", ["America/St_Johns", "Asia/Kolkata", "Australia/Lord_Howe", "UTC"]
)
def test_local_times_match_zoneinfo(zone_name: str) -> None:
    zone = ZoneInfo(zone_name)
    times = LocalTimes(zone)
    # Every 10 minutes over 2026, which crosses each zone's changes of offset,
    # including St John's changes at 05:30 UTC.
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for step in range(0, 365 * 24 * 6):
        moment = start + timedelta(minutes=10 * step, seconds=7)
        text = moment.replace(tzinfo=None).isoformat(" ", "microseconds")

        expected = moment.astimezone(zone).isoformat(timespec="seconds")

        assert times.text(text) == expected, text
