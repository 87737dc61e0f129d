"""Reports against the hand-worked data set of `golden_reports`."""

from __future__ import annotations

import csv
import io
import re
import zipfile
from datetime import datetime
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest
from conftest import login
from golden_reports import CHANGES, KPIS, SUMMARY_2026_11, load_golden
from sqlalchemy import select
from test_cli import environment, touchline

from capture import rollups
from capture.accounts import create_token
from capture.db import Database, transaction
from capture.models import Customer, Deal, Plan, User
from capture.settings import Settings

NOVEMBER = {"kind": "month", "period": "2026-11"}


@pytest.fixture
async def golden(client: Any, database: Database, settings: Settings) -> None:
    async with transaction(database.writes) as session:
        await load_golden(session)
    with database.batch_sessions()() as session, session.begin():
        rollups.rebuild(session, settings.zone)


@pytest.fixture
async def token(database: Database, golden: None) -> str:
    async with transaction(database.writes) as session:
        secret, _ = await create_token(session, "omar@demo.touchline.test")
        return secret


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_summary_api_matches_golden(client: Any, token: str) -> None:
    response = await client.get(
        "/api/v1/reports/summary", params=NOVEMBER, headers=bearer(token)
    )

    body = await response.json()
    assert response.status == 200
    items = {item["email"]: item for item in body["items"]}
    for email, expected in SUMMARY_2026_11.items():
        for name, value in expected.items():
            assert items[email][name] == value, (email, name)
    assert items["chen@demo.touchline.test"]["calls"] == 0
    assert body["from"] == "2026-11-01"
    assert body["to"] == "2026-11-30"


async def test_summary_counts_tied_first_deals_once(
    client: Any, database: Database, settings: Settings, token: str
) -> None:
    # A second deal won at the same moment as Ben's first deal (D3, $300).
    async with transaction(database.writes) as session:
        first = await session.scalar(
            select(Deal).where(Deal.signed_minor == 30000, Deal.stage == "won")
        )
        assert first is not None
        session.add(
            Deal(
                customer_id=first.customer_id,
                owner_id=first.owner_id,
                stage="won",
                currency="USD",
                expected_minor=7000,
                signed_minor=7000,
                created_at=first.created_at,
                won_at=first.won_at,
            )
        )
    with database.batch_sessions()() as session, session.begin():
        rollups.rebuild(session, settings.zone)

    response = await client.get(
        "/api/v1/reports/summary", params=NOVEMBER, headers=bearer(token)
    )

    body = await response.json()
    ben = next(item for item in body["items"] if item["email"].startswith("ben@"))
    # Both deals are signed in November; the lower id is the customer's first.
    assert ben["signed"] == {"USD": "570.00"}
    assert ben["won_customers"] == 1
    assert ben["won_amount"] == {"USD": "300.00"}


async def test_summary_plan_fulfilment(
    client: Any, database: Database, token: str
) -> None:
    # Ben's plans whose windows end in November (Los Angeles) are done in
    # time, done late, still open and cancelled. One more ends in December.
    moment = datetime.fromisoformat
    plans = [
        ("done", "2026-11-10T08:00:00+00:00", "2026-11-09T20:00:00+00:00"),
        ("done", "2026-11-12T08:00:00+00:00", "2026-11-13T20:00:00+00:00"),
        ("open", "2026-11-20T08:00:00+00:00", None),
        ("cancelled", "2026-11-21T08:00:00+00:00", "2026-11-02T20:00:00+00:00"),
        ("done", "2026-12-01T08:00:00+00:00", "2026-11-30T20:00:00+00:00"),
    ]
    async with transaction(database.writes) as session:
        ben = await session.scalar(select(User).where(User.email.startswith("ben@")))
        customers = list(
            await session.scalars(
                select(Customer.id).where(Customer.name.startswith("Plan target "))
            )
        )
        assert ben is not None and not customers
        for index, (status, due_end, closed) in enumerate(plans):
            customer = Customer(name=f"Plan target {index}", owner_id=ben.id)
            session.add(customer)
            await session.flush()
            session.add(
                Plan(
                    customer_id=customer.id,
                    owner_id=ben.id,
                    purpose="call",
                    due_end=moment(due_end),
                    status=status,
                    closed_at=moment(closed) if closed else None,
                )
            )

    response = await client.get(
        "/api/v1/reports/summary", params=NOVEMBER, headers=bearer(token)
    )

    body = await response.json()
    items = {item["email"]: item for item in body["items"]}
    ben_row = items["ben@demo.touchline.test"]
    assert (ben_row["plans_due"], ben_row["plans_fulfilled"]) == (3, 1)
    assert ben_row["plan_fulfilment_rate"] == 1 / 3
    assert items["ana@demo.touchline.test"]["plan_fulfilment_rate"] is None


