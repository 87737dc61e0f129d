"""The teams and company numbers admin pages: validation, CSRF and the audit log."""

from __future__ import annotations

import html
import json
from typing import Any

import pytest
from conftest import ADMIN_EMAIL, login, wrong_token
from sqlalchemy import select

from capture.db import Database
from capture.demo_data import CUSTOMERS, ORGANISATION_NUMBER, REPS
from capture.models import AuditEvent, CompanyNumber, Team

ANA = REPS[0]


async def events(database: Database, action: str) -> list[AuditEvent]:
    async with database.reads() as session:
        query = select(AuditEvent).where(AuditEvent.action == action)
        return list(await session.scalars(query.order_by(AuditEvent.id)))


async def team_id(database: Database, name: str) -> int:
    async with database.reads() as session:
        found = await session.scalar(select(Team.id).where(Team.name == name))
    assert found is not None
    return int(found)


async def company_numbers(database: Database) -> dict[str, str]:
    async with database.reads() as session:
        rows = await session.execute(select(CompanyNumber.phone, CompanyNumber.label))
    return {phone: label for phone, label in rows.all()}


async def test_teams_list_member_counts(client: Any) -> None:
    await login(client, ADMIN_EMAIL)

    response = await client.get("/admin/teams")

    text = await response.text()
    west = text.split("<td>West</td>", 1)[1].split("</tr>", 1)[0]
    east = text.split("<td>East</td>", 1)[1].split("</tr>", 1)[0]
    assert response.status == 200
    assert "<td>3</td>" in west
    assert "<td>1</td>" in east


async def test_teams_add_and_rename(client: Any, database: Database) -> None:
    token = await login(client, ADMIN_EMAIL)

    added = await client.post(
        "/admin/teams", data={"csrf_token": token, "name": "North"}
    )
    north = await team_id(database, "North")
    renamed = await client.post(
        f"/admin/teams/{north}", data={"csrf_token": token, "name": "North Coast"}
    )

    text = await renamed.text()
    [created] = await events(database, "team_created")
    [changed] = await events(database, "team_renamed")
    assert added.status == 200
    assert renamed.status == 200
    assert "North Coast" in text
    assert await team_id(database, "North Coast") == north
    assert created.actor_email == ADMIN_EMAIL
    assert json.loads(created.detail) == {"name": "North"}
    assert json.loads(changed.detail) == {"name": ["North", "North Coast"]}


@pytest.mark.parametrize(
    ("name", "status", "message"),
    [
        ("West", 409, "a team named 'West' exists"),
        (" west ", 409, "a team named 'west' exists"),
        ("   ", 400, "name is empty"),
        ("x" * 201, 400, "name is longer than 200 characters"),
    ],
)
async def test_teams_add_rejected_names_field(
    client: Any, database: Database, name: str, status: int, message: str
) -> None:
    token = await login(client, ADMIN_EMAIL)

    response = await client.post(
        "/admin/teams", data={"csrf_token": token, "name": name}
    )

    text = html.unescape(await response.text())
    assert response.status == status
    assert message in text
    assert "<code>name</code>" in text
    assert await events(database, "team_created") == []


async def test_teams_rename_to_taken_name(client: Any, database: Database) -> None:
    token = await login(client, ADMIN_EMAIL)
    east = await team_id(database, "East")

    response = await client.post(
        f"/admin/teams/{east}", data={"csrf_token": token, "name": "WEST"}
    )

    assert response.status == 409
    assert "<code>name</code>" in await response.text()
    assert await team_id(database, "East") == east
    assert await events(database, "team_renamed") == []


async def test_teams_rename_unknown_is_404(client: Any) -> None:
    token = await login(client, ADMIN_EMAIL)

    missing = await client.post(
        "/admin/teams/999", data={"csrf_token": token, "name": "X"}
    )
    malformed = await client.post(
        "/admin/teams/abc", data={"csrf_token": token, "name": "X"}
    )

    assert missing.status == 404
    assert malformed.status == 404


async def test_numbers_list_formatted(client: Any) -> None:
    await login(client, ADMIN_EMAIL)

    text = await (await client.get("/admin/numbers")).text()

    assert "(415) 555-0100" in text
    assert ORGANISATION_NUMBER in text
    assert "Main line" in text


