"""Reports on a large SQLite database: kept counts against raw aggregates.

Builds a SQLite database with `--touches` touches (default 1,000,000) over
two years for 200 reps, half of them calls, plus customers, deals and
payments. Then, in the same run:

- the per-rep summary of one month (read from the monthly and daily
  counts) against one raw GROUP BY over the touches and their calls: the
  numbers must be identical, and the time of each is printed with the
  speed-up;
- the KPI page (a month with its previous period, the year-earlier period
  and a 12-month trend, read from the customer firsts) against one raw SQL
  aggregate of the same month's follow-up figures over the touches.

Both pages are timed twice in one process: the first ("cold") call
includes building and compiling their statements, the second ("warm")
call is what a running server pays.
- the CSV export of every touch by `touchline export activities` in a
  child process: rows per second and the child's peak memory (max RSS).

With --keep, a database left there by an earlier run is reused: it is
upgraded, and its kept counts are rebuilt when they are empty.

The touches' ids are random in time by default. With --time-order they
are inserted in time order with 5% arriving late, as the webhook writer
inserts them in production, into reports-time.db. The export reads rows
in time order, so the two files show its cost when ids follow time and
when they do not. The default stays random in time because the summary
and KPI figures compare against raw aggregates that run faster when ids
follow time.

Run: .venv/bin/python bench/reports.py [--touches 1000000] [--keep DIR]
     [--time-order]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import true

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from capture import migrate, rollups  # noqa: E402
from capture.access import Viewer  # noqa: E402
from capture.db import Database  # noqa: E402
from reports.kpis import compute_kpis, kpi_report  # noqa: E402
from reports.periods import CalendarPeriod  # noqa: E402
from reports.reps import rep_summaries  # noqa: E402

ZONE = ZoneInfo("America/Los_Angeles")
REPS = 200
CUSTOMERS = 40_000
START = datetime(2025, 1, 1, 8, tzinfo=UTC)
SPAN_SECONDS = 730 * 24 * 3600
MONTH = CalendarPeriod("month", date(2026, 6, 1), ZONE)
OPS = Viewer(user_id=0, email="", role="ops", team_id=None)
CHANNELS = ("call", "call", "sms", "email", "meeting")
# With --time-order: the share of touches inserted after later ones, and
# how late at most.
LATE_SHARE = 0.05
LATE_MAX_SECONDS = 30 * 24 * 3600


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def populate(path: Path, touches: int, time_order: bool) -> None:
    random.seed(7)
    connection = sqlite3.connect(path)
    now = stamp(START)
    connection.executemany(
        "INSERT INTO teams (id, name) VALUES (?, ?)",
        [(team, f"Team {team}") for team in range(1, 11)],
    )
    connection.executemany(
        "INSERT INTO users (id, email, name, role, team_id, active, created_at,"
        " locale, session_version) VALUES (?, ?, ?, 'rep', ?, 1, ?, 'en', 0)",
        [
            (rep, f"rep{rep}@bench.test", f"Rep {rep:03d}", rep % 10 + 1, now)
            for rep in range(1, REPS + 1)
        ],
    )
    customers = []
    for customer in range(1, CUSTOMERS + 1):
        created = START + timedelta(seconds=random.randrange(SPAN_SECONDS))
        customers.append(
            (customer, f"Customer {customer}", customer % REPS + 1, stamp(created))
        )
    connection.executemany(
        "INSERT INTO customers (id, name, owner_id, status, created_at)"
        " VALUES (?, ?, ?, 'active', ?)",
        customers,
    )
    _deals(connection, customers)
    _touches(connection, touches, time_order)
    connection.commit()
    connection.close()


def _deals(connection: sqlite3.Connection, customers: list[tuple]) -> None:
    deals, payments = [], []
    for customer, _, owner, created in customers[::4]:
        opened = datetime.fromisoformat(created).replace(tzinfo=UTC)
        won = opened + timedelta(days=random.randrange(5, 120))
        amount = random.randrange(10_000, 500_000)
        deal_id = len(deals) + 1
        deals.append(
            (
                deal_id,
                customer,
                owner,
                "won",
                "USD",
                amount,
                amount,
                stamp(opened),
                stamp(won),
            )
        )
        payments.append((deal_id, "USD", amount // 2, stamp(won + timedelta(days=10))))
    connection.executemany(
        "INSERT INTO deals (id, customer_id, owner_id, title, stage, currency,"
        " expected_minor, signed_minor, created_at, won_at, lost_reason)"
        " VALUES (?, ?, ?, '', ?, ?, ?, ?, ?, ?, '')",
        deals,
    )
    connection.executemany(
        "INSERT INTO payments (deal_id, currency, amount_minor, received_at)"
        " VALUES (?, ?, ?, ?)",
        payments,
    )


def _random_times() -> Iterator[str]:
    while True:
        yield stamp(START + timedelta(seconds=random.randrange(SPAN_SECONDS)))


def _arrival_times(total: int) -> Iterator[str]:
    """Yield touch times in the order a webhook writer inserts them.

    Most touches arrive as they happen. A share of LATE_SHARE arrives late
    (a retried webhook, an import of older touches), up to LATE_MAX_SECONDS
    after it happened, so its id is higher than those of later touches.
    """
    rng = random.Random(11)
    offsets = sorted(rng.randrange(SPAN_SECONDS) for _ in range(total))
    arrivals = []
    for offset in offsets:
        late = rng.random() < LATE_SHARE
        delay = rng.randrange(60, LATE_MAX_SECONDS) if late else 0
        arrivals.append((offset + delay, offset))
    arrivals.sort()
    for _, offset in arrivals:
        yield stamp(START + timedelta(seconds=offset))


def _touches(connection: sqlite3.Connection, total: int, time_order: bool) -> None:
    times = _arrival_times(total) if time_order else _random_times()
    chunk = 50_000
    for first in range(1, total + 1, chunk):
        activities, calls = [], []
        for activity_id in range(first, min(first + chunk, total + 1)):
            moment = next(times)
            channel = random.choice(CHANNELS)
            direction = random.choice(("inbound", "outbound"))
            customer = random.randrange(1, CUSTOMERS + 1)
            activities.append(
                (
                    activity_id,
                    f"bench:{activity_id}",
                    customer,
                    customer % REPS + 1,
                    channel,
                    direction,
                    moment,
                    moment,
                )
            )
            if channel == "call":
                talk = random.choice((0, random.randrange(1, 900)))
                calls.append(
                    (
                        activity_id,
                        f"CA{activity_id:032d}",
                        "outbound-api",
                        "+1",
                        "+1",
                        "completed" if talk else "no-answer",
                        3,
                        talk,
                    )
                )
        connection.executemany(
            "INSERT INTO activities (id, external_key, customer_id, rep_id, channel,"
            " direction, occurred_at, summary, automatic, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, '', 0, ?)",
            activities,
        )
        connection.executemany(
            "INSERT INTO calls (activity_id, call_sid, twilio_direction, from_party,"
            " to_party, status, last_sequence, talk_seconds)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            calls,
        )


RAW_SUMMARY = """
SELECT a.rep_id,
       SUM(a.channel = 'call' AND a.direction = 'outbound'),
       SUM(a.channel = 'call' AND a.direction = 'inbound'),
       SUM(a.channel = 'call' AND c.talk_seconds > 0),
       COALESCE(SUM(CASE WHEN a.channel = 'call' THEN c.talk_seconds END), 0),
       SUM(a.channel IN ('sms', 'mms')),
       SUM(a.channel = 'email'),
       SUM(a.channel NOT IN ('call', 'sms', 'mms', 'email'))
