"""The follow-up chain on both databases: one open plan, completing, outcomes,
late webhooks attaching to the plan open at the touch's time, and the API."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from conftest import post_signed
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from twilio_params import call_status, new_sid

from capture import chain
from capture.access import Viewer
from capture.accounts import create_token
from capture.db import Database, transaction
from capture.demo_data import CUSTOMERS, REPS
from capture.errors import Conflict, InvalidInput
from capture.models import Activity, Customer, CustomerChange, Plan, User
from capture.plans import customer_plans
from capture.windows import WindowRules

ANA, BEN, CHEN = REPS
HARBOR = CUSTOMERS[0]  # owned by Ana
OMAR = "omar@demo.touchline.test"
MIA = "mia@demo.touchline.test"
ZONE_NAME = "America/Los_Angeles"
# Monday 09:00 in Los Angeles, the organisation's time zone in tests.
MONDAY = datetime(2026, 11, 30, 17, 0, tzinfo=UTC)


async def viewer_for(database: Database, email: str) -> Viewer:
    async with database.reads() as session:
        user = await session.scalar(select(User).where(User.email == email))
    assert user is not None
    return Viewer.of(user)


async def harbor(session: Any) -> Customer:
    found = await session.scalar(select(Customer).where(Customer.name == HARBOR.name))
    assert found is not None
    return found  # type: ignore[no-any-return]


async def set_plan(
    database: Database, viewer: Viewer, entry: chain.PlanEntry, now: datetime
) -> int:
    async with transaction(database.writes) as session:
        plan = await chain.set_plan(
            session,
            viewer,
            await harbor(session),
            entry,
            now=now,
            rules=WindowRules(),
            fallback_zone=UTC,
        )
        return plan.id


async def complete(
    database: Database,
    viewer: Viewer,
    plan_id: int,
    step: chain.NextStep,
    now: datetime,
) -> int | None:
    async with transaction(database.writes) as session:
        following = await chain.complete_plan(
            session,
            viewer,
            await harbor(session),
            plan_id,
            step,
            now=now,
            rules=WindowRules(),
            fallback_zone=UTC,
        )
        return following.id if following else None


async def plan_row(database: Database, plan_id: int) -> Plan:
    async with database.reads() as session:
        plan = await session.get(Plan, plan_id)
    assert plan is not None
    return plan


async def test_chain_window_in_owner_zone(database: Database, demo: None) -> None:
    async with transaction(database.writes) as session:
        user = await session.scalar(select(User).where(User.email == ANA.email))
        assert user is not None
        user.timezone = "Asia/Shanghai"
    ana = await viewer_for(database, ANA.email)

    plan_id = await set_plan(
        database, ana, chain.PlanEntry("keep_in_touch", window="tomorrow"), MONDAY
    )

    plan = await plan_row(database, plan_id)
    # 17:00 UTC is 01:00 on Tuesday in Shanghai; tomorrow is Wednesday there.
    assert plan.due_start == datetime(2026, 11, 30, 16, 0, tzinfo=UTC) + timedelta(
        days=1
    )
    assert plan.due_end == datetime(2026, 12, 2, 16, 0, tzinfo=UTC)
    assert plan.owner_id == ana.user_id
    assert plan.window == "tomorrow"


async def test_chain_one_open_plan(database: Database, demo: None) -> None:
    ana = await viewer_for(database, ANA.email)
    await set_plan(database, ana, chain.PlanEntry("keep_in_touch", "this_week"), MONDAY)

    with pytest.raises(Conflict) as raised:
        await set_plan(
            database, ana, chain.PlanEntry("nurture_need", "next_week"), MONDAY
        )

    assert raised.value.field == "plan"
    async with database.reads() as session:
        open_plans = (
            await session.scalars(select(Plan).where(Plan.status == "open"))
        ).all()
    assert len(open_plans) == 1


async def test_chain_index_rejects_second_open(database: Database, demo: None) -> None:
    async with transaction(database.writes) as session:
        customer = await harbor(session)
        session.add(Plan(customer_id=customer.id, purpose="keep_in_touch"))

    with pytest.raises(IntegrityError):
        async with transaction(database.writes) as session:
            customer = await harbor(session)
            session.add(Plan(customer_id=customer.id, purpose="nurture_need"))

    async with transaction(database.writes) as session:
        customer = await harbor(session)
        session.add(
            Plan(customer_id=customer.id, purpose="nurture_need", status="done")
        )


async def test_chain_concurrent_set_one_wins(database: Database, demo: None) -> None:
    ana = await viewer_for(database, ANA.email)
    entries = [
        chain.PlanEntry("keep_in_touch", "tomorrow"),
        chain.PlanEntry("nurture_need", "next_week"),
    ]

    results = await asyncio.gather(
        *(set_plan(database, ana, entry, MONDAY) for entry in entries),
        return_exceptions=True,
    )

    opened = [result for result in results if isinstance(result, int)]
    conflicts = [result for result in results if isinstance(result, Conflict)]
    assert len(opened) == 1, results
    assert len(conflicts) == 1, results
    assert conflicts[0].field == "plan"


async def test_chain_complete_opens_next(database: Database, demo: None) -> None:
    ana = await viewer_for(database, ANA.email)
    first = await set_plan(
        database, ana, chain.PlanEntry("keep_in_touch", "tomorrow"), MONDAY
    )
    later = MONDAY + timedelta(days=1)

    following = await complete(
        database,
        ana,
        first,
        chain.NextStep(
            "plan", chain.PlanEntry("sign_and_collect", "next_week", note="po")
        ),
        later,
    )

    done = await plan_row(database, first)
    assert done.status == "done"
    assert done.closed_at == later
    assert following is not None
    opened = await plan_row(database, following)
    assert opened.status == "open"
    assert opened.purpose == "sign_and_collect"
    assert opened.created_at == later


async def test_chain_invalid_next_keeps_plan_open(
    database: Database, demo: None
) -> None:
    ana = await viewer_for(database, ANA.email)
    first = await set_plan(
        database, ana, chain.PlanEntry("keep_in_touch", "tomorrow"), MONDAY
    )

    with pytest.raises(InvalidInput) as raised:
        await complete(
            database,
            ana,
            first,
            chain.NextStep("plan", chain.PlanEntry("world_domination", "tomorrow")),
            MONDAY,
        )

    assert raised.value.field == "purpose"
    assert (await plan_row(database, first)).status == "open"


async def test_chain_close_customer_won(database: Database, demo: None) -> None:
    ana = await viewer_for(database, ANA.email)
    first = await set_plan(
        database, ana, chain.PlanEntry("sign_and_collect", "tomorrow"), MONDAY
    )

    await complete(database, ana, first, chain.NextStep("won", reason="signed"), MONDAY)

    async with database.reads() as session:
        customer = await harbor(session)
        change = await session.scalar(
            select(CustomerChange).where(CustomerChange.field == "status")
        )
        chain_of = await customer_plans(session, customer.id)
    assert customer.status == "won"
    assert customer.closed_at == MONDAY
    assert customer.closed_reason == "signed"
    assert change is not None
    assert (change.old_value, change.new_value) == ("active", "won")
    assert chain_of.open is None


async def test_chain_complete_twice_conflicts(database: Database, demo: None) -> None:
    ana = await viewer_for(database, ANA.email)
    first = await set_plan(
        database, ana, chain.PlanEntry("keep_in_touch", "tomorrow"), MONDAY
    )
    await complete(database, ana, first, chain.NextStep("none"), MONDAY)

    with pytest.raises(Conflict):
        await complete(database, ana, first, chain.NextStep("none"), MONDAY)


async def test_chain_owner_must_be_visible(database: Database, demo: None) -> None:
    ana = await viewer_for(database, ANA.email)
    chen = await viewer_for(database, CHEN.email)

    with pytest.raises(InvalidInput) as raised:
        await set_plan(
            database,
            ana,
            chain.PlanEntry("keep_in_touch", "tomorrow", owner_id=chen.user_id),
            MONDAY,
        )

    assert raised.value.field == "owner_id"


def test_chain_entry_checks() -> None:
    cases = [
        (chain.PlanEntry("bogus", "tomorrow"), "purpose"),
        (chain.PlanEntry("keep_in_touch"), "window"),
        (chain.PlanEntry("keep_in_touch", "someday"), "window"),
        (chain.PlanEntry("keep_in_touch", "tomorrow", due_at=MONDAY), "window"),
        (chain.PlanEntry("keep_in_touch", "tomorrow", note="x" * 2001), "note"),
    ]
    for entry, field in cases:
        with pytest.raises(InvalidInput) as raised:
            chain.check_entry(entry)
        assert raised.value.field == field, entry


def test_chain_outcome_rules() -> None:
    start, end = MONDAY, MONDAY + timedelta(days=1)
    plan = Plan(status="open", due_start=start, due_end=end, created_at=start)
    before_end = end - timedelta(minutes=1)

    assert chain.outcome(plan, before_end, start) == "fulfilled"
    assert chain.outcome(plan, end, end) == "late"
    assert chain.outcome(plan, None, start) == "pending"
    assert chain.outcome(plan, None, end) == "overdue"
    plan.status = "done"
    assert chain.outcome(plan, None, start) == "missed"


async def add_touch(database: Database, key: str, at: datetime, plan_id: int) -> None:
    async with transaction(database.writes) as session:
        customer = await harbor(session)
        session.add(
            Activity(
                external_key=key,
                customer_id=customer.id,
                plan_id=plan_id,
                channel="note",
                direction="outbound",
                occurred_at=at,
            )
        )


async def test_chain_outcome_from_touches(database: Database, demo: None) -> None:
    ana = await viewer_for(database, ANA.email)
    first = await set_plan(
        database, ana, chain.PlanEntry("keep_in_touch", "tomorrow"), MONDAY
    )
    plan = await plan_row(database, first)
    assert plan.due_start is not None and plan.due_end is not None
    # A touch before the window does not count; one after it makes the plan late.
    await add_touch(database, "note:early", plan.due_start - timedelta(hours=1), first)
    await add_touch(database, "note:late", plan.due_end + timedelta(hours=1), first)
    await complete(
        database, ana, first, chain.NextStep("none"), plan.due_end + timedelta(hours=2)
    )

    async with database.reads() as session:
        history = (await customer_plans(session, plan.customer_id)).history

    assert [item.outcome for item in history] == ["late"]


async def test_chain_late_webhook_attaches_to_old_plan(
    client: Any, database: Database
) -> None:
    ana = await viewer_for(database, ANA.email)
    opened = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
    completed = opened + timedelta(hours=2)
    first = await set_plan(
        database, ana, chain.PlanEntry("keep_in_touch", "later_today"), opened
    )
    second = await complete(
        database,
        ana,
        first,
        chain.NextStep("plan", chain.PlanEntry("nurture_need", "next_week")),
        completed,
    )
    during_first = new_sid("CA")
    during_second = new_sid("CA")

    # Both callbacks arrive after the second plan opened.
    for sid, at in (
        (during_first, opened + timedelta(hours=1)),
        (during_second, completed + timedelta(minutes=5)),
    ):
        params = call_status(
            sid,
            "completed",
            3,
            caller=ANA.phone,
            called=HARBOR.phone,
            duration=30,
            at=at,
        )
        response = await post_signed(client, "/twilio/voice/status", params)
        assert response.status == 204

    async with database.reads() as session:
        attached = dict(
            (
                await session.execute(
                    select(Activity.external_key, Activity.plan_id).where(
                        Activity.external_key.in_(
                            [f"call:{during_first}", f"call:{during_second}"]
                        )
                    )
                )
            ).all()
        )
    assert attached[f"call:{during_first}"] == first
    assert attached[f"call:{during_second}"] == second
    history = (await client_history(database))[0]
    assert history.outcome == "fulfilled"


async def client_history(database: Database) -> list[Any]:
    async with database.reads() as session:
        customer = await harbor(session)
        return (await customer_plans(session, customer.id)).history


@pytest.fixture
async def tokens(database: Database, demo: None) -> dict[str, str]:
    found = {}
    async with transaction(database.writes) as session:
        for email in (ANA.email, CHEN.email, OMAR, MIA):
            secret, _ = await create_token(session, email)
            found[email] = secret
    return found


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_api_plan_chain(client: Any, tokens: dict[str, str]) -> None:
    headers = bearer(tokens[ANA.email])
    created = await client.post(
        "/api/v1/customers/1/plans",
        json={"purpose": "uncover_opportunity", "window": "next_week", "note": "demo"},
        headers=headers,
    )
    assert created.status == 201, await created.text()
    plan = await created.json()
    again = await client.post(
        "/api/v1/customers/1/plans",
        json={"purpose": "keep_in_touch", "window": "tomorrow"},
        headers=headers,
    )
    done = await client.post(
        f"/api/v1/plans/{plan['id']}/complete",
        json={"next": "lost", "reason": "chose a rival"},
        headers=headers,
    )
    listed = await (
        await client.get("/api/v1/customers/1/plans", headers=headers)
    ).json()

    assert plan["purpose"] == "uncover_opportunity"
    assert plan["status"] == "open"
    assert again.status == 409
    assert (await again.json())["field"] == "plan"
    assert done.status == 200
    body = await done.json()
    assert body["customer_status"] == "lost"
    assert body["next_plan"] is None
    assert listed["open"] is None
    assert listed["broken_chain"] is False
    assert [item["outcome"] for item in listed["history"]] == ["missed"]


async def test_api_plan_bad_input(client: Any, tokens: dict[str, str]) -> None:
    headers = bearer(tokens[ANA.email])
    cases = [
        ({"window": "tomorrow"}, "purpose"),
        ({"purpose": "keep_in_touch"}, "window"),
        ({"purpose": "keep_in_touch", "due_at": "2026-12-01T10:00"}, "due_at"),
        ({"purpose": "keep_in_touch", "due_at": "tomorrow-ish"}, "due_at"),
        (
            {"purpose": "keep_in_touch", "window": "tomorrow", "owner_id": "x"},
            "owner_id",
        ),
    ]
    for body, field in cases:
        response = await client.post(
            "/api/v1/customers/1/plans", json=body, headers=headers
        )
        assert response.status == 400, body
        assert (await response.json())["field"] == field, body
    listed = await (
        await client.get("/api/v1/customers/1/plans", headers=headers)
    ).json()
    assert listed["open"] is None
    assert listed["broken_chain"] is True


async def test_api_plan_exact_time(client: Any, tokens: dict[str, str]) -> None:
    response = await client.post(
        "/api/v1/customers/1/plans",
        json={"purpose": "courtesy_greeting", "due_at": "2026-12-24T09:00:00+08:00"},
        headers=bearer(tokens[ANA.email]),
    )

    plan = await response.json()
    assert response.status == 201
    assert plan["window"] == "exact"
    assert datetime.fromisoformat(plan["due_start"]) == datetime(
        2026, 12, 24, 1, 0, tzinfo=UTC
    )
    assert datetime.fromisoformat(plan["due_end"]) == datetime(
        2026, 12, 24, 2, 0, tzinfo=UTC
    )


async def test_api_plan_access(client: Any, tokens: dict[str, str]) -> None:
    body = {"purpose": "keep_in_touch", "window": "tomorrow"}
    by_chen = await client.post(
        "/api/v1/customers/1/plans", json=body, headers=bearer(tokens[CHEN.email])
    )
    by_ops = await client.post(
        "/api/v1/customers/1/plans", json=body, headers=bearer(tokens[OMAR])
    )
    by_manager = await client.post(
        "/api/v1/customers/1/plans", json=body, headers=bearer(tokens[MIA])
    )
    plan = await by_manager.json()
    chen_completes = await client.post(
        f"/api/v1/plans/{plan['id']}/complete",
        json={"next": "none"},
        headers=bearer(tokens[CHEN.email]),
    )

    assert by_chen.status == 404
    assert by_ops.status == 403
    assert by_manager.status == 201
    # The manager's plan defaults to the customer's owner.
    assert plan["owner_id"] is not None
    assert chen_completes.status == 404


async def test_api_complete_bad_next(client: Any, tokens: dict[str, str]) -> None:
    headers = bearer(tokens[ANA.email])
    created = await client.post(
        "/api/v1/customers/1/plans",
        json={"purpose": "keep_in_touch", "window": "tomorrow"},
        headers=headers,
    )
    plan_id = (await created.json())["id"]
    cases = [
        ({}, "next"),
        ({"next": "maybe"}, "next"),
        ({"next": "plan"}, "plan"),
        ({"next": "won", "plan": {"purpose": "keep_in_touch"}}, "plan"),
        (
            {"next": "plan", "plan": {"purpose": "keep_in_touch", "window": "x"}},
            "window",
        ),
    ]
    for body, field in cases:
        response = await client.post(
            f"/api/v1/plans/{plan_id}/complete", json=body, headers=headers
        )
        assert response.status == 400, body
        assert (await response.json())["field"] == field, body
    listed = await (
        await client.get("/api/v1/customers/1/plans", headers=headers)
    ).json()
    assert listed["open"]["id"] == plan_id