async def test_numbers_add_national_format(client: Any, database: Database) -> None:
    token = await login(client, ADMIN_EMAIL)

    response = await client.post(
        "/admin/numbers",
        data={"csrf_token": token, "phone": "(415) 555-0199", "label": "Support"},
    )

    [added] = await events(database, "number_added")
    assert response.status == 200
    assert (await company_numbers(database))["+14155550199"] == "Support"
    assert "(415) 555-0199" in await response.text()
    assert json.loads(added.detail) == {"phone": "+14155550199", "label": "Support"}


@pytest.mark.parametrize(
    ("phone", "status", "message"),
    [
        ("", 400, "phone is empty"),
        ("12", 400, "is not a valid number"),
        ("+1 415 555 0100", 409, "+14155550100 is already a company number"),
        (ANA.phone[2:], 409, f"is the phone of user {ANA.name}"),
        ("415.555.0201", 409, f"customer {CUSTOMERS[0].name}"),
    ],
)
async def test_numbers_add_rejected_names_field(
    client: Any, database: Database, phone: str, status: int, message: str
) -> None:
    token = await login(client, ADMIN_EMAIL)

    response = await client.post(
        "/admin/numbers", data={"csrf_token": token, "phone": phone, "label": "x"}
    )

    text = html.unescape(await response.text())
    assert response.status == status
    assert message in text
    assert "<code>phone</code>" in text
    assert f'value="{phone}"' in text
    assert await company_numbers(database) == {ORGANISATION_NUMBER: "Main line"}


async def test_numbers_label_too_long(client: Any) -> None:
    token = await login(client, ADMIN_EMAIL)

    response = await client.post(
        "/admin/numbers",
        data={"csrf_token": token, "phone": "+14155550199", "label": "x" * 201},
    )

    assert response.status == 400
    assert "<code>label</code>" in await response.text()


async def test_numbers_remove(client: Any, database: Database) -> None:
    token = await login(client, ADMIN_EMAIL)
    async with database.reads() as session:
        number_id = await session.scalar(select(CompanyNumber.id))

    removed = await client.post(
        f"/admin/numbers/{number_id}/remove", data={"csrf_token": token}
    )
    again = await client.post(
        f"/admin/numbers/{number_id}/remove", data={"csrf_token": token}
    )

    [event] = await events(database, "number_removed")
    assert removed.status == 200
    assert again.status == 404
    assert await company_numbers(database) == {}
    assert json.loads(event.detail)["phone"] == ORGANISATION_NUMBER


@pytest.mark.parametrize(
    ("path", "form"),
    [
        ("/admin/teams", {"name": "North"}),
        ("/admin/teams/1", {"name": "North"}),
        ("/admin/numbers", {"phone": "+14155550199"}),
        ("/admin/numbers/1/remove", {}),
    ],
)
async def test_organisation_forms_need_csrf(
    client: Any, database: Database, path: str, form: dict[str, str]
) -> None:
    token = await login(client, ADMIN_EMAIL)

    missing = await client.post(path, data=form)
    wrong = await client.post(path, data={**form, "csrf_token": wrong_token(token)})

    assert missing.status == 403
    assert wrong.status == 403
    assert await company_numbers(database) == {ORGANISATION_NUMBER: "Main line"}
    async with database.reads() as session:
        names = set(await session.scalars(select(Team.name)))
    assert names == {"West", "East"}


@pytest.mark.parametrize(
    "email", [ANA.email, "mia@demo.touchline.test", "omar@demo.touchline.test"]
)
async def test_organisation_forms_need_admin(
    client: Any, database: Database, email: str
) -> None:
    token = await login(client, email)

    team = await client.post("/admin/teams", data={"csrf_token": token, "name": "N"})
    number = await client.post(
        "/admin/numbers", data={"csrf_token": token, "phone": "+14155550199"}
    )
    removed = await client.post("/admin/numbers/1/remove", data={"csrf_token": token})

    assert team.status == 403
    assert number.status == 403
    assert removed.status == 403
    assert await company_numbers(database) == {ORGANISATION_NUMBER: "Main line"}