async def test_kpi_api_matches_golden(client: Any, token: str) -> None:
    response = await client.get(
        "/api/v1/reports/kpis", params=NOVEMBER, headers=bearer(token)
    )

    body = await response.json()
    assert response.status == 200
    for key, period in (
        ("current", "2026-11"),
        ("previous", "2026-10"),
        ("year_earlier", "2025-11"),
    ):
        assert body[key]["period"] == period
        for name, value in KPIS[period].items():
            assert body[key][name] == pytest.approx(value), (key, name)
    changes = {item["figure"]: item for item in body["comparisons"]}
    for figure, (previous, year) in CHANGES.items():
        assert changes[figure]["previous_change"] == pytest.approx(previous), figure
        assert changes[figure]["year_change"] == pytest.approx(year), figure
    assert [item["period"] for item in body["trend"]][-1] == "2026-11"
    assert len(body["trend"]) == 12


async def test_kpi_api_rep_scope(client: Any, database: Database, golden: None) -> None:
    async with transaction(database.writes) as session:
        secret, _ = await create_token(session, "ben@demo.touchline.test")

    response = await client.get(
        "/api/v1/reports/kpis", params=NOVEMBER, headers=bearer(secret)
    )

    # Ben owns G3, first won with D3 on 10 November after t7 and t8. He also
    # owns G4, first won in 2025 and won again with D5 on 12 November. No
    # customer of his is new in November.
    current = (await response.json())["current"]
    assert response.status == 200
    assert current["customers_created"] == 0
    assert current["conversion_rate"] is None
    assert current["buyers"] == 2
    assert current["repeat_buyers"] == 1
    assert current["repeat_rate"] == 0.5
    assert current["first_deals"] == 1
    assert current["first_order_value"] == {"USD": "300.00"}
    assert current["cycle_days_median"] == 10.0
    assert current["cycle_days_mean"] == 10.0
    assert current["follow_up_count"] == 2.0


async def test_quarter_contains_month(client: Any, token: str) -> None:
    response = await client.get(
        "/api/v1/reports/summary",
        params={"kind": "quarter", "period": "2026-Q4"},
        headers=bearer(token),
    )

    items = {item["email"]: item for item in (await response.json())["items"]}
    # October adds t7 (90 s) to ben's November.
    assert items["ben@demo.touchline.test"]["calls_made"] == 2
    assert items["ben@demo.touchline.test"]["talk_seconds"] == 100


async def test_reports_page_shows_golden(client: Any, golden: None) -> None:
    await login(client, "omar@demo.touchline.test")

    page = await (await client.get("/reports", params=NOVEMBER)).text()

    ana = _row(page, 'data-rep="ana@demo.touchline.test"')
    conversion = _row(page, 'data-figure="conversion_rate"')
    assert "$1,500.00" in ana
    assert "$2,200.00" in ana
    assert "3 min 30 sec" in ana
    assert "66.7%" in conversion
    assert "-33.3%" in conversion
    assert "<svg" in conversion


