"""The chain on pages: setting and completing plans, suggestions, radar and
the plan board with each role's scope, on both databases."""

from __future__ import annotations

import html
from datetime import UTC, datetime, timedelta
from typing import Any

from conftest import login, post_signed
from sqlalchemy import select
from twilio_params import call_status, inbound_sms, new_sid

from capture.accounts import create_token
from capture.db import Database, transaction
from capture.demo_data import CUSTOMERS, ORGANISATION_NUMBER, REPS
from capture.models import Customer, Plan, User

ANA, BEN, CHEN = REPS
HARBOR = CUSTOMERS[0]  # Ana's
NORTHWIND = CUSTOMERS[2]  # Ben's
RIVERSIDE = CUSTOMERS[4]  # Chen's
MIA = "mia@demo.touchline.test"
OMAR = "omar@demo.touchline.test"


def section(page: str, name: str) -> str:
    start = page.index(f'<section id="{name}">')
    return page[start : page.index("</section>", start)]


async def customer_id(database: Database, name: str) -> int:
    async with database.reads() as session:
        found = await session.scalar(select(Customer.id).where(Customer.name == name))
    assert found is not None
    return int(found)


async def open_plan(database: Database, customer: int) -> Plan | None:
    async with database.reads() as session:
        return await session.scalar(
            select(Plan).where(Plan.customer_id == customer, Plan.status == "open")
        )


async def add_plan(database: Database, customer: int, **values: Any) -> int:
    async with transaction(database.writes) as session:
        plan = Plan(customer_id=customer, purpose="keep_in_touch", **values)
        session.add(plan)
        await session.flush()
        return int(plan.id)


async def test_page_set_plan_form(client: Any, database: Database) -> None:
    csrf = await login(client, ANA.email)
    harbor = await customer_id(database, HARBOR.name)
    page = await (await client.get(f"/customers/{harbor}")).text()
    assert 'id="broken-chain"' in page

    response = await client.post(
        f"/customers/{harbor}/plans",
        data={"csrf_token": csrf, "purpose": "nurture_need", "window": "next_week"},
        allow_redirects=False,
    )

    assert response.status == 303
    plan = await open_plan(database, harbor)
    assert plan is not None
    assert plan.purpose == "nurture_need"
    page = await (await client.get(f"/customers/{harbor}")).text()
    assert "Nurture the need" in section(page, "next-step")
    assert 'id="broken-chain"' not in page


async def test_page_set_plan_error_kept(client: Any, database: Database) -> None:
    csrf = await login(client, ANA.email)
    harbor = await customer_id(database, HARBOR.name)

    response = await client.post(
        f"/customers/{harbor}/plans",
        data={
            "csrf_token": csrf,
            "purpose": "keep_in_touch",
            "window": "",
            "due_at": "next tuesday",
            "note": "bring samples",
        },
    )

    page = await response.text()
    assert response.status == 400
    assert "due_at" in section(page, "next-step")
    assert 'value="bring samples"' in page
    assert await open_plan(database, harbor) is None


async def test_page_exact_time_in_viewer_zone(client: Any, database: Database) -> None:
    csrf = await login(client, ANA.email)
    harbor = await customer_id(database, HARBOR.name)

    await client.post(
        f"/customers/{harbor}/plans",
        data={
            "csrf_token": csrf,
            "purpose": "courtesy_greeting",
            "window": "",
            "due_at": "2026-12-24T09:00",
        },
        allow_redirects=False,
    )

    plan = await open_plan(database, harbor)
    assert plan is not None
    # The tests' organisation is in Los Angeles, 8 hours behind UTC in December.
    assert plan.due_start == datetime(2026, 12, 24, 17, 0, tzinfo=UTC)
    assert plan.window == "exact"


