"""The webhook ledger: a row per request, search, replay and who may see it."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from conftest import AUTH_TOKEN, login, post_signed, sign
from sqlalchemy import func, select, text, update
from test_voice_webhooks import count
from twilio_params import call_status, inbound_sms, new_sid, sms_status
from yarl import URL

from capture import ledger
from capture.accounts import create_token
from capture.db import Database, transaction
from capture.demo_data import CUSTOMERS, ORGANISATION_NUMBER, REPS
from capture.models import Activity, AuditEvent, Message, WebhookRequest, utcnow
from capture.retention import apply_retention
from capture.settings import Settings
from web.keys import SETTINGS

ANA = REPS[0]
HARBOR = CUSTOMERS[0]
OPS_EMAIL = "omar@demo.touchline.test"
MANAGER_EMAIL = "mia@demo.touchline.test"
ADMIN_EMAIL = "ada@demo.touchline.test"


async def bearer(database: Database, email: str) -> dict[str, str]:
    async with transaction(database.writes) as session:
        secret, _ = await create_token(session, email)
    return {"Authorization": f"Bearer {secret}"}


async def ledger_rows(database: Database) -> list[WebhookRequest]:
    async with database.reads() as session:
        rows = await session.scalars(select(WebhookRequest).order_by(WebhookRequest.id))
        return list(rows)


async def activity_of(database: Database, message_sid: str) -> int:
    async with database.reads() as session:
        found = await session.scalar(
            select(Message.activity_id).where(Message.message_sid == message_sid)
        )
    assert found is not None
    return int(found)


class RejectMessages:
    """A database trigger that makes storing one message fail, on both databases."""

    def __init__(self, database: Database, message_sid: str) -> None:
        self.database = database
        self.message_sid = message_sid

    async def __aenter__(self) -> RejectMessages:
        async with transaction(self.database.writes) as session:
            if session.bind.dialect.name == "sqlite":
                await session.execute(
                    text(
                        "CREATE TRIGGER reject_message BEFORE INSERT ON message_events "
                        f"WHEN NEW.message_sid = '{self.message_sid}' "
                        "BEGIN SELECT RAISE(ABORT, 'message rejected by trigger'); END"
                    )
                )
            else:
                await session.execute(
                    text(
                        "CREATE OR REPLACE FUNCTION reject_message() RETURNS trigger "
                        "AS $$ BEGIN RAISE EXCEPTION 'message rejected by trigger'; "
                        "END $$ LANGUAGE plpgsql"
                    )
                )
                await session.execute(
                    text(
                        "CREATE TRIGGER reject_message BEFORE INSERT ON message_events "
                        "FOR EACH ROW WHEN "
                        f"(NEW.message_sid = '{self.message_sid}') "
                        "EXECUTE FUNCTION reject_message()"
                    )
                )
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.lift()

    async def lift(self) -> None:
        async with transaction(self.database.writes) as session:
            if session.bind.dialect.name == "sqlite":
                await session.execute(text("DROP TRIGGER IF EXISTS reject_message"))
            else:
                await session.execute(
                    text("DROP TRIGGER IF EXISTS reject_message ON message_events")
                )


async def test_ledger_row_per_outcome(client: Any, database: Database) -> None:
    sid = new_sid("SM")
    params = inbound_sms(sid, HARBOR.phone, ORGANISATION_NUMBER, "hello")
    status_path = "/twilio/sms/status?rep=ana%40demo.touchline.test"

    created = await post_signed(client, "/twilio/sms", params)
    duplicate = await post_signed(client, "/twilio/sms", params)
    stale = sms_status(sid, "sent", ORGANISATION_NUMBER, HARBOR.phone)
    read = sms_status(sid, "read", ORGANISATION_NUMBER, HARBOR.phone)
    await post_signed(client, status_path, stale)
    await post_signed(client, status_path, read)
    forbidden = await post_signed(client, "/twilio/sms", params, token="wrong-token")
    invalid_params = dict(params, NumSegments="many")
    invalid = await post_signed(client, "/twilio/sms", invalid_params)
    unsigned = await client.post("/twilio/sms", data=params)

    assert created.status == 200
    assert duplicate.status == 200
    assert forbidden.status == 403
    assert invalid.status == 400
    assert unsigned.status == 403
    rows = await ledger_rows(database)
    outcomes = [(row.path, row.outcome, row.status_code) for row in rows]
    assert outcomes == [
        ("/twilio/sms", "created", 200),
        ("/twilio/sms", "duplicate", 200),
        ("/twilio/sms/status", "stale", 204),
        ("/twilio/sms/status", "updated", 204),
        ("/twilio/sms", "forbidden", 403),
        ("/twilio/sms", "invalid", 400),
        ("/twilio/sms", "forbidden", 403),
    ]
    first, _, stale_row, _, bad_signature, bad_field, missing = rows
    assert first.activity_id == await activity_of(database, sid)
    assert first.signature == "valid"
    assert first.sid == sid
    assert first.body is None
    assert first.headers is None
    assert stale_row.query == "rep=ana%40demo.touchline.test"
    assert bad_signature.signature == "invalid"
    assert bad_signature.sid == sid
    assert missing.signature == "missing"
    assert bad_field.body is None
    assert "NumSegments" in (bad_field.error or "")


async def test_ledger_forbidden_keeps_no_signature(
    client: Any, database: Database
) -> None:
    params = inbound_sms(new_sid("SM"), HARBOR.phone, ORGANISATION_NUMBER, "x" * 1600)
    params["Padding"] = "y" * 3000
    signature = sign("https://crm.example.test/twilio/sms", params, "wrong-token")
    target = URL(str(client.make_url("/twilio/sms")), encoded=True)

    response = await client.session.post(
        target, data=params, headers={"X-Twilio-Signature": signature}
    )

    assert response.status == 403
    [row] = await ledger_rows(database)
    assert row.outcome == "forbidden"
    assert row.body is not None
    assert len(row.body) == ledger.FORBIDDEN_BODY_BYTES
    headers = json.loads(row.headers or "{}")
    assert signature not in (row.headers or "")
    assert headers["X-Twilio-Signature"].startswith("sha256:")
    assert headers["Content-Type"] == "application/x-www-form-urlencoded"


async def test_ledger_failed_store_replayed(client: Any, database: Database) -> None:
    sid = new_sid("SM")
    params = inbound_sms(sid, HARBOR.phone, ORGANISATION_NUMBER, "call me")
    async with RejectMessages(database, sid):
        failed = await post_signed(client, "/twilio/sms", params)
    assert failed.status == 503
    assert await count(database, Message) == 0
    [row] = await ledger_rows(database)
    assert row.outcome == "failed"
    assert row.status_code == 503
    assert row.sid == sid
    assert "message rejected by trigger" in (row.error or "")
    assert row.body is not None
    assert "call+me" in row.body
    assert AUTH_TOKEN not in (row.headers or "")

    token = await login(client, OPS_EMAIL)
    page = await (await client.get("/admin/webhooks?outcome=failed")).text()
    assert f'action="/admin/webhooks/{row.id}/replay"' in page
    replayed = await client.post(
        f"/admin/webhooks/{row.id}/replay",
        data={"csrf_token": token},
        allow_redirects=False,
    )

    assert replayed.status == 303
    assert replayed.headers["Location"] == f"/admin/webhooks?sid={sid}"
    assert await count(database, Message) == 1
    rows = await ledger_rows(database)
    assert len(rows) == 2
    replay = rows[1]
    assert replay.replay_of == row.id
    assert replay.outcome == "created"
    assert replay.signature == "unchecked"
    assert replay.activity_id == await activity_of(database, sid)
    async with database.reads() as session:
        audited = await session.scalar(
            select(func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.action == "webhook_replayed")
        )
    assert audited == 1
    after = await (await client.get(f"/admin/webhooks?sid={sid}")).text()
    assert f'action="/admin/webhooks/{row.id}/replay"' not in after


async def test_ledger_replay_fails_again(client: Any, database: Database) -> None:
    sid = new_sid("SM")
    params = inbound_sms(sid, HARBOR.phone, ORGANISATION_NUMBER, "again")
    headers = await bearer(database, ADMIN_EMAIL)
    async with RejectMessages(database, sid):
        assert (await post_signed(client, "/twilio/sms", params)).status == 503
        [row] = await ledger_rows(database)
        response = await client.post(
            f"/api/v1/webhooks/{row.id}/replay", headers=headers
        )

    assert response.status == 200
    body = await response.json()
    assert body["outcome"] == "failed"
    assert body["status"] == 503
    assert body["replay_of"] == row.id
    assert await count(database, Message) == 0


async def test_ledger_replay_rules(client: Any, database: Database) -> None:
    sid = new_sid("SM")
    params = inbound_sms(sid, HARBOR.phone, ORGANISATION_NUMBER, "hi")
    assert (await post_signed(client, "/twilio/sms", params)).status == 200
    [row] = await ledger_rows(database)
    headers = await bearer(database, OPS_EMAIL)
    await login(client, OPS_EMAIL)

    stored = await client.post(f"/api/v1/webhooks/{row.id}/replay", headers=headers)
    missing = await client.post("/api/v1/webhooks/999999/replay", headers=headers)
    async with transaction(database.writes) as session:
        await session.execute(update(WebhookRequest).values(outcome="failed", body=""))
    no_token = await client.post(f"/admin/webhooks/{row.id}/replay", data={})

    assert stored.status == 409
    assert (await stored.json())["field"] == "id"
    assert missing.status == 404
    assert no_token.status == 403
    assert len(await ledger_rows(database)) == 1


async def test_ledger_search_filters(client: Any, database: Database) -> None:
    first = new_sid("SM")
    second = new_sid("SM")
    call_sid = new_sid("CA")
    await post_signed(
        client,
        "/twilio/sms",
        inbound_sms(first, HARBOR.phone, ORGANISATION_NUMBER, "a"),
    )
    await post_signed(
        client,
        "/twilio/sms",
        inbound_sms(second, HARBOR.phone, ORGANISATION_NUMBER, "b"),
        token="wrong-token",
    )
    await post_signed(
        client,
        "/twilio/voice/status",
        call_status(call_sid, "ringing", 1, caller=ANA.phone, called=HARBOR.phone),
    )
    async with transaction(database.writes) as session:
        await session.execute(
            update(WebhookRequest)
            .where(WebhookRequest.sid == call_sid)
            .values(received_at=utcnow() - timedelta(days=3))
        )
    headers = await bearer(database, OPS_EMAIL)
    await login(client, OPS_EMAIL)

    async def sids(query: str) -> list[str | None]:
        response = await client.get(f"/api/v1/webhooks?{query}", headers=headers)
        assert response.status == 200, await response.text()
        return [item["sid"] for item in (await response.json())["items"]]

    today = utcnow().astimezone(client.app[SETTINGS].zone).date()
    earlier = today - timedelta(days=3)
    assert await sids("") == [call_sid, second, first]
    assert await sids("path=/twilio/voice/status") == [call_sid]
    assert await sids("outcome=forbidden") == [second]
    assert await sids(f"sid={first}") == [first]
    assert await sids(f"q={second[-12:]}") == [second]
    assert await sids(f"from={today}") == [second, first]
    assert await sids(f"to={earlier}") == [call_sid]
    assert await sids("limit=1") == [call_sid]
    page = await (await client.get("/api/v1/webhooks?limit=2", headers=headers)).json()
    assert page["next"] is not None
    older = await sids(f"limit=2&cursor={page['next']}")
    assert older == [first]

    bad_outcome = await client.get("/api/v1/webhooks?outcome=lost", headers=headers)
    bad_date = await client.get("/api/v1/webhooks?from=yesterday", headers=headers)
    assert bad_outcome.status == 400
    assert (await bad_outcome.json())["field"] == "outcome"
    assert bad_date.status == 400
    assert (await bad_date.json())["field"] == "from"
    html = await (await client.get("/admin/webhooks?outcome=forbidden")).text()
    assert second in html
    assert first not in html


async def test_ledger_hidden_from_reps(client: Any, database: Database) -> None:
    await post_signed(
        client,
        "/twilio/sms",
        inbound_sms(new_sid("SM"), HARBOR.phone, ORGANISATION_NUMBER, "x"),
    )
    [row] = await ledger_rows(database)

    for email in (ANA.email, MANAGER_EMAIL):
        token = await login(client, email)
        page = await client.get("/admin/webhooks")
        home = await (await client.get("/customers")).text()
        replay = await client.post(
            f"/admin/webhooks/{row.id}/replay", data={"csrf_token": token}
        )
        api = await client.get(
            "/api/v1/webhooks", headers=await bearer(database, email)
        )
        assert page.status == 403, email
        assert api.status == 403, email
        assert replay.status == 403, email
        assert 'href="/admin/webhooks"' not in home
        await client.post("/logout", data={"csrf_token": token})
    anonymous = await client.get("/admin/webhooks", allow_redirects=False)
    assert anonymous.status in (302, 303)
    await login(client, OPS_EMAIL)
    assert 'href="/admin/webhooks"' in await (await client.get("/customers")).text()


async def test_ledger_pruned_by_retention(
    client: Any, database: Database, settings: Settings
) -> None:
    for _ in range(2):
        await post_signed(
            client,
            "/twilio/sms",
            inbound_sms(new_sid("SM"), HARBOR.phone, ORGANISATION_NUMBER, "x"),
        )
    old, recent = await ledger_rows(database)
    async with transaction(database.writes) as session:
        await session.execute(
            update(WebhookRequest)
            .where(WebhookRequest.id == old.id)
            .values(received_at=utcnow() - timedelta(days=40))
        )

    result = await apply_retention(
        database.writes, days=30, recordings_dir=settings.recordings_dir
    )

    assert result.webhook_requests == 1
    assert [row.id for row in await ledger_rows(database)] == [recent.id]
    assert await count(database, Activity) == 2


async def test_ledger_undecodable_body_invalid(client: Any, database: Database) -> None:
    response = await client.post(
        "/twilio/sms?source=test",
        data=b"notgzip",
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Content-Encoding": "gzip",
        },
    )

    assert response.status == 400
    [row] = await ledger_rows(database)
    assert row.outcome == "invalid"
    assert row.status_code == 400
    assert row.query == "source=test"
    assert row.sid is None
    assert row.body is None