async def test_reports_page_rep_sees_own_row(client: Any, golden: None) -> None:
    await login(client, "ana@demo.touchline.test")

    page = await (await client.get("/reports", params=NOVEMBER)).text()

    assert 'data-rep="ana@demo.touchline.test"' in page
    assert 'data-rep="ben@demo.touchline.test"' not in page


async def test_reports_page_in_chinese(client: Any, golden: None) -> None:
    csrf = await login(client, "omar@demo.touchline.test")
    await client.post(
        "/account/language",
        data={"locale": "zh_Hans", "csrf_token": csrf},
        allow_redirects=False,
    )

    page = await (await client.get("/reports", params=NOVEMBER)).text()

    assert "客户指标，2026-11" in page
    assert "Customer KPIs" not in page


async def test_reports_bad_kind_names_field(client: Any, token: str) -> None:
    response = await client.get(
        "/api/v1/reports/kpis",
        params={"kind": "week", "period": "2026-11"},
        headers=bearer(token),
    )

    assert response.status == 400
    assert (await response.json())["field"] == "kind"


async def test_summary_csv_matches_golden(client: Any, token: str) -> None:
    response = await client.get(
        "/api/v1/exports/summary.csv", params=NOVEMBER, headers=bearer(token)
    )

    data = await response.read()
    assert response.status == 200
    assert data.startswith(b"\xef\xbb\xbf")
    rows = {
        row["rep_email"]: row
        for row in csv.DictReader(io.StringIO(data.decode("utf-8-sig")))
    }
    ana = rows["ana@demo.touchline.test"]
    assert ana["calls_made"] == "3"
    assert ana["talk_seconds"] == "210"
    assert ana["signed_USD"] == "1500.00"
    assert ana["collected_USD"] == "600.00"
    assert rows["ben@demo.touchline.test"]["collected_USD"] == ""


async def test_calls_xlsx_has_real_dates(client: Any, token: str) -> None:
    response = await client.get(
        "/api/v1/exports/calls.xlsx", params=NOVEMBER, headers=bearer(token)
    )

    sheets = _xlsx_sheets(await response.read())
    assert response.status == 200
    rows = sheets["calls"]
    assert rows[0][2] == "occurred_at (America/Los_Angeles)"
    # t1..t5 and t10 are November calls locally; t7 is October.
    assert len(rows) == 1 + 5
    assert sheets["definitions"][1][0] == "activity_id"


async def test_activities_csv_filters_by_rep(
    client: Any, token: str, database: Database
) -> None:
    summary = await (
        await client.get(
            "/api/v1/reports/summary", params=NOVEMBER, headers=bearer(token)
        )
    ).json()
    ben = next(i for i in summary["items"] if i["email"].startswith("ben"))

    response = await client.get(
        "/api/v1/exports/activities.xlsx",
        params={**NOVEMBER, "rep": str(ben["rep_id"])},
        headers=bearer(token),
    )

    rows = _xlsx_sheets(await response.read())["activities"]
    channels = sorted(row[8] for row in rows[1:])
    assert channels == ["call", "meeting"]


@pytest.mark.parametrize("query", [{}, {"from": "2026-11-01", "to": "2026-11-30"}])
async def test_activities_csv_filters_by_rep_and_team(
    client: Any, token: str, query: dict[str, str]
) -> None:
    summary = await (
        await client.get(
            "/api/v1/reports/summary", params=NOVEMBER, headers=bearer(token)
        )
    ).json()
    ben = next(i for i in summary["items"] if i["email"].startswith("ben"))
    params = {**NOVEMBER, **query}

    by_rep = await client.get(
        "/api/v1/exports/activities.csv",
        params={**params, "rep": str(ben["rep_id"])},
        headers=bearer(token),
    )
    by_team = await client.get(
        "/api/v1/exports/activities.csv",
        params={**params, "team": "999"},
        headers=bearer(token),
    )

    assert by_rep.status == 200
    rows = list(csv.reader(io.StringIO((await by_rep.text()).lstrip("\ufeff"))))
    assert sorted(row[8] for row in rows[1:]) == ["call", "meeting"]
    assert {row[4] for row in rows[1:]} == {ben["email"]}
    assert by_team.status == 400


