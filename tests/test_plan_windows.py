"""Plan windows at the edges of days and weeks and on daylight-saving days."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from conftest import make_settings

from capture.errors import InvalidInput
from capture.settings import SettingsError
from capture.windows import EXACT_GRACE, Due, WindowRules, exact, resolve

NEW_YORK = ZoneInfo("America/New_York")
LONDON = ZoneInfo("Europe/London")
SHANGHAI = ZoneInfo("Asia/Shanghai")
RULES = WindowRules()


def local(zone: ZoneInfo, *parts: int) -> datetime:
    return datetime(*parts, tzinfo=zone)  # type: ignore[misc]


def in_zone(due: Due, zone: ZoneInfo) -> tuple[str, str]:
    return (
        due.start.astimezone(zone).strftime("%Y-%m-%d %H:%M"),
        due.end.astimezone(zone).strftime("%Y-%m-%d %H:%M"),
    )


def test_window_later_today_in_working_day() -> None:
    now = local(SHANGHAI, 2026, 12, 2, 10, 30)

    due = resolve("later_today", now, SHANGHAI, RULES)

    assert due.start == now
    assert in_zone(due, SHANGHAI) == ("2026-12-02 10:30", "2026-12-02 18:00")


def test_window_later_today_after_work() -> None:
    now = local(SHANGHAI, 2026, 12, 2, 23, 59)

    due = resolve("later_today", now, SHANGHAI, RULES)

    assert in_zone(due, SHANGHAI) == ("2026-12-02 23:59", "2026-12-03 00:00")


def test_window_tonight_before_evening() -> None:
    due = resolve("tonight", local(SHANGHAI, 2026, 12, 2, 9, 0), SHANGHAI, RULES)

    assert in_zone(due, SHANGHAI) == ("2026-12-02 18:00", "2026-12-02 22:00")


def test_window_tonight_during_evening() -> None:
    due = resolve("tonight", local(SHANGHAI, 2026, 12, 2, 19, 15), SHANGHAI, RULES)

    assert in_zone(due, SHANGHAI) == ("2026-12-02 19:15", "2026-12-02 22:00")


def test_window_tonight_at_2359() -> None:
    due = resolve("tonight", local(SHANGHAI, 2026, 12, 2, 23, 59), SHANGHAI, RULES)

    assert in_zone(due, SHANGHAI) == ("2026-12-02 23:59", "2026-12-03 00:00")


def test_window_tomorrow_at_2359() -> None:
    due = resolve("tomorrow", local(SHANGHAI, 2026, 12, 2, 23, 59), SHANGHAI, RULES)

    assert in_zone(due, SHANGHAI) == ("2026-12-03 00:00", "2026-12-04 00:00")


def test_window_tomorrow_at_midnight() -> None:
    due = resolve("tomorrow", local(SHANGHAI, 2026, 12, 3, 0, 0), SHANGHAI, RULES)

    assert in_zone(due, SHANGHAI) == ("2026-12-04 00:00", "2026-12-05 00:00")


def test_window_later_today_at_midnight() -> None:
    due = resolve("later_today", local(SHANGHAI, 2026, 12, 3, 0, 0), SHANGHAI, RULES)

    assert in_zone(due, SHANGHAI) == ("2026-12-03 00:00", "2026-12-03 18:00")


def test_window_this_week_sunday_night() -> None:
    # 2026-12-06 is a Sunday; weeks start on Monday by default.
    now = local(SHANGHAI, 2026, 12, 6, 23, 30)

    due = resolve("this_week", now, SHANGHAI, RULES)

    assert in_zone(due, SHANGHAI) == ("2026-12-06 23:30", "2026-12-07 00:00")


def test_window_next_week_sunday_night() -> None:
    now = local(SHANGHAI, 2026, 12, 6, 23, 30)

    due = resolve("next_week", now, SHANGHAI, RULES)

    assert in_zone(due, SHANGHAI) == ("2026-12-07 00:00", "2026-12-14 00:00")


def test_window_next_week_on_monday() -> None:
    now = local(SHANGHAI, 2026, 12, 7, 0, 0)

    due = resolve("next_week", now, SHANGHAI, RULES)

    assert in_zone(due, SHANGHAI) == ("2026-12-14 00:00", "2026-12-21 00:00")


def test_window_week_starting_sunday() -> None:
    rules = WindowRules(week_start=6)
    now = local(SHANGHAI, 2026, 12, 5, 23, 59)  # a Saturday

    this_week = resolve("this_week", now, SHANGHAI, rules)
    next_week = resolve("next_week", now, SHANGHAI, rules)

    assert in_zone(this_week, SHANGHAI) == ("2026-12-05 23:59", "2026-12-06 00:00")
    assert in_zone(next_week, SHANGHAI) == ("2026-12-06 00:00", "2026-12-13 00:00")


def test_window_next_month_in_december() -> None:
    due = resolve("next_month", local(SHANGHAI, 2026, 12, 31, 23, 59), SHANGHAI, RULES)

    assert in_zone(due, SHANGHAI) == ("2027-01-01 00:00", "2027-02-01 00:00")


def test_window_tomorrow_spring_forward_new_york() -> None:
    # Clocks in New York go from 02:00 to 03:00 on Sunday 2027-03-14.
    now = local(NEW_YORK, 2027, 3, 13, 15, 0)

    due = resolve("tomorrow", now, NEW_YORK, RULES)

    assert in_zone(due, NEW_YORK) == ("2027-03-14 00:00", "2027-03-15 00:00")
    assert due.end - due.start == timedelta(hours=23)
    assert due.start == datetime(2027, 3, 14, 5, 0, tzinfo=UTC)


def test_window_tomorrow_fall_back_new_york() -> None:
    # Clocks in New York go from 02:00 back to 01:00 on Sunday 2026-11-01.
    now = local(NEW_YORK, 2026, 10, 31, 23, 59)

    due = resolve("tomorrow", now, NEW_YORK, RULES)

    assert in_zone(due, NEW_YORK) == ("2026-11-01 00:00", "2026-11-02 00:00")
    assert due.end - due.start == timedelta(hours=25)
    assert due.end == datetime(2026, 11, 2, 5, 0, tzinfo=UTC)


def test_window_this_week_spring_forward_london() -> None:
    # Clocks in London go from 01:00 to 02:00 on Sunday 2027-03-28.
    now = local(LONDON, 2027, 3, 28, 0, 30)

    due = resolve("this_week", now, LONDON, RULES)

    assert in_zone(due, LONDON) == ("2027-03-28 00:30", "2027-03-29 00:00")
    assert due.end - due.start == timedelta(hours=22, minutes=30)


def test_window_tonight_fall_back_london() -> None:
    # Clocks in London go from 02:00 back to 01:00 on Sunday 2026-10-25.
    now = local(LONDON, 2026, 10, 25, 0, 30)

    tonight = resolve("tonight", now, LONDON, RULES)
    later = resolve("later_today", now, LONDON, RULES)

    assert in_zone(tonight, LONDON) == ("2026-10-25 18:00", "2026-10-25 22:00")
    assert tonight.start == datetime(2026, 10, 25, 18, 0, tzinfo=UTC)
    assert later.end == datetime(2026, 10, 25, 18, 0, tzinfo=UTC)
    assert later.end - later.start == timedelta(hours=18, minutes=30)


def test_window_in_spring_gap_moves_after_it() -> None:
    # A working day ending 02:30 ends in New York's gap on 2027-03-14.
    rules = WindowRules(day_start=60, day_end=150)
    now = local(NEW_YORK, 2027, 3, 14, 0, 10)

    due = resolve("later_today", now, NEW_YORK, rules)

    # 02:30 standard time is 03:30 daylight time, the first minute after the gap.
    assert in_zone(due, NEW_YORK) == ("2027-03-14 00:10", "2027-03-14 03:30")
    assert due.end == datetime(2027, 3, 14, 7, 30, tzinfo=UTC)


def test_window_next_week_across_dst_london() -> None:
    now = local(LONDON, 2027, 3, 24, 12, 0)

    due = resolve("next_week", now, LONDON, RULES)

    assert in_zone(due, LONDON) == ("2027-03-29 00:00", "2027-04-05 00:00")
    assert due.start == datetime(2027, 3, 28, 23, 0, tzinfo=UTC)


def test_window_shanghai_has_no_dst() -> None:
    for month in (3, 11):
        now = local(SHANGHAI, 2027, month, 10, 12, 0)
        due = resolve("tomorrow", now, SHANGHAI, RULES)
        assert due.end - due.start == timedelta(hours=24)
        assert due.start.astimezone(UTC).hour == 16


def test_window_unknown_rejected() -> None:
    with pytest.raises(InvalidInput) as raised:
        resolve("someday", datetime.now(UTC), SHANGHAI, RULES)

    assert raised.value.field == "window"


def test_window_exact_time_grace() -> None:
    moment = local(NEW_YORK, 2026, 12, 2, 15, 0)

    due = exact(moment)

    assert due.start == moment
    assert due.end - due.start == EXACT_GRACE


def test_window_rules_from_settings(tmp_path: object) -> None:
    settings = make_settings(
        tmp_path,  # type: ignore[arg-type]
        "sqlite://",
        working_hours="08:30-17:00",
        evening_hours="19:00-24:00",
        week_start="Sunday",
    )

    rules = WindowRules.of(settings)

    assert rules == WindowRules(510, 1020, 1140, 1440, 6)


def test_window_tonight_until_midnight(tmp_path: object) -> None:
    rules = WindowRules(evening_start=19 * 60, evening_end=24 * 60)

    due = resolve("tonight", local(SHANGHAI, 2026, 12, 2, 20, 0), SHANGHAI, rules)

    assert in_zone(due, SHANGHAI) == ("2026-12-02 20:00", "2026-12-03 00:00")


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("working_hours", "18:00-09:00"),
        ("working_hours", "9-17"),
        ("evening_hours", "18:00-24:30"),
        ("week_start", "funday"),
    ],
)
def test_window_settings_invalid(tmp_path: object, key: str, value: str) -> None:
    with pytest.raises(SettingsError, match=key):
        make_settings(tmp_path, "sqlite://", **{key: value})  # type: ignore[arg-type]
