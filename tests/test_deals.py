"""The deals API: opportunities, wins, losses and payments."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import login

from capture.accounts import create_token
from capture.db import Database, transaction


async def _token(database: Database, email: str) -> str:
    async with transaction(database.writes) as session:
        secret, _ = await create_token(session, email)
        return secret


@pytest.fixture
async def ana(database: Database, demo: None) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {await _token(database, 'ana@demo.touchline.test')}"
    }


async def _new_deal(client: Any, headers: dict[str, str], **fields: Any) -> Any:
    body = {"title": "Fleet", "currency": "USD", "expected_amount": "1200.50", **fields}
    return await client.post("/api/v1/customers/1/deals", json=body, headers=headers)


async def test_deal_won_and_collected(client: Any, ana: dict[str, str]) -> None:
    created = await (await _new_deal(client, ana)).json()

    won = await client.patch(
        f"/api/v1/deals/{created['id']}",
        json={"stage": "won", "signed_amount": "1000.10", "won_at": "2026-11-20"},
        headers=ana,
    )
    paid = await client.post(
        f"/api/v1/deals/{created['id']}/payments",
        json={"amount": "400.05", "received_at": "2026-11-25T10:00:00-08:00"},
        headers=ana,
    )
    listed = await (await client.get("/api/v1/customers/1/deals", headers=ana)).json()

    assert created["expected_amount"] == "1200.50"
    assert won.status == 200
    assert (await won.json())["won_at"] == "2026-11-20T00:00:00-08:00"
    assert paid.status == 201
    [deal] = listed["items"]
    assert deal["signed_amount"] == "1000.10"
    assert deal["collected_amount"] == "400.05"
    assert deal["payments"][0]["received_at"] == "2026-11-25T10:00:00-08:00"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"stage": "won", "won_at": "2026-11-20"}, "signed_amount"),
        (
            {"stage": "won", "signed_amount": "1.001", "won_at": "2026-11-20"},
            "signed_amount",
        ),
        (
            {"stage": "won", "signed_amount": "5", "won_at": "2026-11-20T10:00"},
            "won_at",
        ),
        ({"stage": "lost"}, "lost_reason"),
        ({"stage": "stalled"}, "stage"),
        ({"colour": "red"}, "colour"),
    ],
)
async def test_deal_bad_change_names_field(
    client: Any, ana: dict[str, str], change: dict[str, str], field: str
) -> None:
    created = await (await _new_deal(client, ana)).json()

    response = await client.patch(
        f"/api/v1/deals/{created['id']}", json=change, headers=ana
    )
    after = await (await client.get("/api/v1/customers/1/deals", headers=ana)).json()

    assert response.status == 400
    assert (await response.json())["field"] == field
    assert after["items"][0]["stage"] == "open"


async def test_payment_other_currency_rejected(
    client: Any, ana: dict[str, str]
) -> None:
    created = await (await _new_deal(client, ana)).json()
    await client.patch(
        f"/api/v1/deals/{created['id']}",
        json={"stage": "won", "signed_amount": "5", "won_at": "2026-11-20"},
        headers=ana,
    )

    response = await client.post(
        f"/api/v1/deals/{created['id']}/payments",
        json={"amount": "5", "currency": "EUR", "received_at": "2026-11-21"},
        headers=ana,
    )

    assert response.status == 400
    assert (await response.json())["field"] == "currency"


async def test_other_reps_deal_not_found(
    client: Any, ana: dict[str, str], database: Database
) -> None:
    created = await (await _new_deal(client, ana)).json()
    chen = {
        "Authorization": f"Bearer {await _token(database, 'chen@demo.touchline.test')}"
    }

    response = await client.patch(
        f"/api/v1/deals/{created['id']}", json={"title": "mine"}, headers=chen
    )

    assert response.status == 404


async def test_ops_cannot_create_deal(client: Any, database: Database) -> None:
    omar = {
        "Authorization": f"Bearer {await _token(database, 'omar@demo.touchline.test')}"
    }

    response = await _new_deal(client, omar)

    assert response.status == 403


async def test_customer_page_lists_deals(client: Any, ana: dict[str, str]) -> None:
    await _new_deal(client, ana, title="Warehouse fit-out")
    await login(client, "ana@demo.touchline.test")

    page = await (await client.get("/customers/1")).text()

    assert 'id="deals"' in page
    assert "Warehouse fit-out" in page
    assert "$1,200.50" in page
