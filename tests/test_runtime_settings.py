"""Settings an admin changes while the service runs, both databases."""

from __future__ import annotations

import json
from typing import Any

import pytest
from conftest import ADMIN_EMAIL, AUTH_TOKEN, PASSWORD, SECRET_KEY, csrf_of, login
from sqlalchemy import select

from capture.db import Database
from capture.demo_data import CUSTOMERS
from capture.models import AuditEvent, Customer

ANA = "ana@demo.touchline.test"


async def change(client: Any, key: str, value: str, reset: bool = False) -> Any:
    page = await client.get("/admin/settings")
    data = {"csrf_token": csrf_of(await page.text()), "key": key, "value": value}
    if reset:
        data["reset"] = "1"
    return await client.post("/admin/settings", data=data, allow_redirects=False)


async def test_settings_page_lists_all_without_secrets(client: Any) -> None:
    await login(client, ADMIN_EMAIL)

    page = await client.get("/admin/settings")
    html = await page.text()

    assert page.status == 200
    assert "<code>twilio_auth_token</code>" in html
    assert "<code>public_url</code>" in html
    assert AUTH_TOKEN not in html
    assert SECRET_KEY not in html
    assert html.count('name="key" value=') >= 5


async def test_setting_change_takes_effect_and_resets(
    client: Any, database: Database
) -> None:
    await login(client, ADMIN_EMAIL)

    saved = await change(client, "currency", "eur")
    after = await (await client.get("/admin/settings")).text()
    await login(client, ANA)
    harbor = await customer_id(database)
    page = await client.get(f"/customers/{harbor}/value")
    await client.post(
        f"/customers/{harbor}/value",
        data={"csrf_token": csrf_of(await page.text()), "expected_amount": "500"},
    )
    await login(client, ADMIN_EMAIL)
    reset = await change(client, "currency", "", reset=True)
    final = await (await client.get("/admin/settings")).text()

    assert saved.status == 303
    assert "<td>EUR</td>" in after
    async with database.reads() as session:
        customer = await session.get(Customer, harbor)
        events = (
            await session.scalars(
                select(AuditEvent).where(AuditEvent.action == "setting_changed")
            )
        ).all()
    assert customer is not None
    assert customer.expected_currency == "EUR"
    assert reset.status == 303
    assert "<td>EUR</td>" not in final
    assert [json.loads(e.detail)["key"] for e in events] == ["currency", "currency"]


async def customer_id(database: Database) -> int:
    async with database.reads() as session:
        found = await session.scalar(
            select(Customer.id).where(Customer.name == CUSTOMERS[0].name)
        )
    assert found is not None
    return int(found)


async def test_lockout_setting_applies_at_once(client: Any) -> None:
    await login(client, ADMIN_EMAIL)
    await change(client, "login_max_failures", "1")
    await client.post(
        "/logout",
        data={
            "csrf_token": csrf_of(await (await client.get("/admin/settings")).text())
        },
    )

    form = await client.get("/login")
    failed = await client.post(
        "/login",
        data={
            "email": ANA,
            "password": "wrong password",
            "csrf_token": csrf_of(await form.text()),
        },
    )
    form = await client.get("/login")
    locked = await client.post(
        "/login",
        data={
            "email": ANA,
            "password": PASSWORD,
            "csrf_token": csrf_of(await form.text()),
        },
        allow_redirects=False,
    )

    # One failure now locks the account, so even the right password waits.
    assert failed.status == 429
    assert locked.status == 429
    assert "locked" in await locked.text()


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("session_idle_seconds", "0"),
        ("session_idle_seconds", "soon"),
        ("currency", "euros"),
        ("public_url", "http://elsewhere.test"),
        ("secret_key", "k" * 40),
        ("no_such_setting", "1"),
    ],
)
async def test_setting_bad_value_names_key(
    client: Any, database: Database, key: str, value: str
) -> None:
    await login(client, ADMIN_EMAIL)

    response = await change(client, key, value)

    assert response.status == 400
    assert f"<code>{key}</code>" in await response.text()
    async with database.reads() as session:
        events = (
            await session.scalars(
                select(AuditEvent).where(AuditEvent.action == "setting_changed")
            )
        ).all()
    assert events == []


async def test_settings_page_admins_only(client: Any) -> None:
    await login(client, "mia@demo.touchline.test")

    page = await client.get("/admin/settings")

    assert page.status == 403
