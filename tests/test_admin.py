"""The users admin page, deactivation, the audit log, and secrets kept out of sight."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from conftest import ADMIN_EMAIL, AUTH_TOKEN, PASSWORD, login, post_signed
from sqlalchemy import select
from test_login import post_login
from twilio_params import call_status, new_sid

from capture.accounts import create_token
from capture.db import Database, transaction
from capture.demo_data import CUSTOMERS, ORGANISATION_NUMBER, REPS
from capture.models import AuditEvent, User

ANA = REPS[0]
NEW_PASSWORD = "a long new password 42"


async def events(database: Database, action: str) -> list[AuditEvent]:
    async with database.reads() as session:
        query = select(AuditEvent).where(AuditEvent.action == action)
        return list(await session.scalars(query.order_by(AuditEvent.id)))


async def user_named(database: Database, email: str) -> User:
    async with database.reads() as session:
        user = await session.scalar(select(User).where(User.email == email))
    assert user is not None
    return user


def new_user(token: str, **changes: str) -> dict[str, str]:
    form = {
        "csrf_token": token,
        "email": "zoe@demo.touchline.test",
        "name": "Zoe Park",
        "role": "rep",
        "team": "North",
        "phone": "",
        "password": NEW_PASSWORD,
    }
    form.update(changes)
    return form


async def test_admin_adds_user_who_logs_in(client: Any, database: Database) -> None:
    token = await login(client, ADMIN_EMAIL)

    added = await client.post("/admin/users", data=new_user(token))
    client.session.cookie_jar.clear()
    logged_in = await post_login(client, "zoe@demo.touchline.test", NEW_PASSWORD)

    assert added.status == 200
    assert "Zoe Park" in await added.text()
    assert logged_in.status == 303
    [created] = await events(database, "user_created")
    assert created.actor_email == ADMIN_EMAIL
    assert json.loads(created.detail)["team"] == "North"


@pytest.mark.parametrize(
    ("changes", "status", "field"),
    [
        ({"email": "not-an-address"}, 400, "email"),
        ({"name": " "}, 400, "name"),
        ({"role": "boss"}, 400, "role"),
        ({"password": "short"}, 400, "password"),
        ({"phone": "12"}, 400, "phone"),
        ({"email": ANA.email}, 409, "email"),
    ],
)
async def test_admin_add_user_names_field(
    client: Any, changes: dict[str, str], status: int, field: str
) -> None:
    token = await login(client, ADMIN_EMAIL)

    response = await client.post("/admin/users", data=new_user(token, **changes))

    text = await response.text()
    assert response.status == status
    assert f"(field: <code>{field}</code>)" in text
    assert 'value="Zoe Park"' in text or changes.get("name") == " "


async def test_admin_changes_role_and_team(client: Any, database: Database) -> None:
    token = await login(client, ADMIN_EMAIL)
    ana = await user_named(database, ANA.email)

    response = await client.post(
        f"/admin/users/{ana.id}",
        data={"csrf_token": token, "role": "manager", "team": "East"},
    )

    changed = await user_named(database, ANA.email)
    [event] = await events(database, "user_updated")
    assert response.status == 200
    assert changed.role == "manager"
    assert changed.team_id != ana.team_id
    assert json.loads(event.detail)["role"] == ["rep", "manager"]
    assert json.loads(event.detail)["team"] == ["West", "East"]


async def test_admin_deactivation_ends_sessions_and_tokens(
    client: Any, database: Database
) -> None:
    async with transaction(database.writes) as session:
        secret, _ = await create_token(session, ANA.email)
    await login(client, ANA.email)
    cookie = client.session.cookie_jar.filter_cookies(client.make_url("/"))
    ana_session = cookie["touchline_session"].value
    bearer = {"Authorization": f"Bearer {secret}"}
    before = await client.get("/api/v1/customers", headers=bearer)
    client.session.cookie_jar.clear()
    token = await login(client, ADMIN_EMAIL)
    ana = await user_named(database, ANA.email)

    response = await client.post(
        f"/admin/users/{ana.id}/deactivate", data={"csrf_token": token}
    )
    client.session.cookie_jar.clear()
    client.session.cookie_jar.update_cookies(
        {"touchline_session": ana_session}, response_url=client.make_url("/")
    )
    page = await client.get("/customers", allow_redirects=False)
    api = await client.get("/api/v1/customers", headers=bearer)
    again = await post_login(client, ANA.email, PASSWORD)

    assert before.status == 200
    assert response.status == 200
    assert page.status == 303
    assert api.status == 401
    assert again.status == 401
    [event] = await events(database, "user_deactivated")
    assert json.loads(event.detail)["tokens_revoked"] == 1


async def test_admin_cannot_remove_last_admin(client: Any, database: Database) -> None:
    token = await login(client, ADMIN_EMAIL)
    ada = await user_named(database, ADMIN_EMAIL)

    deactivated = await client.post(
        f"/admin/users/{ada.id}/deactivate", data={"csrf_token": token}
    )
    demoted = await client.post(
        f"/admin/users/{ada.id}", data={"csrf_token": token, "role": "rep"}
    )

    assert deactivated.status == 400
    assert "last active admin" in await deactivated.text()
    assert demoted.status == 400
    assert (await user_named(database, ADMIN_EMAIL)).active


async def test_admin_unknown_user_not_found(client: Any) -> None:
    token = await login(client, ADMIN_EMAIL)

    response = await client.post(
        "/admin/users/999/deactivate", data={"csrf_token": token}
    )

    assert response.status == 404


async def test_admin_pages_reject_other_roles(client: Any, database: Database) -> None:
    token = await login(client, "mia@demo.touchline.test")

    response = await client.post("/admin/users", data=new_user(token))

    assert response.status == 403
    assert await events(database, "user_created") == []


async def test_audit_api_lists_logins(client: Any, database: Database) -> None:
    await post_login(client, ANA.email, "wrong password")
    await login(client, ANA.email)
    async with transaction(database.writes) as session:
        secret, _ = await create_token(session, ADMIN_EMAIL)
    bearer = {"Authorization": f"Bearer {secret}"}

    everything = await (await client.get("/api/v1/audit", headers=bearer)).json()
    failed = await (
        await client.get(
            "/api/v1/audit", params={"action": "login_failed"}, headers=bearer
        )
    ).json()
    bad = await client.get("/api/v1/audit", params={"action": "x"}, headers=bearer)

    assert [item["action"] for item in everything["items"]] == [
        "login",
        "login_failed",
    ]
    assert failed["items"][0]["detail"] == {"reason": "wrong password"}
    assert failed["items"][0]["actor"] is None
    assert bad.status == 400
    assert (await bad.json())["field"] == "action"


async def test_secrets_never_in_responses_or_logs(
    client: Any, database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with transaction(database.writes) as session:
        secret, _ = await create_token(session, ADMIN_EMAIL)
    bearer = {"Authorization": f"Bearer {secret}"}
    params = call_status(
        new_sid("CA"),
        "completed",
        3,
        caller=ANA.phone,
        called=CUSTOMERS[0].phone,
        duration=5,
    )
    bodies = [await (await post_signed(client, "/twilio/voice/status", params)).read()]
    bodies.append(
        await (await post_login(client, ADMIN_EMAIL, "wrong " + PASSWORD)).read()
    )
    token = await login(client, ADMIN_EMAIL)
    bodies.append(
        await (await client.post("/admin/users", data=new_user(token, role="x"))).read()
    )
    bodies.append(
        await (
            await client.post(
                "/account/password",
                data={
                    "csrf_token": token,
                    "current_password": PASSWORD,
                    "new_password": NEW_PASSWORD,
                    "confirm_password": NEW_PASSWORD,
                },
            )
        ).read()
    )
    for path in ("/admin/users", "/admin/audit", "/customers/1"):
        bodies.append(await (await client.get(path)).read())
    for path in (
        "/api/v1/audit",
        "/api/v1/customers",
        "/api/v1/customers/1/activities",
    ):
        bodies.append(await (await client.get(path, headers=bearer)).read())

    async with database.reads() as session:
        details = [event.detail for event in await session.scalars(select(AuditEvent))]
    secrets = [PASSWORD, NEW_PASSWORD, secret, AUTH_TOKEN]
    for value in secrets:
        assert all(value.encode() not in body for body in bodies), value
        assert value not in caplog.text, value
        assert all(value not in detail for detail in details), value
    assert len(details) == 3


@pytest.mark.parametrize(
    ("phone", "message"),
    [
        (CUSTOMERS[0].phone, "belongs to a customer"),
        (ORGANISATION_NUMBER, "one of the company&#39;s numbers"),
        (REPS[1].phone, "another user has this phone number"),
    ],
)
async def test_new_user_phone_must_be_free(
    client: Any, as_admin: str, phone: str, message: str
) -> None:
    response = await client.post(
        "/admin/users",
        data={
            "email": "new.rep@example.com",
            "name": "New Rep",
            "role": "rep",
            "team": "",
            "phone": phone,
            "password": "a long enough password",
            "csrf_token": as_admin,
        },
    )

    assert response.status == 409
    assert message in await response.text()