FROM activities a LEFT JOIN calls c ON c.activity_id = a.id
WHERE a.occurred_at >= ? AND a.occurred_at < ? AND a.automatic = 0
  AND a.rep_id IS NOT NULL
GROUP BY a.rep_id
"""

RAW_FOLLOW_UP = """
WITH first_wins AS (
  SELECT customer_id, MIN(won_at) AS won_at FROM deals
  WHERE stage = 'won' GROUP BY customer_id
)
SELECT f.customer_id, f.won_at, MIN(a.occurred_at), COUNT(a.id)
FROM first_wins f
JOIN activities a ON a.customer_id = f.customer_id AND a.occurred_at <= f.won_at
WHERE f.won_at >= ? AND f.won_at < ? AND a.automatic = 0
GROUP BY f.customer_id, f.won_at
"""


def raw_summary(path: Path) -> tuple[dict[int, tuple[int, ...]], float]:
    span = MONTH.range
    connection = sqlite3.connect(path)
    started = time.perf_counter()
    rows = connection.execute(
        RAW_SUMMARY, (stamp(span.start), stamp(span.end))
    ).fetchall()
    elapsed = time.perf_counter() - started
    connection.close()
    return {row[0]: tuple(int(v or 0) for v in row[1:]) for row in rows}, elapsed


def raw_follow_up(path: Path) -> tuple[tuple[float, float], float]:
    span = MONTH.range
    connection = sqlite3.connect(path)
    started = time.perf_counter()
    rows = connection.execute(
        RAW_FOLLOW_UP, (stamp(span.start), stamp(span.end))
    ).fetchall()
    elapsed = time.perf_counter() - started
    connection.close()
    cycles = [
        (
            datetime.fromisoformat(won).replace(tzinfo=UTC).astimezone(ZONE).date()
            - datetime.fromisoformat(first).replace(tzinfo=UTC).astimezone(ZONE).date()
        ).days
        for _, won, first, _ in rows
    ]
    counts = [count for *_, count in rows]
    return (statistics.median(cycles), statistics.fmean(counts)), elapsed


async def service_figures(url: str) -> dict[str, object]:
    database = Database(url)
    try:
        async with database.reads() as session:
            summary_seconds = []
            page_seconds = []
            for _ in ("cold", "warm"):
                started = time.perf_counter()
                summaries = await rep_summaries(session, MONTH.range, OPS)
                summary_seconds.append(time.perf_counter() - started)
                started = time.perf_counter()
                await kpi_report(session, MONTH, true())
                page_seconds.append(time.perf_counter() - started)
            kpis = await compute_kpis(session, MONTH)
    finally:
        await database.dispose()
    counts = {
        s.rep_id: (
            s.calls_made,
            s.calls_received,
            s.answered_calls,
            s.talk_seconds,
            s.sms,
            s.emails,
            s.other_touches,
        )
        for s in summaries
        if s.calls or s.sms or s.emails or s.other_touches
    }
    return {
        "counts": counts,
        "summary_seconds": summary_seconds,
        "kpi_page_seconds": page_seconds,
        "follow_up": (kpis.cycle_days_median, kpis.follow_up_count),
    }


# GNU time: measures the export's own peak memory (max RSS).
TIME = "/usr/bin/time"


def export_csv(path: Path, touches: int, folder: Path) -> dict[str, float]:
    env = dict(os.environ)
    config = folder / "bench.toml"
    config.write_text("# settings come from the environment\n")
    env.update(
        {
            "TOUCHLINE_CONFIG": str(config),
            "TOUCHLINE_DATA_DIR": str(folder / "data"),
            "TOUCHLINE_DATABASE_URL": f"sqlite:///{path}",
            "TOUCHLINE_TIMEZONE": str(ZONE),
            "TOUCHLINE_SECRET_KEY": "bench-secret-key-bench-secret-key",
            "TOUCHLINE_TWILIO_AUTH_TOKEN": "bench-auth-token",
        }
    )
    touchline = str(Path(sys.executable).with_name("touchline"))
    command = [
        touchline,
        "export",
        "activities",
        "--from",
        "2025-01-01",
        "--to",
        "2027-01-01",
        "-o",
        os.devnull,
    ]
    # The export's peak comes from GNU time, which forks it from a small
    # process. A child forked from this process inherits its resident pages
    # (the populated data, several hundred MB) in its peak, so os.wait4
    # reported the bench's memory rather than the export's.
    peak_file = folder / "export-peak.txt"
    started = time.perf_counter()
    child = subprocess.run(
        [TIME, "-f", "%M", "-o", str(peak_file), *command],
        env=env,
        stderr=subprocess.DEVNULL,
        check=False,
    )
    elapsed = time.perf_counter() - started
    if child.returncode != 0:
        raise SystemExit(f"export failed with status {child.returncode}")
    peak_kib = int(peak_file.read_text().split()[-1])
    return {
        "rows": touches,
        "seconds": round(elapsed, 2),
        "rows_per_second": round(touches / elapsed),
        "peak_rss_mb": round(peak_kib / 1024, 1),
    }


def _seconds(figures: dict[str, object], name: str) -> list[float]:
    values = figures[name]
    assert isinstance(values, list)
    return [float(value) for value in values]


def prepare(url: str, path: Path, touches: int, time_order: bool) -> None:
    """Create and fill the database, or upgrade one kept from an earlier run."""
    fresh = not path.exists()
    migrate.upgrade(url)
    if fresh:
        started = time.perf_counter()
        populate(path, touches, time_order)
        print(f"populated in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    connection = sqlite3.connect(path)
    (months,) = connection.execute("SELECT count(*) FROM touch_months").fetchone()
    connection.close()
    if months:
        return
    database = Database(url)
    started = time.perf_counter()
    with database.batch_sessions()() as session, session.begin():
        rollups.rebuild(session, ZONE)
    asyncio.run(database.dispose())
    print(
        f"kept counts rebuilt in {time.perf_counter() - started:.1f} s",
        file=sys.stderr,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--touches", type=int, default=1_000_000)
    parser.add_argument("--keep", type=Path, help="folder to keep the database in")
    parser.add_argument(
        "--time-order",
        action="store_true",
        help="insert touches in time order with 5%% late, as webhooks do",
    )
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="touchline-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / ("reports-time.db" if args.time_order else "reports.db")
    url = f"sqlite:///{path}"
    prepare(url, path, args.touches, args.time_order)
    raw_counts, raw_seconds = raw_summary(path)
    follow_up, raw_follow_seconds = raw_follow_up(path)
    service = asyncio.run(service_figures(url))
    summary = _seconds(service, "summary_seconds")
    page = _seconds(service, "kpi_page_seconds")
    export = export_csv(path, args.touches, folder)
    result = {
        "machine": platform.machine(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "touches": args.touches,
        "touch_ids": "in time order" if args.time_order else "random in time",
        "month": MONTH.label,
        "summary_identical": service["counts"] == raw_counts,
        "summary_seconds_cold_warm": [round(value, 4) for value in summary],
        "raw_summary_seconds": round(raw_seconds, 4),
        "summary_speedup_cold_warm": [round(raw_seconds / v, 1) for v in summary],
        "follow_up_identical": tuple(service["follow_up"]) == follow_up,
        "kpi_page_seconds_cold_warm": [round(value, 4) for value in page],
        "raw_follow_up_seconds": round(raw_follow_seconds, 4),
        "kpi_speedup_cold_warm": [round(raw_follow_seconds / v, 1) for v in page],
        "export": export,
    }
    print(json.dumps(result, indent=2))
    return 0 if result["summary_identical"] and result["follow_up_identical"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
