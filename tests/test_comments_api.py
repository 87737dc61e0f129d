"""The JSON API of call comments: create, reply, edit and delete one's own."""

from __future__ import annotations

from typing import Any

from conftest import login
from review_data import Line, add_transcribed_call, bearer
from sqlalchemy import func, select

from capture.db import Database
from capture.demo_data import CUSTOMERS, REPS
from capture.models import CallComment, CommentMention, Plan
from capture.settings import Settings

ANA, BEN, CHEN = REPS
HARBOR = CUSTOMERS[0]
MANAGER = "mia@demo.touchline.test"
OPS = "omar@demo.touchline.test"
ADMIN = "ada@demo.touchline.test"
LINES = [Line("rep", 0, 5000, "Let us talk about the contract.")]


async def ana_call(client: Any, database: Database, settings: Settings) -> str:
    return await add_transcribed_call(
        client, database, settings, ANA.phone, HARBOR.phone, LINES
    )


def comments_url(call_sid: str, comment_id: int | str | None = None) -> str:
    url = f"/api/v1/calls/{call_sid}/comments"
    return url if comment_id is None else f"{url}/{comment_id}"


async def post(client: Any, headers: dict[str, str], url: str, body: Any) -> Any:
    return await client.post(url, json=body, headers=headers)


async def review_of(client: Any, database: Database, call_sid: str) -> Any:
    headers = await bearer(database, ADMIN)
    response = await client.get(f"/api/v1/calls/{call_sid}/review", headers=headers)
    assert response.status == 200
    return await response.json()


async def count_comments(database: Database) -> int:
    async with database.reads() as session:
        total = await session.scalar(select(func.count()).select_from(CallComment))
    return int(total or 0)


async def test_api_comment_reply_and_mention(
    client: Any, database: Database, settings: Settings
) -> None:
    call_sid = await ana_call(client, database, settings)
    manager = await bearer(database, MANAGER)
    ana = await bearer(database, ANA.email)

    first = await post(
        client,
        manager,
        comments_url(call_sid),
        {"at": "1:15", "body": "@ana ask about the budget here"},
    )
    created = await first.json()
    reply = await post(
        client,
        ana,
        comments_url(call_sid),
        {"parent_id": created["id"], "body": "will do, @mia"},
    )
    answered = await reply.json()
    nested = await post(
        client,
        manager,
        comments_url(call_sid),
        {"parent_id": answered["id"], "at_ms": 1, "body": "thanks"},
    )
    by_seconds = await post(
        client, ana, comments_url(call_sid), {"at": 2.5, "body": "greeting"}
    )
    found = await review_of(client, database, call_sid)

    assert first.status == 201
    assert created["at_ms"] == 75_000
    assert created["author"] == MANAGER
    assert created["mentions"] == [ANA.email]
    assert created["parent_id"] is None
    assert created["replies"] == []
    assert reply.status == 201
    assert answered["parent_id"] == created["id"]
    assert answered["at_ms"] == 75_000
    assert answered["mentions"] == [MANAGER]
    assert nested.status == 201
    assert (await nested.json())["parent_id"] == created["id"]
    assert by_seconds.status == 201
    assert (await by_seconds.json())["at_ms"] == 2500
    [greeting, thread] = found["comments"]
    assert greeting["body"] == "greeting"
    assert thread["id"] == created["id"]
    assert [r["body"] for r in thread["replies"]] == ["will do, @mia", "thanks"]


