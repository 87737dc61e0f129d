"""The customer page: contact points, the open plan, plan history and playable calls."""

from __future__ import annotations

import html
from datetime import UTC, datetime, timedelta
from typing import Any

from conftest import ADMIN_EMAIL, login
from sqlalchemy import select, update
from test_access import add_call, add_recording

from capture.db import Database, transaction
from capture.demo_data import CUSTOMERS, REPS
from capture.models import Activity, Call, Plan
from capture.settings import Settings

ANA = REPS[0]
HARBOR = CUSTOMERS[0]


def section(page: str, name: str) -> str:
    start = page.index(f'<section id="{name}">')
    return page[start : page.index("</section>", start)]


async def add_plan(database: Database, **values: Any) -> int:
    async with transaction(database.writes) as session:
        plan = Plan(customer_id=1, **values)
        session.add(plan)
        await session.flush()
        return int(plan.id)


async def attach(database: Database, call_sid: str, plan_id: int) -> None:
    async with transaction(database.writes) as session:
        activity_id = select(Call.activity_id).where(Call.call_sid == call_sid)
        await session.execute(
            update(Activity)
            .where(Activity.id.in_(activity_id.scalar_subquery()))
            .values(plan_id=plan_id)
        )


async def test_customer_contact_points_formatted(client: Any) -> None:
    await login(client, ANA.email)

    page = await (await client.get("/customers/1")).text()

    assert "(415) 555-0201" in page
    assert f'href="tel:{HARBOR.phone}"' in page
    assert f'href="mailto:{HARBOR.email}"' in page


async def test_customer_open_plan_shown(client: Any, database: Database) -> None:
    start = datetime(2026, 12, 1, 17, 0, tzinfo=UTC)
    await add_plan(
        database,
        owner_id=1,
        purpose="uncover_opportunity",
        window="tomorrow",
        due_start=start,
        due_end=start + timedelta(hours=8),
        note="ask about the spring order",
    )
    await login(client, ANA.email)

    plan = section(await (await client.get("/customers/1")).text(), "next-step")

    assert "Uncover an opportunity" in plan
    assert "Tomorrow" in plan
    assert "2026-12-01 09:00" in plan
    assert "ask about the spring order" in plan
    assert ANA.name in plan


async def test_customer_plan_history_with_touches(
    client: Any, database: Database
) -> None:
    closed = datetime(2026, 11, 30, 20, 0, tzinfo=UTC)
    done = await add_plan(
        database,
        purpose="keep_in_touch",
        status="done",
        closed_at=closed,
        note="first check-in",
    )
    await add_plan(
        database,
        purpose="counter_competitor",
        status="cancelled",
        closed_at=closed + timedelta(days=1),
    )
    sid = await add_call(client, ANA.phone, HARBOR.phone)
    await attach(database, sid, done)
    await login(client, ANA.email)

    history = section(await (await client.get("/customers/1")).text(), "plan-history")

    kept = history.split("Keep in touch", 1)[1]
    assert "done" in kept
    assert "first check-in" in kept
    assert f'href="/calls/{sid}"' in kept
    assert "Counter a competitor · cancelled" in history
    assert history.index("Counter a competitor") < history.index("Keep in touch")
    assert "No touches were attached to this plan." in history


async def test_customer_empty_plans(client: Any) -> None:
    await login(client, ANA.email)

    page = await (await client.get("/customers/1")).text()

    assert "No open next step." in page
    assert "No closed plans yet." in page


async def test_customer_stream_play_button(
    client: Any, database: Database, settings: Settings
) -> None:
    sid = await add_call(client, ANA.phone, HARBOR.phone)
    unrecorded = await add_call(client, ANA.phone, HARBOR.phone)
    recording = await add_recording(database, settings, sid)

    await login(client, ADMIN_EMAIL)
    admin = html.unescape(await (await client.get("/customers/1")).text())
    client.session.cookie_jar.clear()
    await login(client, "omar@demo.touchline.test")
    ops = await (await client.get("/customers/1")).text()

    assert f'src="/recordings/{recording}.wav"' in admin
    assert admin.count("<audio") == 1
    assert f'href="/calls/{unrecorded}"' in admin
    assert f'href="/calls/{sid}"' in ops
    assert "<audio" not in ops