def _row(page: str, marker: str) -> str:
    start = page.index(marker)
    return page[start : page.index("</tr>", start)]


NS = {"m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main"}


def _xlsx_sheets(data: bytes) -> dict[str, list[list[Any]]]:
    """Read cell values of each sheet with the standard library only."""
    archive = zipfile.ZipFile(io.BytesIO(data))
    workbook = ElementTree.fromstring(archive.read("xl/workbook.xml"))
    names = [sheet.get("name") for sheet in workbook.iterfind(".//m:sheet", NS)]
    shared: list[str] = []
    if "xl/sharedStrings.xml" in archive.namelist():
        strings = ElementTree.fromstring(archive.read("xl/sharedStrings.xml"))
        shared = ["".join(si.itertext()) for si in strings.iterfind("m:si", NS)]
    sheets = {}
    for number, name in enumerate(names, start=1):
        root = ElementTree.fromstring(archive.read(f"xl/worksheets/sheet{number}.xml"))
        sheets[str(name)] = [
            _cells(row, shared) for row in root.iterfind(".//m:sheetData/m:row", NS)
        ]
    return sheets


def _cells(row: Any, shared: list[str]) -> list[Any]:
    cells: list[Any] = []
    for cell in row.iterfind("m:c", NS):
        column = _column_index(cell.get("r"))
        while len(cells) < column:
            cells.append(None)
        kind = cell.get("t")
        if kind == "inlineStr":
            cells.append("".join(cell.itertext()))
        elif kind == "s":
            cells.append(shared[int(cell.findtext("m:v", "", NS))])
        else:
            cells.append(float(cell.findtext("m:v", "0", NS)))
    return cells


def _column_index(reference: str | None) -> int:
    letters = re.match(r"[A-Z]+", reference or "A")
    index = 0
    for letter in letters.group(0) if letters else "A":
        index = index * 26 + ord(letter) - ord("A") + 1
    return index - 1


async def test_cli_summary_export_matches_api(
    client: Any, token: str, tmp_path: Path, database_url: str
) -> None:
    api = await (
        await client.get(
            "/api/v1/exports/summary.csv", params=NOVEMBER, headers=bearer(token)
        )
    ).read()
    env = environment(tmp_path, database_url)
    output = tmp_path / "summary.csv"

    result = touchline(
        env,
        "export",
        "summary",
        "--kind",
        "month",
        "--period",
        "2026-11",
        "-o",
        str(output),
    )

    assert result.returncode == 0, result.stderr
    assert "rows exported" in result.stderr
    assert output.read_bytes() == api


async def test_cli_rebuild_keeps_counts(
    client: Any, token: str, tmp_path: Path, database_url: str
) -> None:
    before = await (
        await client.get(
            "/api/v1/reports/summary", params=NOVEMBER, headers=bearer(token)
        )
    ).json()

    result = touchline(environment(tmp_path, database_url), "reports", "rebuild")
    after = await (
        await client.get(
            "/api/v1/reports/summary", params=NOVEMBER, headers=bearer(token)
        )
    ).json()

    assert result.returncode == 0, result.stderr
    assert after == before


# Touch counts of the golden touches over ranges that cut calendar months,
# worked out from golden_reports.TOUCHES in Los Angeles time: ben's call t7
# is on 31 October there, and t10 (07:59 UTC on 1 December) on 30 November.
RANGE_COUNTS = {
    ("2026-10-31", "2026-12-01"): {
        "ana@demo.touchline.test": (4, 3, 210, 2, 0),
        "ben@demo.touchline.test": (2, 2, 100, 0, 1),
    },
    ("2026-10-31", "2026-11-29"): {
        "ana@demo.touchline.test": (4, 3, 210, 2, 0),
        "ben@demo.touchline.test": (1, 1, 90, 0, 1),
    },
    ("2026-11-30", "2026-12-01"): {
        "ana@demo.touchline.test": (0, 0, 0, 0, 0),
        "ben@demo.touchline.test": (1, 1, 10, 0, 0),
    },
}


