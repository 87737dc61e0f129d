"""The review queue: filters for long calls, tracker mentions and signing stage."""

from __future__ import annotations

from typing import Any

from conftest import csrf_of, login
from review_data import Line, add_transcribed_call, bearer
from sqlalchemy import select, update

from capture.db import Database, transaction
from capture.demo_data import CUSTOMERS, REPS
from capture.models import Call, CallReview, Customer, Plan
from capture.settings import Settings

ANA, BEN, CHEN = REPS
HARBOR, LUMEN, NORTHWIND = CUSTOMERS[:3]
MANAGER = "mia@demo.touchline.test"


async def set_talk_seconds(database: Database, call_sid: str, seconds: int) -> None:
    async with transaction(database.writes) as session:
        await session.execute(
            update(Call).where(Call.call_sid == call_sid).values(talk_seconds=seconds)
        )


async def open_signing_plan(database: Database, customer_name: str) -> None:
    async with transaction(database.writes) as session:
        customer_id = await session.scalar(
            select(Customer.id).where(Customer.name == customer_name)
        )
        session.add(Plan(customer_id=customer_id, purpose="sign_and_collect"))


def queued(page: str, *call_sids: str) -> list[bool]:
    return [f'data-call="{sid}"' in page for sid in call_sids]


async def test_review_queue_filters(
    client: Any, database: Database, settings: Settings
) -> None:
    await client.post(
        "/api/v1/trackers",
        json={"name": "Competitor", "phrases": ["Acme"]},
        headers=await bearer(database, MANAGER),
    )
    plain = [Line("rep", 0, 2000, "hello there")]
    long_call = await add_transcribed_call(
        client, database, settings, ANA.phone, HARBOR.phone, plain
    )
    acme_call = await add_transcribed_call(
        client,
        database,
        settings,
        ANA.phone,
        LUMEN.phone,
        [Line("customer", 0, 2000, "Acme offered less")],
    )
    signing_call = await add_transcribed_call(
        client, database, settings, BEN.phone, NORTHWIND.phone, plain
    )
    other_team = await add_transcribed_call(
        client, database, settings, CHEN.phone, CUSTOMERS[4].phone, plain
    )
    await set_talk_seconds(database, long_call, 900)
    await open_signing_plan(database, NORTHWIND.name)
    await login(client, MANAGER)
    calls = (long_call, acme_call, signing_call, other_team)

    everything = await (await client.get("/review")).text()
    long_only = await (await client.get("/review?min_minutes=10")).text()
    acme_only = await (await client.get("/review?tracker=1")).text()
    signing = await (await client.get("/review?signing=1")).text()

    assert queued(everything, *calls) == [True, True, True, False]
    assert queued(long_only, *calls) == [True, False, False, False]
    assert queued(acme_only, *calls) == [False, True, False, False]
    assert queued(signing, *calls) == [False, False, True, False]
    assert "Competitor: 1" in acme_only


async def test_review_score_and_reviewed_filter(
    client: Any, database: Database, settings: Settings
) -> None:
    call_sid = await add_transcribed_call(
        client,
        database,
        settings,
        ANA.phone,
        HARBOR.phone,
        [Line("rep", 0, 2000, "hello")],
    )
    token = await login(client, MANAGER)

    async def score(value: str, note: str = "") -> Any:
        data = {"csrf_token": token, "score": value, "note": note}
        return await client.post(
            f"/calls/{call_sid}/review", data=data, allow_redirects=False
        )

    first = await score("3", "rushed the close")
    second = await score("4", "good recovery")
    invalid = [await score(value) for value in ("0", "6", "x", "")]
    pending = await (await client.get("/review")).text()
    reviewed = await (await client.get("/review?reviewed=yes")).text()
    async with database.reads() as session:
        reviews = list(await session.scalars(select(CallReview)))

    assert first.status == 303
    assert second.status == 303
    assert [response.status for response in invalid] == [400, 400, 400, 400]
    assert queued(pending, call_sid) == [False]
    assert queued(reviewed, call_sid) == [True]
    assert [(r.score, r.note) for r in reviews] == [(4, "good recovery")]


async def test_review_queue_for_managers_only(
    client: Any, database: Database, settings: Settings
) -> None:
    call_sid = await add_transcribed_call(
        client,
        database,
        settings,
        ANA.phone,
        HARBOR.phone,
        [Line("rep", 0, 2000, "hello")],
    )
    await login(client, ANA.email)
    page = await (await client.get(f"/calls/{call_sid}")).text()

    queue = await client.get("/review")
    scored = await client.post(
        f"/calls/{call_sid}/review",
        data={"csrf_token": csrf_of(page), "score": "5"},
        allow_redirects=False,
    )

    assert queue.status == 403
    assert scored.status == 403
    assert "Mark reviewed" not in page