async def test_api_comment_bad_input_names_field(
    client: Any, database: Database, settings: Settings
) -> None:
    call_sid = await ana_call(client, database, settings)
    headers = await bearer(database, MANAGER)
    url = comments_url(call_sid)
    cases: list[tuple[str, Any]] = [
        ("body", {"at": "0:01"}),
        ("body", {"at": "0:01", "body": 5}),
        ("body", {"at": "0:01", "body": "   "}),
        ("body", {"at": "0:01", "body": "x" * 4001}),
        ("body", {"at": "0:01", "body": "bell\x07"}),
        ("body", {"at": "0:01", "body": "@nobody look"}),
        ("body", {"at": "0:01", "body": "@chen look"}),
        ("at", {"body": "no moment"}),
        ("at", {"at": "1:75", "body": "x"}),
        ("at", {"at": -1, "body": "x"}),
        ("at", {"at": True, "body": "x"}),
        ("at", {"at": [1], "body": "x"}),
        ("at", {"at": 90_000, "body": "x"}),
        ("at", {"at": 1e308, "body": "x"}),
        ("body", {"at": "1:15", "body": "\ud800"}),
        ("at_ms", {"at_ms": "75000", "body": "x"}),
        ("at_ms", {"at_ms": 1.5, "body": "x"}),
        ("at_ms", {"at_ms": 86_400_001, "body": "x"}),
        ("at_ms", {"at": "1:00", "at_ms": 60_000, "body": "x"}),
        ("parent_id", {"parent_id": "1", "body": "x"}),
        ("parent_id", {"parent_id": 999, "body": "x"}),
        ("parent_id", {"parent_id": 10**21, "body": "x"}),
        ("plan_purpose", {"at": 1, "body": "x", "plan_purpose": "win_everything"}),
        ("plan_purpose", {"at": 1, "body": "x", "plan_purpose": 3}),
        ("plan_note", {"at": 1, "body": "x", "plan_note": "no purpose"}),
        (
            "plan_note",
            {
                "at": 1,
                "body": "x",
                "plan_purpose": "keep_in_touch",
                "plan_note": "n" * 2001,
            },
        ),
        ("author", {"at": 1, "body": "x", "author": ADMIN}),
    ]

    for field, body in cases:
        response = await post(client, headers, url, body)
        error = await response.json()
        assert response.status == 400, (field, body)
        assert error["field"] == field, (field, body, error)
    not_object = await post(client, headers, url, ["body"])
    not_json = await client.post(
        url, data="{", headers={**headers, "Content-Type": "application/json"}
    )
    form = await client.post(url, data={"body": "x", "at": "1"}, headers=headers)

    assert not_object.status == 400
    assert (await not_object.json())["field"] == "body"
    assert not_json.status == 400
    assert (await not_json.json())["field"] == "body"
    assert form.status == 400
    assert (await form.json())["field"] == "Content-Type"
    assert await count_comments(database) == 0
    async with database.reads() as session:
        assert await session.scalar(select(func.count()).select_from(Plan)) == 0


async def test_api_comment_sets_and_changes_plan(
    client: Any, database: Database, settings: Settings
) -> None:
    call_sid = await ana_call(client, database, settings)
    headers = await bearer(database, ANA.email)

    created = await post(
        client,
        headers,
        comments_url(call_sid),
        {
            "at": 3,
            "body": "they want to sign",
            "plan_purpose": "sign_and_collect",
            "plan_note": "send the contract",
        },
    )
    comment = await created.json()
    changed = await client.patch(
        comments_url(call_sid, comment["id"]),
        json={"plan_purpose": "counter_competitor", "plan_note": "compare with Acme"},
        headers=headers,
    )
    unmatched = await add_transcribed_call(
        client, database, settings, ANA.phone, "anonymous", LINES
    )
    no_customer = await post(
        client,
        headers,
        comments_url(unmatched),
        {"at": 1, "body": "who was this?", "plan_purpose": "keep_in_touch"},
    )
    async with database.reads() as session:
        plans = list(await session.scalars(select(Plan)))

    assert created.status == 201
    assert comment["plan_id"] is not None
    assert changed.status == 200
    assert (await changed.json())["plan_id"] == comment["plan_id"]
    assert len(plans) == 1
    assert plans[0].id == comment["plan_id"]
    assert plans[0].status == "open"
    assert plans[0].purpose == "counter_competitor"
    assert plans[0].note == "compare with Acme"
    assert no_customer.status == 400
    assert (await no_customer.json())["field"] == "plan_purpose"


