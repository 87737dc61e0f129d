"""Comments pinned to moments: replies, @mentions and next-step plans."""

from __future__ import annotations

import re
from typing import Any

from conftest import login
from review_data import Line, add_transcribed_call, bearer
from sqlalchemy import func, select

from capture.db import Database
from capture.demo_data import CUSTOMERS, REPS
from capture.models import CallComment, Plan
from capture.settings import Settings

ANA, BEN, CHEN = REPS
HARBOR = CUSTOMERS[0]
MANAGER = "mia@demo.touchline.test"
LINES = [Line("rep", 0, 5000, "Let us talk about the contract.")]


async def ana_call(client: Any, database: Database, settings: Settings) -> str:
    return await add_transcribed_call(
        client, database, settings, ANA.phone, HARBOR.phone, LINES
    )


async def comment(client: Any, call_sid: str, token: str, **fields: str) -> Any:
    data = {"csrf_token": token, "at": "0:00", "body": "", **fields}
    return await client.post(
        f"/calls/{call_sid}/comments", data=data, allow_redirects=False
    )


async def review_of(client: Any, database: Database, call_sid: str) -> Any:
    headers = await bearer(database, MANAGER)
    response = await client.get(f"/api/v1/calls/{call_sid}/review", headers=headers)
    assert response.status == 200
    return await response.json()


async def test_comment_reply_and_mention(
    client: Any, database: Database, settings: Settings
) -> None:
    call_sid = await ana_call(client, database, settings)
    token = await login(client, MANAGER)

    posted = await comment(
        client, call_sid, token, at="1:15", body="@ana ask about the budget here"
    )
    first_id = int(re.search(r"#comment-(\d+)$", posted.headers["Location"])[1])
    reply = await comment(
        client,
        call_sid,
        token,
        at="0:00",
        body="and @ada@demo.touchline.test too",
        parent=str(first_id),
    )
    found = await review_of(client, database, call_sid)
    await login(client, ANA.email)
    page = await (await client.get(f"/calls/{call_sid}")).text()

    assert posted.status == 303
    assert posted.headers["Location"].startswith(f"/calls/{call_sid}?t=75")
    assert reply.status == 303
    [thread] = found["comments"]
    assert thread["at_ms"] == 75_000
    assert thread["mentions"] == [ANA.email]
    assert thread["author"] == MANAGER
    [answer] = thread["replies"]
    assert answer["at_ms"] == 75_000
    assert answer["mentions"] == ["ada@demo.touchline.test"]
    assert "ask about the budget here" in page
    assert f'id="comment-{first_id}" data-at="75.0"' in page


async def test_comment_mention_rules(
    client: Any, database: Database, settings: Settings
) -> None:
    call_sid = await ana_call(client, database, settings)
    token = await login(client, MANAGER)

    unknown = await comment(client, call_sid, token, body="@nobody look")
    outsider = await comment(client, call_sid, token, body="@chen look")
    address = await comment(client, call_sid, token, body="mail ops@harbor.example")
    empty = await comment(client, call_sid, token, body="   ")
    late = await comment(client, call_sid, token, at="1:75", body="x")
    found = await review_of(client, database, call_sid)

    assert unknown.status == 400
    assert "@nobody matches no active user" in await unknown.text()
    assert outsider.status == 400
    assert "cannot see this call" in await outsider.text()
    assert address.status == 303
    assert empty.status == 400
    assert late.status == 400
    assert [c["mentions"] for c in found["comments"]] == [[]]


async def test_comment_sets_next_step_plan(
    client: Any, database: Database, settings: Settings
) -> None:
    call_sid = await ana_call(client, database, settings)
    token = await login(client, ANA.email)

    created = await comment(
        client,
        call_sid,
        token,
        at="0:03",
        body="they want to sign",
        plan_purpose="sign_and_collect",
        plan_note="send the contract",
    )
    changed = await comment(
        client,
        call_sid,
        token,
        at="0:04",
        body="wait, competitor first",
        plan_purpose="counter_competitor",
        plan_note="compare with Acme",
    )
    invalid = await comment(
        client, call_sid, token, body="x", plan_purpose="win_everything"
    )
    async with database.reads() as session:
        plans = list(await session.scalars(select(Plan)))
        comments = await session.scalar(select(func.count()).select_from(CallComment))

    assert created.status == 303
    assert changed.status == 303
    assert invalid.status == 400
    assert "plan_purpose" in await invalid.text()
    assert len(plans) == 1
    assert plans[0].status == "open"
    assert plans[0].purpose == "counter_competitor"
    assert plans[0].note == "compare with Acme"
    assert comments == 2


async def test_comment_hidden_call_not_found(
    client: Any, database: Database, settings: Settings
) -> None:
    call_sid = await ana_call(client, database, settings)
    token = await login(client, CHEN.email)

    response = await comment(client, call_sid, token, body="hello")

    assert response.status == 404
