"""Reports on a large SQLite database: kept counts against raw aggregates.

Builds a SQLite database with `--touches` touches (default 1,000,000) over
two years for 200 reps, half of them calls, plus customers, deals and
payments. Then, in the same run:

- the per-rep summary of one month (read from the monthly and daily
  counts) against one raw GROUP BY over the touches and their calls: the
  numbers must be identical, and the time of each is printed with the
  speed-up;
- the KPI page (a month with its previous period, the year-earlier period
  and a 12-month trend, read from the customer firsts) against RAW_KPIS,
  one raw SQL statement that computes every figure of the page's 13
  periods from the customers, deals and touches: every figure of every
  period must be identical. The month's follow-up figures against one raw
  aggregate of that month alone are compared and timed on their own line.

Both pages are timed twice in one process: the first ("cold") call
includes building and compiling their statements (the mappers are
configured and the connection opened before); the median of the next
five ("warm") is what a running server pays. RAW_KPIS runs twice, the
raw summary three times, each on a new connection, and the fastest run is
the baseline.
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
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import select, true
from sqlalchemy.orm import configure_mappers

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from capture import migrate, rollups  # noqa: E402
from capture.access import Viewer  # noqa: E402
from capture.db import Database  # noqa: E402
from reports.kpis import TREND_PERIODS, Kpis, compute_kpis, kpi_report  # noqa: E402
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
# Every figure of a period that the KPI page shows, compared with RAW_KPIS.
KPI_FIGURES = (
    "customers_created",
    "converted",
    "conversion_rate",
    "buyers",
    "repeat_buyers",
    "repeat_rate",
    "first_deals",
    "first_order_value",
    "cycle_days_median",
    "cycle_days_mean",
    "follow_up_count",
)
# With --time-order: the share of touches inserted after later ones, and
# how late at most.
LATE_SHARE = 0.05
LATE_MAX_SECONDS = 30 * 24 * 3600
# Warm calls of each page after the cold one; their median is reported.
WARM_CALLS = 5


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


# Every figure of the KPI page for each period in `periods`, from the base
# tables. `zone` lists the organisation's UTC offsets as [from, to) UTC
# spans, so that a cycle counts calendar days in that time zone. A
# customer's first deal is their earliest won deal, the lower id on ties,
# and a repeat buyer has a deal won in the period after an earlier win.
RAW_KPIS = """
WITH periods(idx, start_at, end_at) AS (VALUES {periods}),
zone(from_at, to_at, shift) AS (VALUES {zone}),
wins AS (
  SELECT customer_id, won_at, currency, signed_minor,
         ROW_NUMBER() OVER (PARTITION BY customer_id ORDER BY won_at, id) AS nth
  FROM deals WHERE stage = 'won' AND won_at IS NOT NULL
),
first_wins AS (
  SELECT p.idx, w.customer_id, w.won_at, w.currency, w.signed_minor
  FROM periods p JOIN wins w ON w.won_at >= p.start_at AND w.won_at < p.end_at
  WHERE w.nth = 1
),
follow_ups AS (
  SELECT f.idx, f.won_at, COUNT(*) AS touches, MIN(a.occurred_at) AS first_touch
  FROM first_wins f
  JOIN activities a ON a.customer_id = f.customer_id AND a.occurred_at <= f.won_at
  WHERE a.automatic = 0
  GROUP BY f.idx, f.customer_id
),
cycles AS (
  SELECT f.idx, f.touches,
         CAST(julianday(date(f.won_at, zw.shift || ' seconds'))
              - julianday(date(f.first_touch, zt.shift || ' seconds')) AS INTEGER)
           AS days
  FROM follow_ups f
  JOIN zone zw ON f.won_at >= zw.from_at AND f.won_at < zw.to_at
  JOIN zone zt ON f.first_touch >= zt.from_at AND f.first_touch < zt.to_at
),
ranked_cycles AS (
  SELECT idx, days, ROW_NUMBER() OVER (PARTITION BY idx ORDER BY days) AS nth,
         COUNT(*) OVER (PARTITION BY idx) AS total
  FROM cycles
),
created AS (
  SELECT p.idx, COUNT(c.id) AS customers,
         COUNT(f.customer_id) AS converted
  FROM periods p
  JOIN customers c ON c.created_at >= p.start_at AND c.created_at < p.end_at
  LEFT JOIN first_wins f ON f.idx = p.idx AND f.customer_id = c.id
  GROUP BY p.idx
),
buyers AS (
  SELECT p.idx, COUNT(DISTINCT d.customer_id) AS buyers,
         COUNT(DISTINCT CASE WHEN EXISTS (
           SELECT 1 FROM deals e
           WHERE e.customer_id = d.customer_id AND e.stage = 'won'
             AND e.won_at < d.won_at
         ) THEN d.customer_id END) AS repeats
  FROM periods p
  JOIN deals d ON d.won_at >= p.start_at AND d.won_at < p.end_at
  WHERE d.stage = 'won'
  GROUP BY p.idx
),
first_values AS (
  SELECT idx, json_group_object(currency, json_array(deals, signed)) AS amounts
  FROM (
    SELECT idx, currency, COUNT(*) AS deals, COALESCE(SUM(signed_minor), 0) AS signed
    FROM first_wins GROUP BY idx, currency ORDER BY idx, currency
  )
  GROUP BY idx
),
follow_up_figures AS (
  SELECT idx, COUNT(*) AS followed,
         1.0 * SUM(days) / COUNT(*) AS cycle_mean,
         1.0 * SUM(touches) / COUNT(*) AS follow_up_count
  FROM cycles GROUP BY idx
),
medians AS (
  SELECT idx, AVG(days) AS cycle_median FROM ranked_cycles
  WHERE nth IN ((total + 1) / 2, (total + 2) / 2)
  GROUP BY idx
)
SELECT p.idx,
       COALESCE(c.customers, 0), COALESCE(c.converted, 0),
       1.0 * c.converted / NULLIF(c.customers, 0),
       COALESCE(b.buyers, 0), COALESCE(b.repeats, 0),
       1.0 * b.repeats / NULLIF(b.buyers, 0),
       v.amounts, m.cycle_median, u.cycle_mean, u.follow_up_count
