"""Attaching unmatched touches to customers from the inbox, both databases."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from conftest import csrf_of, login, post_signed
from sqlalchemy import select
from twilio_params import CALL_START, call_status, new_sid

from capture.db import Database, transaction
from capture.demo_data import CUSTOMERS, REPS
from capture.models import Activity, ContactPoint, Customer, Plan

ANA = REPS[0]
CHEN = REPS[2]
HARBOR = CUSTOMERS[0]  # owned by Ana
SHARED = "+14155550777"


async def call_from(client: Any, caller: str, rep_phone: str = ANA.phone) -> str:
    sid = new_sid("CA")
    params = call_status(sid, "ringing", 1, caller=caller, called=rep_phone)
    response = await post_signed(client, "/twilio/voice/status", params)
    assert response.status == 204
    return sid


async def activity_of(database: Database, sid: str) -> Activity:
    async with database.reads() as session:
        found = await session.scalar(
            select(Activity).where(Activity.external_key == f"call:{sid}")
        )
    assert found is not None
    return found


async def customer_named(database: Database, name: str) -> int:
    async with database.reads() as session:
        found = await session.scalar(select(Customer.id).where(Customer.name == name))
    assert found is not None
    return int(found)


@pytest.fixture
async def shared_number(database: Database, demo: None) -> list[int]:
    """Two customers of Ana's with the same front desk number."""
    ids = []
    ana_id = await owner_id(database)
    async with transaction(database.writes) as session:
        for name in ("Pier 9 Logistics", "Pier 9 Storage"):
            customer = Customer(name=name, status="active", owner_id=ana_id)
            customer.contact_points.append(ContactPoint(kind="phone", value=SHARED))
            session.add(customer)
            await session.flush()
            ids.append(customer.id)
    return ids


async def owner_id(database: Database) -> int:
    async with database.reads() as session:
        found = await session.scalar(
            select(Customer.owner_id).where(Customer.name == HARBOR.name)
        )
    assert found is not None
    return int(found)


async def attach(
    client: Any, activity_id: int, customer_id: int | str, add_number: bool = False
) -> Any:
    page = await client.get("/account/password")
    data = {
        "csrf_token": csrf_of(await page.text()),
        "customer_id": str(customer_id),
        "next": "/",
    }
    if add_number:
        data["add_number"] = "on"
    return await client.post(
        f"/touches/{activity_id}/attach", data=data, allow_redirects=False
    )


async def test_attach_withheld_call_to_customer(
    client: Any, database: Database
) -> None:
    sid = await call_from(client, "+266696687")
    activity = await activity_of(database, sid)
    harbor = await customer_named(database, HARBOR.name)
    await login(client, ANA.email)

    with_number = await attach(client, activity.id, harbor, add_number=True)
    response = await attach(client, activity.id, harbor)
    again = await attach(client, activity.id, harbor)

    assert with_number.status == 400
    assert "add_number" in await with_number.text()
    assert response.status == 303
    assert response.headers["Location"] == "/"
    assert (await activity_of(database, sid)).customer_id == harbor
    assert again.status == 400


async def test_attach_with_number_matches_its_other_touches(
    client: Any, database: Database, shared_number: list[int]
) -> None:
    first = await call_from(client, SHARED)
    second = await call_from(client, SHARED)
    other = await call_from(client, "+266696687")
    storage = shared_number[1]
    await login(client, ANA.email)

    response = await attach(
        client, (await activity_of(database, first)).id, storage, add_number=True
    )

    assert response.status == 303
    assert (await activity_of(database, first)).customer_id == storage
    assert (await activity_of(database, second)).customer_id == storage
    assert (await activity_of(database, other)).customer_id is None


async def test_attach_links_open_plan(client: Any, database: Database) -> None:
    harbor = await customer_named(database, HARBOR.name)
    async with transaction(database.writes) as session:
        plan = Plan(
            customer_id=harbor,
            purpose="keep_in_touch",
            status="open",
            created_at=CALL_START - timedelta(days=1),
        )
        session.add(plan)
        await session.flush()
        plan_id = plan.id
    sid = await call_from(client, "+266696687")
    await login(client, ANA.email)

    await attach(client, (await activity_of(database, sid)).id, harbor)

    assert (await activity_of(database, sid)).plan_id == plan_id


