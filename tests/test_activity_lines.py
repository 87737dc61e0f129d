"""The SQLite export's lines against the reference path, in both read orders.

`reports.activity_lines` reads a SQLite file with sqlite3 and formats whole
lines; `reports.export.activity_rows` reads through SQLAlchemy and formats
each cell with the csv module. Both must write the same bytes for the same
touches, whether the touches' ids follow their time (read along the time
index) or not (scanned and sorted).
"""

from __future__ import annotations

import csv
import io
import random
import shutil
import sqlite3
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import NamedTuple
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.dialects import sqlite

from capture.access import Viewer
from capture.db import Database
from reports import activity_lines
from reports.activity_lines import (
    LineFormatter,
    LocalStamps,
    _connect,
    reads_in_storage_order,
    sqlite_chunks,
    stamp_key_length,
)
from reports.csv_cells import csv_text
from reports.export import ExportFilter, activity_rows, encode_rows, neutralise
from reports.periods import DateRange

ZONES = (
    "America/Los_Angeles",
    "Asia/Kolkata",
    "America/St_Johns",
    "Australia/Lord_Howe",
    "UTC",
)
UTC_ZONE = ZoneInfo("UTC")
LOS_ANGELES = ZoneInfo("America/Los_Angeles")
YEAR = DateRange(date(2026, 1, 1), date(2026, 12, 31), UTC_ZONE)
DIALECT = sqlite.dialect()
# The channel, direction and status of a row of `lines_query`.
KIND = '["call","outbound",""]'
TOUCHES = 1500
ORPHAN = 999
TRICKY_TEXT = (
    "",
    "plain",
    "=SUM(A1)",
    "+1 415",
    "-minus",
    "@at",
    "\ttab",
    "\rreturn",
    'say "hi", twice',
    "line one\r\nline two",
    "new\nline",
    "Zoë, naïve",
)


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def changes_of_offset(zone: ZoneInfo) -> list[datetime]:
    """Return the UTC hours of 2026 in which `zone` changes its offset."""
    hours = []
    hour = datetime(2026, 1, 1, tzinfo=UTC)
    while hour.year == 2026:
        last = hour + timedelta(hours=1, microseconds=-1)
        if hour.astimezone(zone).utcoffset() != last.astimezone(zone).utcoffset():
            hours.append(hour)
        hour += timedelta(hours=1)
    return hours


