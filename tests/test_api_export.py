"""The JSON API and the CSV export."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from conftest import post_signed
from sqlalchemy import update
from twilio_params import call_status, inbound_sms, new_sid

from capture.accounts import create_token
from capture.db import Database, transaction
from capture.demo_data import CUSTOMERS, ORGANISATION_NUMBER, REPS
from capture.models import Activity, Customer

ANA = REPS[0]
HARBOR = CUSTOMERS[0]


@pytest.fixture
async def token(database: Database, demo: None) -> str:
    async with transaction(database.writes) as session:
        secret, _ = await create_token(session, "ada@demo.touchline.test")
        return secret


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_api_requires_token(client: Any) -> None:
    missing = await client.get("/api/v1/customers")
    wrong = await client.get("/api/v1/customers", headers=bearer("tl_wrong"))

    assert missing.status == 401
    assert wrong.status == 401
    assert (await wrong.json())["field"] == "Authorization"


async def test_api_customers_by_phone_any_format(client: Any, token: str) -> None:
    response = await client.get(
        "/api/v1/customers", params={"phone": "(415) 555-0201"}, headers=bearer(token)
    )

    body = await response.json()
    assert response.status == 200
    assert [item["name"] for item in body["items"]] == [HARBOR.name]
    assert body["next"] is None


async def test_api_customers_pages_with_cursor(client: Any, token: str) -> None:
    first = await (
        await client.get(
            "/api/v1/customers", params={"limit": "4"}, headers=bearer(token)
        )
    ).json()
    second = await (
        await client.get(
            "/api/v1/customers",
            params={"limit": "4", "cursor": first["next"]},
            headers=bearer(token),
        )
    ).json()

    assert len(first["items"]) == 4
    assert first["next"] is not None
    assert len(second["items"]) == 2
    assert second["next"] is None
    ids = [item["id"] for item in first["items"] + second["items"]]
    assert ids == sorted(set(ids))


async def test_api_bad_query_names_field(client: Any, token: str) -> None:
    bad_limit = await client.get(
        "/api/v1/customers", params={"limit": "0"}, headers=bearer(token)
    )
    bad_phone = await client.get(
        "/api/v1/customers", params={"phone": "12"}, headers=bearer(token)
    )
    bad_date = await client.get(
        "/api/v1/reports/reps",
        params={"from": "2026-13-01", "to": "2026-12-01"},
        headers=bearer(token),
    )

    assert bad_limit.status == 400
    assert (await bad_limit.json())["field"] == "limit"
    assert bad_phone.status == 400
    assert (await bad_phone.json())["field"] == "phone"
    assert bad_date.status == 400
    assert (await bad_date.json())["field"] == "from"


async def test_api_unknown_call_is_404(client: Any, token: str) -> None:
    response = await client.get("/api/v1/calls/CA" + "0" * 32, headers=bearer(token))

    assert response.status == 404
    assert (await response.json())["field"] == "call_sid"


async def test_api_activities_stream(client: Any, token: str) -> None:
    sid = new_sid("CA")
    params = call_status(
        sid, "completed", 3, caller=ANA.phone, called=HARBOR.phone, duration=30
    )
    await post_signed(client, "/twilio/voice/status", params)

    response = await client.get("/api/v1/customers/1/activities", headers=bearer(token))

    body = await response.json()
    assert response.status == 200
    [item] = body["items"]
    assert item["call"]["call_sid"] == sid
    assert item["call"]["talk_seconds"] == 30
    assert item["occurred_at"] == "2026-11-30T09:00:30-08:00"
    assert item["rep"] == ANA.email


async def test_api_activities_cursor_pasted_as_is(client: Any, token: str) -> None:
    for sequence in (1, 2):
        params = call_status(
            new_sid("CA"), "ringing", sequence, caller=ANA.phone, called=HARBOR.phone
        )
        await post_signed(client, "/twilio/voice/status", params)
    first = await client.get(
        "/api/v1/customers/1/activities?limit=1", headers=bearer(token)
    )
    cursor = (await first.json())["next"]

    # A script that glues the cursor into the URL without escaping it.
    second = await client.get(
        f"/api/v1/customers/1/activities?limit=1&cursor={cursor}",
        headers=bearer(token),
    )

    assert cursor.endswith("Z_" + cursor.rsplit("_", 1)[1])
    assert second.status == 200, await second.text()
    assert len((await second.json())["items"]) == 1


async def seed_export(client: Any, database: Database) -> None:
    answered = call_status(
        "CA" + "1" * 32,
        "completed",
        3,
        caller=ANA.phone,
        called=HARBOR.phone,
        duration=125,
    )
    missed = call_status(
        "CA" + "2" * 32,
        "no-answer",
        2,
        caller=ANA.phone,
        called="+14155550777",
        duration=0,
        at=datetime(2026, 11, 30, 23, 30, tzinfo=UTC),
    )
    sms = inbound_sms(
        "SM" + "3" * 32,
        HARBOR.phone,
        ORGANISATION_NUMBER,
        '=HYPERLINK("x"), "quoted"\r\nsecond line',
    )
    for path, params in (
        ("/twilio/voice/status", answered),
        ("/twilio/voice/status", missed),
        ("/twilio/sms", sms),
    ):
        assert (await post_signed(client, path, params)).status in (200, 204)
    async with transaction(database.writes) as session:
        await session.execute(
            update(Activity)
            .where(Activity.external_key == "sms:SM" + "3" * 32)
            .values(occurred_at=datetime(2026, 12, 1, 8, 0, tzinfo=UTC))
        )
        await session.execute(
            update(Customer).where(Customer.id == 1).values(name="-Harbor+Freight @Co")
        )


EXPECTED_CSV = (
    "\ufeffactivity_id,occurred_at,date,rep,rep_email,team,customer_id,customer,"
    "channel,direction,status,talk_seconds,text\r\n"
    "1,2026-11-30T09:00:30-08:00,2026-11-30,Ana Ruiz,ana@demo.touchline.test,West,"
    "1,'-Harbor+Freight @Co,call,outbound,completed,125,\r\n"
    "2,2026-11-30T15:30:00-08:00,2026-11-30,Ana Ruiz,ana@demo.touchline.test,West,"
    "7,'+1 415-555-0777,call,outbound,no-answer,0,\r\n"
    "3,2026-12-01T00:00:00-08:00,2026-12-01,Ana Ruiz,ana@demo.touchline.test,West,"
    "1,'-Harbor+Freight @Co,sms,inbound,received,,"
    '"\'=HYPERLINK(""x""), ""quoted""\r\nsecond line"\r\n'
).encode("utf-8")


async def test_export_csv_matches_bytes(
    client: Any, database: Database, token: str
) -> None:
    await seed_export(client, database)

    response = await client.get(
        "/api/v1/exports/activities.csv",
        params={"from": "2026-11-30", "to": "2026-12-01"},
        headers=bearer(token),
    )

    assert response.status == 200
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert await response.read() == EXPECTED_CSV


async def test_export_range_excludes_other_days(
    client: Any, database: Database, token: str
) -> None:
    await seed_export(client, database)

    response = await client.get(
        "/api/v1/exports/activities.csv",
        params={"from": "2026-12-01", "to": "2026-12-01"},
        headers=bearer(token),
    )

    lines = (await response.read()).decode("utf-8-sig").split("\r\n")
    assert lines[1].startswith("3,")
    assert len([line for line in lines if line[:1].isdigit()]) == 1


async def test_export_custom_field_columns(
    client: Any, database: Database, token: str
) -> None:
    await seed_export(client, database)
    for body in (
        {"key": "industry", "label": "Industry", "kind": "text"},
        {"key": "fleet_size", "label": "Fleet size", "kind": "number"},
    ):
        defined = await client.post(
            "/api/v1/custom-fields", json=body, headers=bearer(token)
        )
        assert defined.status == 201
    patched = await client.patch(
        "/api/v1/customers/1/value",
        json={"fields": {"industry": "Logistics", "fleet_size": "42"}},
        headers=bearer(token),
    )
    assert patched.status == 200

    response = await client.get(
        "/api/v1/exports/activities.csv",
        params={"from": "2026-11-30", "to": "2026-12-01"},
        headers=bearer(token),
    )

    lines = (await response.read()).decode("utf-8-sig").split("\r\n")
    header = lines[0].split(",")
    assert header[-2:] == ["field:industry", "field:fleet_size"]
    assert lines[1].endswith(",Logistics,42")
    # Customer 7 was created from an unknown number and has no values.
    assert lines[2].endswith(",,")