async def test_api_comment_edit_own(
    client: Any, database: Database, settings: Settings
) -> None:
    call_sid = await ana_call(client, database, settings)
    manager = await bearer(database, MANAGER)
    ana = await bearer(database, ANA.email)
    root = await (
        await post(client, manager, comments_url(call_sid), {"at": 10, "body": "@ana"})
    ).json()
    reply = await (
        await post(
            client, ana, comments_url(call_sid), {"parent_id": root["id"], "body": "ok"}
        )
    ).json()

    edited = await client.patch(
        comments_url(call_sid, root["id"]),
        json={"body": "@mia and @ada@demo.touchline.test", "at": "0:20"},
        headers=manager,
    )
    reply_moment = await client.patch(
        comments_url(call_sid, reply["id"]), json={"at_ms": 5}, headers=ana
    )
    reply_text = await client.patch(
        comments_url(call_sid, reply["id"]), json={"body": "done"}, headers=ana
    )
    not_author = await client.patch(
        comments_url(call_sid, root["id"]), json={"body": "mine now"}, headers=ana
    )
    empty = await client.patch(
        comments_url(call_sid, root["id"]), json={}, headers=manager
    )
    outsider = await client.patch(
        comments_url(call_sid, root["id"]), json={"body": "@chen"}, headers=manager
    )
    missing = await client.patch(
        comments_url(call_sid, 999), json={"body": "x"}, headers=manager
    )
    found = await review_of(client, database, call_sid)

    assert edited.status == 200
    body = await edited.json()
    assert body["body"] == "@mia and @ada@demo.touchline.test"
    assert body["mentions"] == [MANAGER, ADMIN]
    assert body["at_ms"] == 20_000
    assert body["replies"][0]["at_ms"] == 20_000
    assert reply_moment.status == 400
    assert (await reply_moment.json())["field"] == "at_ms"
    assert reply_text.status == 200
    assert not_author.status == 403
    assert (await not_author.json())["field"] == "comment_id"
    assert empty.status == 400
    assert (await empty.json())["field"] == "body"
    assert outsider.status == 400
    assert (await outsider.json())["field"] == "body"
    assert missing.status == 404
    [thread] = found["comments"]
    assert thread["body"] == "@mia and @ada@demo.touchline.test"
    assert thread["mentions"] == [MANAGER, ADMIN]
    assert [(r["body"], r["at_ms"]) for r in thread["replies"]] == [("done", 20_000)]


async def test_api_comment_delete_own(
    client: Any, database: Database, settings: Settings
) -> None:
    call_sid = await ana_call(client, database, settings)
    manager = await bearer(database, MANAGER)
    ana = await bearer(database, ANA.email)
    url = comments_url(call_sid)
    alone = await (await post(client, manager, url, {"at": 1, "body": "@ana"})).json()
    await post(client, manager, url, {"parent_id": alone["id"], "body": "self"})
    busy = await (await post(client, manager, url, {"at": 2, "body": "q"})).json()
    answer = await (
        await post(client, ana, url, {"parent_id": busy["id"], "body": "a"})
    ).json()

    not_author = await client.delete(comments_url(call_sid, busy["id"]), headers=ana)
    replied = await client.delete(comments_url(call_sid, busy["id"]), headers=manager)
    deleted = await client.delete(comments_url(call_sid, alone["id"]), headers=manager)
    again = await client.delete(comments_url(call_sid, alone["id"]), headers=manager)
    own_reply = await client.delete(comments_url(call_sid, answer["id"]), headers=ana)
    found = await review_of(client, database, call_sid)
    async with database.reads() as session:
        mentions = await session.scalar(
            select(func.count()).select_from(CommentMention)
        )

    assert not_author.status == 403
    assert replied.status == 409
    assert (await replied.json())["field"] == "comment_id"
    assert deleted.status == 204
    assert again.status == 404
    assert own_reply.status == 204
    assert [(c["id"], c["replies"]) for c in found["comments"]] == [(busy["id"], [])]
    assert mentions == 0
    assert await count_comments(database) == 1


async def test_api_comment_access(
    client: Any, database: Database, settings: Settings
) -> None:
    call_sid = await ana_call(client, database, settings)
    body = {"at": 1, "body": "hello"}
    ana = await bearer(database, ANA.email)
    created = await (await post(client, ana, comments_url(call_sid), body)).json()

    chen = await post(
        client, await bearer(database, CHEN.email), comments_url(call_sid), body
    )
    ops = await post(client, await bearer(database, OPS), comments_url(call_sid), body)
    unknown = await post(client, ana, comments_url("CA" + "f" * 32), body)
    chen_edit = await client.patch(
        comments_url(call_sid, created["id"]),
        json={"body": "x"},
        headers=await bearer(database, CHEN.email),
    )
    anonymous = await client.post(comments_url(call_sid), json=body)
    await login(client, MANAGER)
    session_only = await client.post(comments_url(call_sid), json=body)
    bad_id = await client.delete(comments_url(call_sid, "01"), headers=ana)

    assert chen.status == 404
    assert (await chen.json())["field"] == "call_sid"
    assert ops.status == 403
    assert unknown.status == 404
    assert chen_edit.status == 404
    assert anonymous.status == 401
    assert session_only.status == 401
    assert bad_id.status == 404
    assert await count_comments(database) == 1