FROM periods p
LEFT JOIN created c ON c.idx = p.idx
LEFT JOIN buyers b ON b.idx = p.idx
LEFT JOIN first_values v ON v.idx = p.idx
LEFT JOIN follow_up_figures u ON u.idx = p.idx
LEFT JOIN medians m ON m.idx = p.idx
ORDER BY p.idx
"""


def page_periods() -> list[CalendarPeriod]:
    """Return the periods of the KPI page of MONTH: a 12-month trend, a year earlier."""
    trend = [MONTH.shifted(offset) for offset in range(1 - TREND_PERIODS, 1)]
    return [*trend, MONTH.year_earlier()]


def zone_spans(first_year: int, last_year: int) -> list[tuple[str, str, int]]:
    """Split the years into [from, to) UTC spans of one UTC offset of ZONE.

    Steps of 15 minutes find each change at its exact instant when it falls
    on a quarter hour of UTC, as the changes of America/Los_Angeles do.
    """
    step = timedelta(minutes=15)
    moment = datetime(first_year, 1, 1, tzinfo=UTC)
    end = datetime(last_year + 1, 1, 1, tzinfo=UTC)
    spans = []
    start, offset = moment, moment.astimezone(ZONE).utcoffset()
    while moment < end:
        moment += step
        current = moment.astimezone(ZONE).utcoffset()
        if current != offset or moment >= end:
            assert offset is not None
            spans.append((stamp(start), stamp(moment), int(offset.total_seconds())))
            start, offset = moment, current
    return spans


def raw_kpi_statement() -> tuple[str, list[object]]:
    """RAW_KPIS with its period and time zone rows, and their parameters."""
    periods = page_periods()
    # One year of margin on each side covers deals won after the touches end.
    spans = zone_spans(
        START.year - 1, (START + timedelta(seconds=SPAN_SECONDS)).year + 1
    )
    parameters: list[object] = []
    for index, period in enumerate(periods):
        parameters += [index, stamp(period.range.start), stamp(period.range.end)]
    for span in spans:
        parameters += list(span)
    sql = RAW_KPIS.format(
        periods=", ".join(["(?, ?, ?)"] * len(periods)),
        zone=", ".join(["(?, ?, ?)"] * len(spans)),
    )
    return sql, parameters


def raw_kpis(path: Path) -> tuple[dict[str, dict[str, object]], list[float]]:
    """Run RAW_KPIS twice; return each period's figures by label, and the times."""
    periods = page_periods()
    sql, parameters = raw_kpi_statement()
    connection = sqlite3.connect(path)
    seconds = []
    for _ in range(2):
        started = time.perf_counter()
        rows = connection.execute(sql, parameters).fetchall()
        seconds.append(time.perf_counter() - started)
    connection.close()
    return {periods[row[0]].label: _raw_figures(row) for row in rows}, seconds


