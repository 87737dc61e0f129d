"""Value calibration, milestones and custom fields through the API, both databases."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from capture.accounts import create_token
from capture.db import Database, transaction
from capture.demo_data import CUSTOMERS
from capture.models import Customer, CustomerChange

ANA = "ana@demo.touchline.test"
CHEN = "chen@demo.touchline.test"
MIA = "mia@demo.touchline.test"
OMAR = "omar@demo.touchline.test"
ADA = "ada@demo.touchline.test"
HARBOR = CUSTOMERS[0]  # owned by Ana


@pytest.fixture
async def tokens(database: Database, demo: None) -> dict[str, str]:
    found = {}
    async with transaction(database.writes) as session:
        for email in (ANA, CHEN, MIA, OMAR, ADA):
            secret, _ = await create_token(session, email)
            found[email] = secret
    return found


@pytest.fixture
async def harbor_id(database: Database, demo: None) -> int:
    async with database.reads() as session:
        found = await session.scalar(
            select(Customer.id).where(Customer.name == HARBOR.name)
        )
    assert found is not None
    return int(found)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def patch(client: Any, token: str, customer_id: int, body: Any) -> Any:
    return await client.patch(
        f"/api/v1/customers/{customer_id}/value", json=body, headers=bearer(token)
    )


async def define(client: Any, token: str, body: dict[str, Any]) -> Any:
    return await client.post("/api/v1/custom-fields", json=body, headers=bearer(token))


async def test_calibration_set_and_read(
    client: Any, tokens: dict[str, str], harbor_id: int
) -> None:
    body = {
        "judgement": "valuable",
        "deal_size": "large",
        "expected_sign_date": "2027-01-15",
        "expected_amount": "12500.50",
    }

    response = await patch(client, tokens[ANA], harbor_id, body)
    read = await client.get(
        f"/api/v1/customers/{harbor_id}/value", headers=bearer(tokens[MIA])
    )

    assert response.status == 200, await response.text()
    value = await read.json()
    assert value["judgement"] == "valuable"
    assert value["deal_size"] == "large"
    assert value["expected_sign_date"] == "2027-01-15"
    assert value["expected_amount"] == "12500.50"
    assert value["expected_currency"] == "USD"
    assert {change["field"] for change in value["history"]} == set(body) | {
        "expected_currency"
    }


async def test_calibration_history_keeps_old_values(
    client: Any, tokens: dict[str, str], harbor_id: int, database: Database
) -> None:
    await patch(client, tokens[ANA], harbor_id, {"judgement": "uncertain"})
    await patch(client, tokens[ANA], harbor_id, {"judgement": "valuable"})
    await patch(client, tokens[ANA], harbor_id, {"judgement": "valuable"})

    async with database.reads() as session:
        changes = (
            await session.scalars(select(CustomerChange).order_by(CustomerChange.id))
        ).all()

    assert [(c.field, c.old_value, c.new_value) for c in changes] == [
        ("judgement", None, "uncertain"),
        ("judgement", "uncertain", "valuable"),
    ]


async def test_amount_in_minor_units_of_currency(
    client: Any, tokens: dict[str, str], harbor_id: int, database: Database
) -> None:
    yen = await patch(
        client,
        tokens[ANA],
        harbor_id,
        {"expected_amount": "1500000", "expected_currency": "jpy"},
    )
    fraction = await patch(client, tokens[ANA], harbor_id, {"expected_amount": "1.5"})

    async with database.reads() as session:
        customer = await session.get(Customer, harbor_id)
    assert yen.status == 200
    assert customer is not None
    assert customer.expected_amount_minor == 1_500_000
    assert customer.expected_currency == "JPY"
    assert fraction.status == 400
    assert (await fraction.json())["field"] == "expected_amount"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"judgement": "great"}, "judgement"),
        ({"deal_size": "huge"}, "deal_size"),
        ({"expected_sign_date": "15/01/2027"}, "expected_sign_date"),
        ({"expected_amount": "lots"}, "expected_amount"),
        ({"expected_amount": "-5"}, "expected_amount"),
        ({"expected_amount": "1e400"}, "expected_amount"),
        ({"expected_currency": "dollars"}, "expected_currency"),
        ({"expected_currency": "ZZZ"}, "expected_currency"),
        ({"expected_currency": "XXX"}, "expected_currency"),
        ({"stage": "won"}, "stage"),
        ({"fields": {"no_such_field": "x"}}, "no_such_field"),
        ({"fields": ["x"]}, "fields"),
    ],
)
async def test_calibration_bad_input_names_field(
    client: Any,
    tokens: dict[str, str],
    harbor_id: int,
    database: Database,
    body: dict[str, Any],
    field: str,
) -> None:
    response = await patch(client, tokens[ANA], harbor_id, body)

    assert response.status == 400
    assert (await response.json())["field"] == field
    async with database.reads() as session:
        changes = (await session.scalars(select(CustomerChange))).all()
    assert changes == []


async def test_calibration_body_must_be_json_object(
    client: Any, tokens: dict[str, str], harbor_id: int
) -> None:
    response = await client.patch(
        f"/api/v1/customers/{harbor_id}/value",
        data="judgement=valuable",
        headers=bearer(tokens[ANA]),
    )

    assert response.status == 400
    assert (await response.json())["field"] == "Content-Type"


async def test_calibration_access_by_role(
    client: Any, tokens: dict[str, str], harbor_id: int
) -> None:
    body = {"judgement": "valuable"}

    other_rep = await patch(client, tokens[CHEN], harbor_id, body)
    ops = await patch(client, tokens[OMAR], harbor_id, body)
    ops_read = await client.get(
        f"/api/v1/customers/{harbor_id}/value", headers=bearer(tokens[OMAR])
    )
    manager = await patch(client, tokens[MIA], harbor_id, body)
    missing = await patch(client, tokens[ADA], 2**31 - 1, body)

    assert other_rep.status == 404
    assert ops.status == 403
    assert ops_read.status == 200
    assert manager.status == 200
    assert missing.status == 404


async def test_custom_fields_define_and_set(
    client: Any, tokens: dict[str, str], harbor_id: int
) -> None:
    definitions = [
        {
            "key": "industry",
            "label": "Industry",
            "kind": "choice",
            "choices": ["Retail", "Dental", "Food"],
            "required": True,
        },
        {"key": "fleet_size", "label": "Fleet size", "kind": "number"},
        {"key": "renewal", "label": "Contract renewal", "kind": "date"},
        {"key": "notes_cn", "label": "备注", "kind": "text"},
    ]
    for definition in definitions:
        created = await define(client, tokens[MIA], definition)
        assert created.status == 201, await created.text()

    response = await patch(
        client,
        tokens[ANA],
        harbor_id,
        {
            "fields": {
                "industry": "Retail",
                "fleet_size": "1,250",
                "renewal": "2027-03-01",
                "notes_cn": "下周再联系",
            }
        },
    )
    listed = await client.get("/api/v1/custom-fields", headers=bearer(tokens[ANA]))

    assert response.status == 200, await response.text()
    value = await response.json()
    assert value["fields"] == {
        "industry": "Retail",
        "fleet_size": "1250",
        "renewal": "2027-03-01",
        "notes_cn": "下周再联系",
    }
    assert value["missing_required"] == []
    keys = [item["key"] for item in (await listed.json())["items"]]
    assert keys == ["industry", "fleet_size", "renewal", "notes_cn"]


async def test_custom_field_values_validated(
    client: Any, tokens: dict[str, str], harbor_id: int
) -> None:
    await define(
        client,
        tokens[MIA],
        {
            "key": "industry",
            "label": "Industry",
            "kind": "choice",
            "choices": ["Retail"],
            "required": True,
        },
    )
    await define(
        client, tokens[MIA], {"key": "seats", "label": "Seats", "kind": "number"}
    )
    await patch(client, tokens[ANA], harbor_id, {"fields": {"industry": "Retail"}})

    wrong_choice = await patch(
        client, tokens[ANA], harbor_id, {"fields": {"industry": "Mining"}}
    )
    cleared = await patch(client, tokens[ANA], harbor_id, {"fields": {"industry": ""}})
    not_number = await patch(
        client,
        tokens[ANA],
        harbor_id,
        {"judgement": "valuable", "fields": {"seats": "twelve"}},
    )
    read = await client.get(
        f"/api/v1/customers/{harbor_id}/value", headers=bearer(tokens[ANA])
    )

    for response, field in (
        (wrong_choice, "industry"),
        (cleared, "industry"),
        (not_number, "seats"),
    ):
        assert response.status == 400
        assert (await response.json())["field"] == field
    value = await read.json()
    # The failed request changed nothing, the calibration in it included.
    assert value["fields"] == {"industry": "Retail"}
    assert value["judgement"] is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"key": "Bad Key", "label": "x", "kind": "text"}, "key"),
        ({"key": "ok", "label": "", "kind": "text"}, "label"),
        ({"key": "ok", "label": "x", "kind": "colour"}, "kind"),
        ({"key": "ok", "label": "x", "kind": "choice", "choices": []}, "choices"),
        (
            {"key": "ok", "label": "x", "kind": "choice", "choices": ["a", "a"]},
            "choices",
        ),
        ({"key": "ok", "label": "x", "kind": "text", "choices": ["a"]}, "choices"),
        ({"key": "ok", "label": "x", "kind": "text", "required": "yes"}, "required"),
        ({"label": "x", "kind": "text"}, "key"),
    ],
)
async def test_custom_field_definition_invalid(
    client: Any, tokens: dict[str, str], body: dict[str, Any], field: str
) -> None:
    response = await define(client, tokens[ADA], body)

    assert response.status == 400
    assert (await response.json())["field"] == field


async def test_custom_field_definition_by_role(
    client: Any, tokens: dict[str, str]
) -> None:
    body = {"key": "region", "label": "Region", "kind": "text"}

    rep = await define(client, tokens[ANA], body)
    ops = await define(client, tokens[OMAR], body)
    admin = await define(client, tokens[ADA], body)
    again = await define(client, tokens[MIA], body)

    assert (rep.status, ops.status) == (403, 403)
    assert admin.status == 201
    assert again.status == 409
    assert (await again.json())["field"] == "key"


async def test_milestone_added_and_listed(
    client: Any, tokens: dict[str, str], harbor_id: int
) -> None:
    created = await client.post(
        f"/api/v1/customers/{harbor_id}/milestones",
        json={
            "title": "Signed the pilot",
            "occurred_at": "2026-11-30T10:00:00-08:00",
            "note": "Pilot of 20 seats",
        },
        headers=bearer(tokens[ANA]),
    )
    naive = await client.post(
        f"/api/v1/customers/{harbor_id}/milestones",
        json={"title": "x", "occurred_at": "2026-11-30T10:00:00"},
        headers=bearer(tokens[ANA]),
    )
    read = await client.get(
        f"/api/v1/customers/{harbor_id}/value", headers=bearer(tokens[ANA])
    )

    assert created.status == 201
    assert naive.status == 400
    assert (await naive.json())["field"] == "occurred_at"
    [milestone] = (await read.json())["milestones"]
    assert milestone["title"] == "Signed the pilot"
    # Shown in the organisation's time zone (America/Los_Angeles in tests).
    assert milestone["occurred_at"] == "2026-11-30T10:00:00-08:00"


async def test_customers_found_by_custom_field(
    client: Any, tokens: dict[str, str], harbor_id: int
) -> None:
    await define(
        client,
        tokens[MIA],
        {
            "key": "industry",
            "label": "Industry",
            "kind": "choice",
            "choices": ["Logistics", "Dental"],
        },
    )
    await patch(client, tokens[ANA], harbor_id, {"fields": {"industry": "Logistics"}})

    async def names(params: dict[str, str]) -> list[str]:
        response = await client.get(
            "/api/v1/customers", params=params, headers=bearer(tokens[ANA])
        )
        assert response.status == 200, await response.text()
        return [item["name"] for item in (await response.json())["items"]]

    assert await names({"q": "logist"}) == [HARBOR.name]
    assert await names({"field": "industry:Logistics"}) == [HARBOR.name]
    assert await names({"field": "industry:Dental"}) == []
    bad = await client.get(
        "/api/v1/customers", params={"field": "industry"}, headers=bearer(tokens[ANA])
    )
    assert bad.status == 400
    assert (await bad.json())["field"] == "field"


async def test_custom_field_search_respects_access(
    client: Any, tokens: dict[str, str], harbor_id: int
) -> None:
    await define(client, tokens[ADA], {"key": "tier", "label": "Tier", "kind": "text"})
    await patch(client, tokens[ANA], harbor_id, {"fields": {"tier": "gold"}})

    response = await client.get(
        "/api/v1/customers",
        params={"field": "tier:gold"},
        headers=bearer(tokens[CHEN]),
    )

    assert (await response.json())["items"] == []


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        (
            "milestones",
            {"title": "a\u0000b", "occurred_at": "2026-11-30T10:00:00Z"},
            "title",
        ),
        (
            "milestones",
            {"title": "ok", "note": "n\u2028", "occurred_at": "2026-11-30T10:00:00Z"},
            "note",
        ),
        ("fields", {"key": "k1", "label": "L\u0007", "kind": "text"}, "label"),
        (
            "fields",
            {"key": "k2", "label": "L", "kind": "choice", "choices": ["a\u0000"]},
            "choices",
        ),
    ],
)
async def test_api_text_control_characters_rejected(
    client: Any,
    tokens: dict[str, str],
    harbor_id: int,
    path: str,
    body: dict[str, Any],
    field: str,
) -> None:
    url = (
        f"/api/v1/customers/{harbor_id}/milestones"
        if path == "milestones"
        else "/api/v1/custom-fields"
    )

    response = await client.post(url, json=body, headers=bearer(tokens[ADA]))

    assert response.status == 400
    assert (await response.json())["field"] == field


async def test_field_value_control_characters_rejected(
    client: Any, tokens: dict[str, str], harbor_id: int
) -> None:
    await define(client, tokens[MIA], {"key": "memo", "label": "Memo", "kind": "text"})
    await define(
        client, tokens[MIA], {"key": "seats", "label": "Seats", "kind": "number"}
    )

    nul = await patch(client, tokens[ANA], harbor_id, {"fields": {"memo": "a\u0000b"}})
    lines = await patch(client, tokens[ANA], harbor_id, {"fields": {"memo": "a\nb"}})
    wide = await patch(client, tokens[ANA], harbor_id, {"fields": {"seats": "１２"}})

    assert nul.status == 400
    assert (await nul.json())["field"] == "memo"
    assert lines.status == 200
    assert wide.status == 400
    assert (await wide.json())["field"] == "seats"


async def test_empty_required_field_does_not_block_others(
    client: Any, tokens: dict[str, str], harbor_id: int
) -> None:
    await define(
        client,
        tokens[MIA],
        {"key": "industry", "label": "Industry", "kind": "text", "required": True},
    )

    response = await patch(
        client,
        tokens[ANA],
        harbor_id,
        {"judgement": "valuable", "fields": {"industry": ""}},
    )

    assert response.status == 200
    value = await response.json()
    assert value["judgement"] == "valuable"
    assert value["missing_required"] == ["industry"]
