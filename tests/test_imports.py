"""Importing touches from other channels, by API and command line, both databases."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, func, select, text

from capture.accounts import create_token
from capture.db import Database, sync_url, transaction
from capture.demo_data import CUSTOMERS, REPS
from capture.models import Activity, ContactPoint, Customer
from capture.settings import Settings

ANA = REPS[0]
HARBOR = CUSTOMERS[0]
LUMEN = CUSTOMERS[1]
HEADER = (
    "external_id,source,occurred_at,channel,direction,rep_email,"
    "customer_phone,customer_email,summary\n"
)


@pytest.fixture
async def admin_token(database: Database, demo: None) -> str:
    async with transaction(database.writes) as session:
        secret, _ = await create_token(session, "ada@demo.touchline.test")
    return secret


def csv_of(*rows: str) -> str:
    return HEADER + "".join(row + "\n" for row in rows)


async def post_csv(client: Any, token: str, text: str) -> Any:
    return await client.post(
        "/api/v1/imports/activities",
        data=text.encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "text/csv"},
    )


async def imported(database: Database) -> list[Activity]:
    async with database.reads() as session:
        rows = await session.scalars(
            select(Activity)
            .where(Activity.external_key.like("import:%"))
            .order_by(Activity.external_key)
        )
        return list(rows.all())


GOOD = csv_of(
    f"w1,wechat,2026-11-30T15:04:00+08:00,chat,inbound,{ANA.email},"
    f"(415) 555-0201,,下周再联系",
    f"w2,wechat,2026-11-30 09:00,meeting,outbound,{ANA.email},,"
    f"{LUMEN.email},Demo at their office",
    f"w3,wechat,2026-12-01T10:00:00Z,note,outbound,{ANA.email},,,No customer given",
)


async def test_import_matches_customers_and_is_idempotent(
    client: Any, admin_token: str, database: Database
) -> None:
    first = await post_csv(client, admin_token, GOOD)
    again = await post_csv(client, admin_token, GOOD)

    assert first.status == 200, await first.text()
    assert await first.json() == {
        "rows": 3,
        "imported": 3,
        "skipped": 0,
        "unmatched": 1,
    }
    assert (await again.json())["skipped"] == 3
    rows = await imported(database)
    assert [row.external_key for row in rows] == [
        "import:wechat:w1",
        "import:wechat:w2",
        "import:wechat:w3",
    ]
    async with database.reads() as session:
        names = {
            row.id: name
            for row, name in [
                (
                    row,
                    await session.scalar(
                        select(Customer.name).where(Customer.id == row.customer_id)
                    ),
                )
                for row in rows
            ]
        }
    assert names[rows[0].id] == HARBOR.name
    assert names[rows[1].id] == LUMEN.name
    assert rows[2].customer_id is None
    assert rows[0].summary == "下周再联系"
    assert rows[0].occurred_at.isoformat() == "2026-11-30T07:04:00+00:00"
    # No offset: the organisation's zone (America/Los_Angeles in tests).
    assert rows[1].occurred_at.isoformat() == "2026-11-30T17:00:00+00:00"


@pytest.mark.parametrize(
    ("row", "field"),
    [
        ("w9,wechat,30/11/2026,chat,inbound,,,,x", "occurred_at"),
        ("w9,wechat,2026-11-30T10:00:00Z,fax,inbound,,,,x", "channel"),
        ("w9,wechat,2026-11-30T10:00:00Z,chat,sideways,,,,x", "direction"),
        ("w9,wechat,2026-11-30T10:00:00Z,chat,inbound,nobody@x.test,,,x", "rep_email"),
        (
            "w9,wechat,2026-11-30T10:00:00Z,chat,inbound,,not a number,,x",
            "customer_phone",
        ),
        (
            "w9,wechat,2026-11-30T10:00:00Z,chat,inbound,,,no-at-sign,x",
            "customer_email",
        ),
        (",wechat,2026-11-30T10:00:00Z,chat,inbound,,,,x", "external_id"),
        ("w9,We Chat!,2026-11-30T10:00:00Z,chat,inbound,,,,x", "source"),
    ],
)
async def test_import_bad_row_rejects_file(
    client: Any, admin_token: str, database: Database, row: str, field: str
) -> None:
    good = f"w8,wechat,2026-11-30T10:00:00Z,chat,inbound,{ANA.email},,,fine"

    response = await post_csv(client, admin_token, csv_of(good, row))

    assert response.status == 400
    body = await response.json()
    assert body["field"] == field
    assert body["error"].startswith("line 3: ")
    assert await imported(database) == []


async def test_import_repeated_id_and_unknown_column(
    client: Any, admin_token: str, database: Database
) -> None:
    row = "w1,wechat,2026-11-30T10:00:00Z,chat,inbound,,,,x"

    repeated = await post_csv(client, admin_token, csv_of(row, row))
    unknown = await post_csv(client, admin_token, "external_id,colour\nw1,red\n")

    assert (await repeated.json())["field"] == "external_id"
    assert (await unknown.json())["field"] == "colour"
    assert await imported(database) == []


async def test_import_unknown_number_makes_lead(
    client: Any, admin_token: str, database: Database
) -> None:
    text = csv_of(
        f"q1,qq,2026-11-30T10:00:00Z,chat,inbound,{ANA.email},+1 415 555 0999,,hi"
    )

    response = await post_csv(client, admin_token, text)

    assert response.status == 200
    async with database.reads() as session:
        lead = await session.scalar(
            select(Customer)
            .join(ContactPoint, ContactPoint.customer_id == Customer.id)
            .where(ContactPoint.value == "+14155550999")
        )
    assert lead is not None
    assert lead.status == "lead"
    [row] = await imported(database)
    assert row.customer_id == lead.id


async def test_import_api_for_admins_only(client: Any, database: Database) -> None:
    async with transaction(database.writes) as session:
        secret, _ = await create_token(session, ANA.email)

    response = await post_csv(client, secret, GOOD)

    assert response.status == 403
    assert await imported(database) == []


def test_import_command(tmp_path: Path, settings: Settings, demo: None) -> None:
    path = tmp_path / "chats.csv"
    path.write_text("\ufeff" + GOOD, encoding="utf-8")
    env = {
        "TOUCHLINE_DATABASE_URL": settings.database_url,
        "TOUCHLINE_DATA_DIR": str(settings.data_dir),
        "TOUCHLINE_TWILIO_AUTH_TOKEN": "x",
        "TOUCHLINE_SECRET_KEY": "k" * 40,
        "TOUCHLINE_TIMEZONE": "America/Los_Angeles",
        "PATH": "/usr/bin:/bin",
    }
    touchline = str(Path(sys.executable).with_name("touchline"))

    first = subprocess.run(
        [touchline, "import", "activities", str(path), "--batch", "2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    second = subprocess.run(
        [touchline, "import", "activities", str(path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    bad = tmp_path / "bad.csv"
    bad.write_text(csv_of("x1,wechat,yesterday,chat,,,,,"), encoding="utf-8")
    rejected = subprocess.run(
        [touchline, "import", "activities", str(bad)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert first.returncode == 0, first.stderr
    assert "3 rows: 3 imported, 0 imported before, 1 with no customer" in first.stderr
    assert "3 rows: 0 imported, 3 imported before" in second.stderr
    assert rejected.returncode == 1
    assert "line 2: occurred_at 'yesterday' is not ISO 8601" in rejected.stderr


async def test_import_counts_rows(
    client: Any, admin_token: str, database: Database
) -> None:
    rows = [
        f"c{n},crm,2026-11-{n % 28 + 1:02d}T10:00:00Z,call,outbound,{ANA.email},"
        f"{HARBOR.phone},,old call {n}"
        for n in range(1200)
    ]

    response = await post_csv(client, admin_token, csv_of(*rows))

    assert (await response.json())["imported"] == 1200
    async with database.reads() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(Activity)
            .where(Activity.external_key.like("import:crm:%"))
        )
    assert count == 1200


def test_import_command_checks_reps_before_writing(
    tmp_path: Path, settings: Settings, demo: None
) -> None:
    path = tmp_path / "late_error.csv"
    good = [f"g{n},crm,2026-11-30T10:00:00Z,note,,{ANA.email},,,x" for n in range(5)]
    path.write_text(
        csv_of(*good, "g9,crm,2026-11-30T10:00:00Z,note,,ghost@x.test,,,x"),
        encoding="utf-8",
    )
    env = {
        "TOUCHLINE_DATABASE_URL": settings.database_url,
        "TOUCHLINE_DATA_DIR": str(settings.data_dir),
        "TOUCHLINE_TWILIO_AUTH_TOKEN": "x",
        "TOUCHLINE_SECRET_KEY": "k" * 40,
        "PATH": "/usr/bin:/bin",
    }
    touchline = str(Path(sys.executable).with_name("touchline"))

    result = subprocess.run(
        [touchline, "import", "activities", str(path), "--batch", "2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 1
    assert "line 7: rep_email 'ghost@x.test' is no user" in result.stderr
    engine = create_engine(sync_url(settings.database_url))
    with engine.connect() as connection:
        count = connection.execute(
            text("SELECT count(*) FROM activities WHERE external_key LIKE 'import:%'")
        ).scalar()
    engine.dispose()
    assert count == 0


@pytest.mark.parametrize(
    ("text", "field", "message"),
    [
        (
            "external_id,occurred_at,channel,channel\nx,2026-11-30,chat,note\n",
            "channel",
            "repeats",
        ),
        (
            'external_id,occurred_at,channel,summary\nx,2026-11-30,chat,"open\n',
            "file",
            "line",
        ),
        # Los Angeles skips 02:00 to 03:00 on 8 March 2026 and repeats
        # 01:00 to 02:00 on 1 November 2026.
        (
            "external_id,occurred_at,channel\nx,2026-03-08T02:30,chat\n",
            "occurred_at",
            "does not exist",
        ),
        (
            "external_id,occurred_at,channel\nx,2026-11-01 01:30,chat\n",
            "occurred_at",
            "happens twice",
        ),
        (
            "external_id,occurred_at,channel\n,2026-11-30,chat\n",
            "external_id",
            "line 2",
        ),
        ("external_id,occurred_at,channel,\n", "header", "unknown column"),
    ],
)
async def test_import_malformed_csv_rejected(
    client: Any,
    admin_token: str,
    database: Database,
    text: str,
    field: str,
    message: str,
) -> None:
    response = await post_csv(client, admin_token, text)

    assert response.status == 400
    body = await response.json()
    assert body["field"] == field
    assert message in body["error"]
    assert await imported(database) == []