def touch_times(rng: random.Random) -> list[datetime]:
    """Return random times over 2026, and every minute of each hour that
    changes an offset in one of ZONES, at its last microsecond."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    times = [
        start + timedelta(seconds=rng.randrange(365 * 86400), microseconds=999_999)
        for _ in range(TOUCHES)
    ]
    for name in ZONES:
        for hour in changes_of_offset(ZoneInfo(name)):
            times += [hour + timedelta(minutes=m, microseconds=-1) for m in range(61)]
    return times


def fill(path: Path, ids_in_time_order: bool) -> None:
    rng = random.Random(5)
    connection = sqlite3.connect(path)
    now = stamp(datetime(2026, 1, 1, tzinfo=UTC))
    connection.executemany(
        "INSERT INTO teams (id, name) VALUES (?, ?)",
        [(1, "West"), (2, '=Team "B", east')],
    )
    connection.executemany(
        "INSERT INTO users (id, email, name, role, team_id, active, created_at,"
        " locale, session_version) VALUES (?, ?, ?, 'rep', ?, 1, ?, 'en', 0)",
        [
            (1, "ana@example.test", "Ana Reyes", 1, now),
            (2, "+bo@example.test", "-Bo, Jr.", 2, now),
            (3, "cy@example.test", "Cy\r\nLine", None, now),
        ],
    )
    connection.executemany(
        "INSERT INTO customers (id, name, owner_id, status, created_at)"
        " VALUES (?, ?, ?, 'active', ?)",
        [
            (i + 1, text or "Blank", i % 3 + 1, now)
            for i, text in enumerate(TRICKY_TEXT)
        ],
    )
    times = touch_times(rng)
    if ids_in_time_order:
        times.sort()
    else:
        rng.shuffle(times)
    for activity_id, moment in enumerate(times, start=1):
        insert_touch(connection, rng, activity_id, moment)
    connection.commit()
    connection.close()


def insert_touch(
    connection: sqlite3.Connection,
    rng: random.Random,
    activity_id: int,
    moment: datetime,
) -> None:
    channel = rng.choice(("call", "sms", "email", "meeting"))
    # Ids of a customer and a rep with no row, as a foreign key left unchecked.
    customer = rng.choice((None, ORPHAN, *range(1, len(TRICKY_TEXT) + 1)))
    connection.execute(
        "INSERT INTO activities (id, external_key, customer_id, rep_id, channel,"
        " direction, occurred_at, summary, automatic, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            activity_id,
            f"test:{activity_id}",
            customer,
            rng.choice((None, 1, 2, 3, ORPHAN)),
            channel,
            rng.choice(("inbound", "outbound")),
            stamp(moment),
            rng.choice(TRICKY_TEXT),
            rng.choice((0, 1)),
            stamp(moment),
        ),
    )
    if channel == "call":
        connection.execute(
            "INSERT INTO calls (activity_id, call_sid, twilio_direction, from_party,"
            " to_party, status, last_sequence, talk_seconds)"
            " VALUES (?, ?, 'outbound-api', '+1', '+1', ?, 3, ?)",
            (
                activity_id,
                f"CA{activity_id:032d}",
                rng.choice(("completed", "no-answer", "", "=odd")),
                rng.choice((None, 0, 42)),
            ),
        )
    elif channel == "sms":
        connection.execute(
            "INSERT INTO messages (activity_id, message_sid, from_party, to_party,"
            " status, body, num_media) VALUES (?, ?, '+1', '+1', ?, ?, 0)",
            (
                activity_id,
                f"SM{activity_id:032d}",
                rng.choice(("delivered", "")),
                rng.choice(TRICKY_TEXT),
            ),
        )


class Touches(NamedTuple):
    path: Path
    ids_in_time_order: bool


@pytest.fixture(scope="module", params=["ids in time order", "ids random in time"])
def touches(
    request: pytest.FixtureRequest,
    sqlite_template: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Touches:
    path = tmp_path_factory.mktemp("lines") / "touchline.db"
    shutil.copy(sqlite_template, path)
    ids_in_time_order = request.param == "ids in time order"
    fill(path, ids_in_time_order)
    return Touches(path, ids_in_time_order)


async def lines_of(path: Path, options: ExportFilter) -> bytes:
    chunks = [chunk async for chunk, _ in sqlite_chunks(str(path), DIALECT, options)]
    return b"".join(chunks)


async def reference(path: Path, options: ExportFilter) -> bytes:
    database = Database(f"sqlite:///{path}")
    try:
        async with database.reads() as session:
            rows = [
                row async for chunk in activity_rows(session, options) for row in chunk
            ]
    finally:
        await database.dispose()
    return encode_rows(rows)


@pytest.mark.parametrize("zone_name", ZONES)
async def test_lines_match_reference(touches: Touches, zone_name: str) -> None:
    zone = ZoneInfo(zone_name)
    options = ExportFilter(DateRange(YEAR.first, YEAR.last, zone), None)

    lines = await lines_of(touches.path, options)

    assert lines == await reference(touches.path, options)
    assert lines.count(b"\r\n") >= TOUCHES


async def test_lines_with_joined_customers_match_reference(
    touches: Touches, monkeypatch: pytest.MonkeyPatch
) -> None:
    # More customers than are read before the export: each row is joined.
    monkeypatch.setattr(activity_lines, "PRELOADED_CUSTOMERS", 0)
    options = ExportFilter(DateRange(YEAR.first, YEAR.last, LOS_ANGELES), None)

    lines = await lines_of(touches.path, options)

    assert lines == await reference(touches.path, options)
    assert f"{ORPHAN},,".encode() in lines


FILTERS = {
    "rep": {"rep_id": 2},
    "team": {"team_id": 2},
    "channel": {"channel": "sms"},
    "rep viewer": {"viewer": Viewer(1, "ana@example.test", "rep", 1)},
}


@pytest.mark.parametrize("name", list(FILTERS))
async def test_lines_filters_match_reference(touches: Touches, name: str) -> None:
    period = DateRange(date(2026, 3, 1), date(2026, 11, 30), UTC_ZONE)
    options = ExportFilter(period, **{"viewer": None, **FILTERS[name]})

    lines = await lines_of(touches.path, options)

    assert lines == await reference(touches.path, options)
    assert lines


def test_read_order_follows_ids(touches: Touches) -> None:
    one_day = DateRange(date(2026, 6, 1), date(2026, 6, 1), UTC_ZONE)
    reader = _connect(str(touches.path))
    try:
        whole_year = reads_in_storage_order(reader, DIALECT, ExportFilter(YEAR, None))
        day = reads_in_storage_order(reader, DIALECT, ExportFilter(one_day, None))
        rep = reads_in_storage_order(
            reader, DIALECT, ExportFilter(YEAR, None, rep_id=1)
        )
    finally:
        reader.close()

    assert whole_year is not touches.ids_in_time_order
    assert day is False
    assert rep is False


@pytest.mark.parametrize("zone_name", ZONES)
def test_local_stamps_match_zoneinfo(zone_name: str) -> None:
    zone = ZoneInfo(zone_name)
    period = DateRange(YEAR.first, YEAR.last, zone)
    formatter = LineFormatter(period, {})
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for step in range(0, 365 * 24 * 6):
        moment = start + timedelta(minutes=10 * step, seconds=7, microseconds=999_999)
        record = (1, stamp(moment), None, None, None, KIND, None, "")

        line = formatter.encode([record]).decode("utf-8")

        local = moment.astimezone(zone)
        expected = local.isoformat(timespec="seconds")
        assert line.split(",")[1:3] == [expected, local.date().isoformat()], moment


def test_stamp_key_length_by_zone() -> None:
    def length(name: str) -> int:
        return stamp_key_length(DateRange(YEAR.first, YEAR.last, ZoneInfo(name)))

    assert length("America/Los_Angeles") == 13
    assert length("UTC") == 13
    assert length("Asia/Kolkata") == 16
    # +11:00 in January, +10:30 from April to October.
    assert length("Australia/Lord_Howe") == 16


def test_local_stamps_skip_uneven_hours() -> None:
    stamps = LocalStamps(ZoneInfo("America/St_Johns"), 13)

    # St John's changes from -03:30 to -02:30 at 05:30 UTC on 8 March 2026,
    # and neither offset is a whole number of hours.
    assert stamps["2026-03-08 05"] is None
    assert stamps["2026-06-01 12"] is None
    assert stamps["2026-03-08T05"] is None


def test_odd_timestamp_text_converted_alone() -> None:
    period = DateRange(YEAR.first, YEAR.last, ZoneInfo("America/Los_Angeles"))
    formatter = LineFormatter(period, {})
    record = (1, "2026-06-01 12:34", None, None, None, KIND, None, "")

    line = formatter.encode([record]).decode("utf-8")

    assert line.startswith("1,2026-06-01T05:34:00-07:00,2026-06-01,")


def test_csv_text_matches_csv_module() -> None:
    rng = random.Random(3)
    alphabet = ["a", " ", ",", '"', "\r", "\n", "\t", "=", "+", "-", "@", "'", "é"]
    values = [
        "".join(rng.choices(alphabet, k=rng.randrange(0, 6))) for _ in range(3000)
    ]
    for value in values:
        buffer = io.StringIO()
        # Two cells, as in a row, so that an empty cell is not quoted.
        csv.writer(buffer, lineterminator="\r\n").writerow([neutralise(value), "x"])

        assert csv_text(value) + ",x\r\n" == buffer.getvalue(), repr(value)