async def test_page_complete_closes_won(client: Any, database: Database) -> None:
    csrf = await login(client, ANA.email)
    harbor = await customer_id(database, HARBOR.name)
    plan_id = await add_plan(database, harbor, window="tomorrow", owner_id=None)

    response = await client.post(
        f"/customers/{harbor}/plans/{plan_id}/complete",
        data={"csrf_token": csrf, "next": "won", "reason": "signed today"},
        allow_redirects=False,
    )

    assert response.status == 303
    async with database.reads() as session:
        customer = await session.get(Customer, harbor)
        plan = await session.get(Plan, plan_id)
    assert customer is not None and customer.status == "won"
    assert plan is not None and plan.status == "done"
    page = await (await client.get(f"/customers/{harbor}")).text()
    assert 'id="broken-chain"' not in page


async def test_page_complete_next_plan(client: Any, database: Database) -> None:
    csrf = await login(client, ANA.email)
    harbor = await customer_id(database, HARBOR.name)
    plan_id = await add_plan(database, harbor, window="tomorrow")

    response = await client.post(
        f"/customers/{harbor}/plans/{plan_id}/complete",
        data={
            "csrf_token": csrf,
            "next": "plan",
            "purpose": "sign_and_collect",
            "window": "this_week",
            "note": "send the contract",
        },
        allow_redirects=False,
    )

    assert response.status == 303
    following = await open_plan(database, harbor)
    assert following is not None
    assert following.id != plan_id
    assert following.note == "send the contract"


async def test_page_ops_cannot_plan(client: Any, database: Database) -> None:
    csrf = await login(client, OMAR)
    harbor = await customer_id(database, HARBOR.name)
    page = await (await client.get(f"/customers/{harbor}")).text()

    response = await client.post(
        f"/customers/{harbor}/plans",
        data={"csrf_token": csrf, "purpose": "keep_in_touch", "window": "tomorrow"},
    )

    assert 'id="set-plan"' not in page
    assert response.status == 403
    assert await open_plan(database, harbor) is None


async def test_page_suggestion_accepted(client: Any, database: Database) -> None:
    csrf = await login(client, ANA.email)
    harbor = await customer_id(database, HARBOR.name)
    sms = inbound_sms(
        new_sid("SM"), HARBOR.phone, ORGANISATION_NUMBER, "明天发合同给我，谢谢"
    )
    assert (await post_signed(client, "/twilio/sms", sms)).status == 200

    page = await (await client.get(f"/customers/{harbor}")).text()
    suggestions = section(page, "suggestions")
    assert "Sign and collect payment" in suggestions
    assert "Tomorrow" in suggestions
    source = suggestions.split('name="source_activity_id" value="')[1].split('"')[0]
    response = await client.post(
        f"/customers/{harbor}/plans",
        data={
            "csrf_token": csrf,
            "purpose": "sign_and_collect",
            "window": "tomorrow",
            "note": html.unescape("明天发合同给我，谢谢"),
            "source_activity_id": source,
        },
        allow_redirects=False,
    )

    assert response.status == 303
    plan = await open_plan(database, harbor)
    assert plan is not None
    assert plan.source_activity_id == int(source)
    # A suggestion from before the newest plan is not offered again.
    page = await (await client.get(f"/customers/{harbor}")).text()
    assert 'id="suggestions"' not in page


async def test_page_radar_beside_phone(client: Any, database: Database) -> None:
    await login(client, ANA.email)
    harbor = await customer_id(database, HARBOR.name)

    page = await (await client.get(f"/customers/{harbor}")).text()

    assert "San Francisco, CA" in page
    assert "local time" in page
    assert "harbor.example" in page


async def board_page(client: Any, query: str = "") -> str:
    response = await client.get("/board" + query)
    assert response.status == 200, await response.text()
    return str(await response.text())


