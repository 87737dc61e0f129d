"""The customer value page and the custom fields admin page, both databases."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import csrf_of, login
from sqlalchemy import select

from capture.db import Database, transaction
from capture.demo_data import CUSTOMERS
from capture.models import Customer, CustomerChange, Milestone
from capture.values import define_field

ANA = "ana@demo.touchline.test"
CHEN = "chen@demo.touchline.test"
MIA = "mia@demo.touchline.test"
OMAR = "omar@demo.touchline.test"
HARBOR = CUSTOMERS[0]  # owned by Ana


@pytest.fixture
async def harbor_id(database: Database, demo: None) -> int:
    async with database.reads() as session:
        found = await session.scalar(
            select(Customer.id).where(Customer.name == HARBOR.name)
        )
    assert found is not None
    return int(found)


@pytest.fixture
async def industry(database: Database, demo: None) -> None:
    async with transaction(database.writes) as session:
        await define_field(
            session,
            key="industry",
            label="Industry",
            kind="choice",
            choices=["Logistics", "Dental"],
            required=True,
        )


async def post_form(client: Any, path: str, data: dict[str, str]) -> Any:
    page = await client.get(path.rsplit("/", 1)[0] + "/value")
    token = csrf_of(await page.text())
    return await client.post(
        path, data={**data, "csrf_token": token}, allow_redirects=False
    )


async def test_value_page_saves_calibration_and_fields(
    client: Any, harbor_id: int, industry: None, database: Database
) -> None:
    await login(client, ANA)

    response = await post_form(
        client,
        f"/customers/{harbor_id}/value",
        {
            "judgement": "valuable",
            "deal_size": "normal",
            "expected_sign_date": "2027-02-01",
            "expected_amount": "9800",
            "expected_currency": "",
            "field.industry": "Logistics",
        },
    )
    page = await client.get(f"/customers/{harbor_id}/value")
    html = await page.text()

    assert response.status == 303
    assert response.headers["Location"] == f"/customers/{harbor_id}/value"
    assert '<option value="valuable" selected>' in html
    assert "<option selected>Logistics</option>" in html
    async with database.reads() as session:
        customer = await session.get(Customer, harbor_id)
        fields = [c.field for c in (await session.scalars(select(CustomerChange)))]
    assert customer is not None
    assert customer.expected_amount_minor == 980_000
    assert customer.expected_currency == "USD"
    assert "field:industry" in fields


async def test_value_page_error_keeps_input(
    client: Any, harbor_id: int, industry: None, database: Database
) -> None:
    await login(client, ANA)

    response = await post_form(
        client,
        f"/customers/{harbor_id}/value",
        {"judgement": "valuable", "expected_amount": "ten", "field.industry": ""},
    )
    html = await response.text()

    assert response.status == 400
    assert "<code>expected_amount</code>" in html
    assert 'value="ten"' in html
    async with database.reads() as session:
        changes = (await session.scalars(select(CustomerChange))).all()
    assert changes == []


async def test_value_page_marks_milestone(
    client: Any, harbor_id: int, database: Database
) -> None:
    await login(client, ANA)

    marked = await post_form(
        client,
        f"/customers/{harbor_id}/milestones",
        {"title": "First order", "date": "2026-11-20", "note": "20 pallets"},
    )
    bad = await post_form(
        client, f"/customers/{harbor_id}/milestones", {"title": "x", "date": "soon"}
    )
    page = await (await client.get(f"/customers/{harbor_id}/value")).text()

    assert marked.status == 303
    assert bad.status == 400
    assert "<code>date</code>" in await bad.text()
    assert "First order" in page
    async with database.reads() as session:
        [milestone] = (await session.scalars(select(Milestone))).all()
    # Noon in the organisation's zone (America/Los_Angeles in tests).
    assert milestone.occurred_at.isoformat() == "2026-11-20T20:00:00+00:00"


async def test_value_page_access_by_role(client: Any, harbor_id: int) -> None:
    await login(client, CHEN)
    other_rep = await client.get(f"/customers/{harbor_id}/value")
    await client.post("/logout", data={"csrf_token": csrf_of(await other_rep.text())})

    await login(client, OMAR)
    ops_page = await client.get(f"/customers/{harbor_id}/value")
    ops_html = await ops_page.text()
    ops_change = await client.post(
        f"/customers/{harbor_id}/value",
        data={"judgement": "valuable", "csrf_token": csrf_of(ops_html)},
        allow_redirects=False,
    )

    assert other_rep.status == 404
    assert ops_page.status == 200
    assert 'action="/customers/' not in ops_html
    assert ops_change.status == 403


async def test_fields_admin_defines_field(client: Any, database: Database) -> None:
    await login(client, MIA)
    page = await client.get("/admin/fields")
    token = csrf_of(await page.text())

    created = await client.post(
        "/admin/fields",
        data={
            "csrf_token": token,
            "label": "Fleet type",
            "key": "fleet_type",
            "kind": "choice",
            "choices": "Vans\nTrucks\n",
            "required": "on",
        },
        allow_redirects=False,
    )
    duplicate = await client.post(
        "/admin/fields",
        data={
            "csrf_token": token,
            "label": "Again",
            "key": "fleet_type",
            "kind": "text",
            "choices": "",
        },
        allow_redirects=False,
    )
    listing = await (await client.get("/admin/fields")).text()

    assert created.status == 303
    assert duplicate.status == 409
    assert "Vans, Trucks" in listing


async def test_fields_admin_for_managers_and_admins_only(client: Any) -> None:
    await login(client, ANA)

    page = await client.get("/admin/fields")

    assert page.status == 403


async def test_value_page_linked_from_customer_and_menu(
    client: Any, harbor_id: int
) -> None:
    await login(client, MIA)

    customer = await (await client.get(f"/customers/{harbor_id}")).text()

    assert f'href="/customers/{harbor_id}/value"' in customer
    assert 'href="/admin/fields"' in customer