@pytest.mark.parametrize("span", list(RANGE_COUNTS))
async def test_summary_range_cutting_months(
    client: Any, token: str, span: tuple[str, str]
) -> None:
    first, last = span
    response = await client.get(
        "/api/v1/reports/reps",
        params={"from": first, "to": last},
        headers=bearer(token),
    )

    body = await response.json()
    assert response.status == 200, body
    assert (body["from"], body["to"]) == span
    items = {item["email"]: item for item in body["items"]}
    for email, expected in RANGE_COUNTS[span].items():
        item = items[email]
        counted = (
            item["calls"],
            item["answered_calls"],
            item["talk_seconds"],
            item["sms"],
            item["other_touches"],
        )
        assert counted == expected, email


async def test_summary_counts_lost_customer_once(
    client: Any, database: Database, token: str
) -> None:
    # Ben loses a customer whose lost deals are in two currencies.
    closed = datetime.fromisoformat("2026-11-18T20:00:00+00:00")
    async with transaction(database.writes) as session:
        ben = await session.scalar(select(User).where(User.email.startswith("ben@")))
        assert ben is not None
        customer = Customer(
            name="Lost in two currencies",
            owner_id=ben.id,
            status="lost",
            closed_at=closed,
        )
        session.add(customer)
        await session.flush()
        for currency in ("USD", "EUR"):
            session.add(
                Deal(
                    customer_id=customer.id,
                    owner_id=ben.id,
                    stage="lost",
                    currency=currency,
                    expected_minor=10000,
                    lost_at=closed,
                    lost_reason="budget",
                )
            )
    response = await client.get(
        "/api/v1/reports/summary", params=NOVEMBER, headers=bearer(token)
    )

    body = await response.json()
    ben_row = next(i for i in body["items"] if i["email"].startswith("ben@"))
    assert ben_row["lost_customers"] == 1
    assert ben_row["lost_amount"] == {"EUR": "100.00", "USD": "100.00"}


@pytest.mark.parametrize("team", ["99999999999999999999", "2147483648", "\u00b2"])
@pytest.mark.parametrize(
    "path", ["/api/v1/reports/summary", "/api/v1/exports/summary.csv"]
)
async def test_summary_rejects_bad_team_id(
    client: Any, token: str, path: str, team: str
) -> None:
    response = await client.get(
        path, params={**NOVEMBER, "team": team}, headers=bearer(token)
    )

    assert response.status == 400
    body = await response.json()
    assert body["field"] == "team"


async def test_summary_orders_same_names_by_id(
    client: Any, database: Database, token: str
) -> None:
    async with transaction(database.writes) as session:
        ben = await session.scalar(select(User).where(User.email.startswith("ben@")))
        assert ben is not None
        session.add(
            User(email="ben.two@demo.touchline.test", name=ben.name, role="rep")
        )
    # On PostgreSQL the update writes a new row version after the second
    # Ben's row, so a sequential scan of users reads the first Ben second.
    async with transaction(database.writes) as session:
        ben = await session.scalar(select(User).where(User.email.startswith("ben@")))
        assert ben is not None
        ben.timezone = "Europe/Berlin"

    response = await client.get(
        "/api/v1/reports/summary", params=NOVEMBER, headers=bearer(token)
    )

    body = await response.json()
    emails = [item["email"] for item in body["items"] if item["name"] == ben.name]
    assert emails == ["ben@demo.touchline.test", "ben.two@demo.touchline.test"]