def _raw_figures(row: tuple) -> dict[str, object]:
    amounts = json.loads(row[7]) if row[7] else {}
    return {
        "customers_created": row[1],
        "converted": row[2],
        "conversion_rate": row[3],
        "buyers": row[4],
        "repeat_buyers": row[5],
        "repeat_rate": row[6],
        "first_deals": sum(deals for deals, _ in amounts.values()),
        # The mean in major units, rounded to the cent half to even.
        "first_order_value": {
            currency: (Decimal(signed) / deals / 100).quantize(Decimal("0.01"))
            for currency, (deals, signed) in sorted(amounts.items())
        },
        "cycle_days_median": row[8],
        "cycle_days_mean": row[9],
        "follow_up_count": row[10],
    }


def compare_kpis(
    service: dict[str, Kpis], raw: dict[str, dict[str, object]]
) -> tuple[dict[str, bool], list[str]]:
    """Compare every figure of every period; return per-figure results and misses."""
    identical = dict.fromkeys(KPI_FIGURES, True)
    mismatches = []
    for label in sorted(set(service) | set(raw)):
        expected = raw.get(label, {})
        kpis = service.get(label)
        for name in KPI_FIGURES:
            found = None if kpis is None else getattr(kpis, name)
            if found != expected.get(name) or kpis is None or label not in raw:
                identical[name] = False
                mismatches.append(
                    f"{label} {name}: page {found!r}, raw {expected.get(name)!r}"
                )
    return identical, mismatches


def raw_summary(path: Path) -> tuple[dict[int, tuple[int, ...]], float]:
    """Run RAW_SUMMARY three times; return its counts and the fastest time."""
    span = MONTH.range
    times = []
    for _ in range(3):
        connection = sqlite3.connect(path)
        started = time.perf_counter()
        rows = connection.execute(
            RAW_SUMMARY, (stamp(span.start), stamp(span.end))
        ).fetchall()
        times.append(time.perf_counter() - started)
        connection.close()
    counts = {row[0]: tuple(int(v or 0) for v in row[1:]) for row in rows}
    return counts, min(times)


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
    # A server configures its mappers once, at its first query, so neither
    # page pays for it.
    configure_mappers()
    try:
        async with database.reads() as session:
            # A server's pages find their connection open already.
            await session.execute(select(1))
            summary_seconds = []
            page_seconds = []
            for _ in range(1 + WARM_CALLS):
                started = time.perf_counter()
                summaries = await rep_summaries(session, MONTH.range, OPS)
                summary_seconds.append(time.perf_counter() - started)
                started = time.perf_counter()
                report = await kpi_report(session, MONTH, true())
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
        "summary_seconds": _cold_warm(summary_seconds),
        "kpi_page_seconds": _cold_warm(page_seconds),
        "kpi_periods": {
            kpis.period: kpis for kpis in (*report.trend, report.year_earlier)
        },
        "follow_up": (kpis.cycle_days_median, kpis.follow_up_count),
    }


def _cold_warm(seconds: list[float]) -> list[float]:
    """Return the first call's time and the median of the later ones."""
    return [seconds[0], statistics.median(seconds[1:])]


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
    raw_kpi_figures, raw_kpi_seconds = raw_kpis(path)
    service = asyncio.run(service_figures(url))
    summary = _seconds(service, "summary_seconds")
    page = _seconds(service, "kpi_page_seconds")
    service_kpis = service["kpi_periods"]
    assert isinstance(service_kpis, dict)
    kpis_identical, mismatches = compare_kpis(service_kpis, raw_kpi_figures)
    # The faster of the two raw runs: the one that found the file cached.
    raw_kpi = min(raw_kpi_seconds)
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
        "kpi_periods": sorted(raw_kpi_figures),
        "kpi_figures_identical": kpis_identical,
        "kpi_mismatches": mismatches,
        "kpi_page_seconds_cold_warm": [round(value, 4) for value in page],
        "raw_kpi_seconds": [round(value, 4) for value in raw_kpi_seconds],
        "kpi_speedup_cold_warm": [round(raw_kpi / v, 1) for v in page],
        "follow_up_identical": tuple(service["follow_up"]) == follow_up,
        "raw_follow_up_seconds": round(raw_follow_seconds, 4),
        "kpi_speedup_one_period_cold_warm": [
            round(raw_follow_seconds / v, 1) for v in page
        ],
        "export": export,
    }
    print(json.dumps(result, indent=2))
    identical = (
        result["summary_identical"]
        and result["follow_up_identical"]
        and all(kpis_identical.values())
    )
    return 0 if identical else 1


if __name__ == "__main__":
    raise SystemExit(main())