async def test_attach_needs_visible_touch_and_customer(
    client: Any, database: Database
) -> None:
    anas_call = await call_from(client, "+266696687")
    anas_activity = (await activity_of(database, anas_call)).id
    chens_customer = await customer_named(database, CUSTOMERS[-1].name)
    await login(client, CHEN.email)

    foreign_touch = await attach(client, anas_activity, chens_customer)
    await client.post(
        "/logout",
        data={"csrf_token": csrf_of(await (await client.get("/")).text())},
    )
    await login(client, ANA.email)
    foreign_customer = await attach(client, anas_activity, chens_customer)
    no_customer = await attach(client, anas_activity, "")
    token = csrf_of(await (await client.get("/account/password")).text())
    bad_id = await client.post("/touches/x/attach", data={"csrf_token": token})

    assert foreign_touch.status == 404
    assert foreign_customer.status == 404
    assert no_customer.status == 400
    assert bad_id.status == 404
    assert (await activity_of(database, anas_call)).customer_id is None


async def test_attach_not_for_ops(client: Any, database: Database) -> None:
    sid = await call_from(client, "+266696687")
    harbor = await customer_named(database, HARBOR.name)
    await login(client, "omar@demo.touchline.test")

    response = await attach(client, (await activity_of(database, sid)).id, harbor)

    assert response.status == 403
    assert (await activity_of(database, sid)).customer_id is None


async def test_home_page_attach_form(
    client: Any, database: Database, shared_number: list[int]
) -> None:
    withheld = await call_from(client, "+266696687")
    shared = await call_from(client, SHARED)
    await login(client, ANA.email)

    page = await client.get("/")
    html = await page.text()
    withheld_id = (await activity_of(database, withheld)).id
    shared_id = (await activity_of(database, shared)).id

    assert page.status == 200
    assert f'action="/touches/{withheld_id}/attach"' in html
    assert f'action="/touches/{shared_id}/attach"' in html
    assert f'<option value="{shared_number[0]}">Pier 9 Logistics</option>' in html
    # Only the touch with a number offers to add it to the customer.
    assert html.count('name="add_number"') == 1


async def test_calls_list_shows_unmatched_call(client: Any, database: Database) -> None:
    await call_from(client, "+266696687")
    await login(client, "ada@demo.touchline.test")

    page = await client.get("/calls")

    assert page.status == 200
    assert "Withheld number" in await page.text()


async def add_contact(client: Any, customer_id: int, kind: str, value: str) -> Any:
    page = await client.get(f"/customers/{customer_id}")
    return await client.post(
        f"/customers/{customer_id}/contacts",
        data={
            "csrf_token": csrf_of(await page.text()),
            "kind": kind,
            "value": value,
            "label": "front desk",
        },
        allow_redirects=False,
    )


async def test_added_number_attaches_its_unmatched_touches(
    client: Any, database: Database, shared_number: list[int]
) -> None:
    first = await call_from(client, SHARED)
    second = await call_from(client, SHARED)
    harbor = await customer_named(database, HARBOR.name)
    await login(client, ANA.email)

    response = await add_contact(client, harbor, "phone", "(415) 555-0777")

    assert response.status == 303
    assert (await activity_of(database, first)).customer_id == harbor
    assert (await activity_of(database, second)).customer_id == harbor
    async with database.reads() as session:
        labels = set(
            await session.scalars(
                select(ContactPoint.label).where(
                    ContactPoint.customer_id == harbor,
                    ContactPoint.value == SHARED,
                )
            )
        )
    assert labels == {"front desk"}


@pytest.mark.parametrize(
    ("kind", "value", "field"),
    [
        ("phone", ANA.phone, "value"),
        ("phone", "+14155550100", "value"),
        ("phone", "call me maybe", "value"),
        ("email", "no-at-sign", "value"),
        ("fax", "+14155550777", "kind"),
        ("phone", HARBOR.phone, "value"),
    ],
)
async def test_added_contact_checked(
    client: Any, database: Database, kind: str, value: str, field: str
) -> None:
    harbor = await customer_named(database, HARBOR.name)
    await login(client, ANA.email)

    response = await add_contact(client, harbor, kind, value)

    assert response.status == 400
    assert f"<code>{field}</code>" in await response.text()


async def test_added_contact_needs_own_customer(
    client: Any, database: Database
) -> None:
    chens_customer = await customer_named(database, CUSTOMERS[-1].name)
    await login(client, ANA.email)
    page = await client.get("/account/password")

    response = await client.post(
        f"/customers/{chens_customer}/contacts",
        data={
            "csrf_token": csrf_of(await page.text()),
            "kind": "email",
            "value": "new@example.test",
            "label": "",
        },
    )

    assert response.status == 404