async def seed_board(database: Database) -> dict[str, int]:
    now = datetime.now(UTC)
    ids = {
        name: await customer_id(database, name)
        for name in (HARBOR.name, NORTHWIND.name, RIVERSIDE.name)
    }
    await add_plan(
        database,
        ids[HARBOR.name],
        window="later_today",
        due_start=now - timedelta(minutes=1),
        due_end=now + timedelta(minutes=30),
        note="harbor due",
    )
    await add_plan(
        database,
        ids[NORTHWIND.name],
        window="tomorrow",
        due_start=now - timedelta(days=2),
        due_end=now - timedelta(days=1),
        note="northwind overdue",
    )
    # Completed without any touch: missed.
    await add_plan(
        database,
        ids[RIVERSIDE.name],
        window="tomorrow",
        status="done",
        due_start=now - timedelta(days=3),
        due_end=now - timedelta(days=2),
        closed_at=now - timedelta(days=1),
    )
    return ids


async def test_board_rep_sees_own(client: Any, database: Database) -> None:
    await seed_board(database)
    await login(client, ANA.email)

    page = await board_page(client)

    assert HARBOR.name in section(page, "due-today")
    assert NORTHWIND.name not in page
    assert RIVERSIDE.name not in page
    # Ana's other customer, Lumen Dental, has no plan: a broken chain.
    assert CUSTOMERS[1].name in section(page, "broken")
    assert '<a href="/board">' in page


async def test_board_manager_sees_team(client: Any, database: Database) -> None:
    await seed_board(database)
    await login(client, MIA)

    page = await board_page(client)

    assert HARBOR.name in section(page, "due-today")
    assert NORTHWIND.name in section(page, "overdue")
    assert RIVERSIDE.name not in page
    summary = section(page, "board-summary")
    assert ANA.name in summary
    assert BEN.name in summary


async def test_board_ops_sees_all(client: Any, database: Database) -> None:
    await seed_board(database)
    await login(client, OMAR)

    page = await board_page(client)

    assert RIVERSIDE.name in section(page, "missed")
    assert NORTHWIND.name in section(page, "overdue")
    assert HARBOR.name in section(page, "due-today")


async def test_board_filters(client: Any, database: Database) -> None:
    await seed_board(database)
    await login(client, OMAR)
    async with database.reads() as session:
        ben = await session.scalar(select(User.id).where(User.email == BEN.email))

    by_rep = await board_page(client, f"?rep={ben}")
    by_purpose = await board_page(client, "?purpose=sign_and_collect")
    bad = await client.get("/board?purpose=bribery")

    assert NORTHWIND.name in section(by_rep, "overdue")
    assert HARBOR.name not in by_rep
    assert HARBOR.name not in section(by_purpose, "due-today")
    assert bad.status == 400
    assert "purpose" in await bad.text()


async def test_board_api(client: Any, database: Database) -> None:
    await seed_board(database)
    async with transaction(database.writes) as session:
        secret, _ = await create_token(session, MIA)

    response = await client.get(
        "/api/v1/board", headers={"Authorization": f"Bearer {secret}"}
    )

    body = await response.json()
    assert response.status == 200
    assert [item["customer_name"] for item in body["due_today"]] == [HARBOR.name]
    assert [item["customer_name"] for item in body["overdue"]] == [NORTHWIND.name]
    assert body["overdue"][0]["outcome"] == "overdue"
    assert body["missed"] == []
    broken = {item["customer_name"] for item in body["broken_chains"]}
    assert CUSTOMERS[1].name in broken
    assert RIVERSIDE.name not in broken


async def test_call_page_shows_next_step(client: Any, database: Database) -> None:
    await login(client, ANA.email)
    harbor = await customer_id(database, HARBOR.name)
    sid = new_sid("CA")
    params = call_status(
        sid, "completed", 3, caller=ANA.phone, called=HARBOR.phone, duration=40
    )
    assert (await post_signed(client, "/twilio/voice/status", params)).status == 204

    broken = section(await (await client.get(f"/calls/{sid}")).text(), "call-next-step")
    await add_plan(database, harbor, window="next_week")
    planned = section(
        await (await client.get(f"/calls/{sid}")).text(), "call-next-step"
    )

    assert "broken chain" in broken
    assert f'href="/customers/{harbor}#next-step"' in broken
    assert "Keep in touch" in planned
    assert "Complete it and set the next step" in planned
