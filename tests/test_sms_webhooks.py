"""SMS webhooks: inbound messages and status callbacks of outbound ones."""

from __future__ import annotations

from typing import Any

from conftest import post_signed
from sqlalchemy import select
from test_voice_webhooks import count
from twilio_params import inbound_sms, new_sid, sms_status

from capture.db import Database
from capture.demo_data import CUSTOMERS, ORGANISATION_NUMBER, REPS
from capture.models import Activity, Message, MessageEvent, User

ANA = REPS[0]
HARBOR = CUSTOMERS[0]


async def load_message(database: Database, sid: str) -> tuple[Message, Activity]:
    async with database.reads() as session:
        row = (
            await session.execute(
                select(Message, Activity)
                .join(Activity, Message.activity_id == Activity.id)
                .where(Message.message_sid == sid)
            )
        ).first()
    assert row is not None
    return row[0], row[1]


async def test_sms_inbound_lands_on_owner(client: Any, database: Database) -> None:
    sid = new_sid("SM")
    body = "Can you call me about the renewal? 🙂"

    response = await post_signed(
        client, "/twilio/sms", inbound_sms(sid, HARBOR.phone, ORGANISATION_NUMBER, body)
    )

    assert response.status == 200
    assert response.content_type == "text/xml"
    assert "<Response" in await response.text()
    message, activity = await load_message(database, sid)
    assert message.body == body
    assert message.status == "received"
    assert activity.direction == "inbound"
    assert activity.channel == "sms"
    assert activity.customer_id is not None
    assert activity.rep_id is not None


async def test_sms_inbound_duplicate_stored_once(
    client: Any, database: Database
) -> None:
    params = inbound_sms(
        new_sid("SM"), HARBOR.phone, ORGANISATION_NUMBER, "你好，下周再联系"
    )

    first = await post_signed(client, "/twilio/sms", params)
    second = await post_signed(client, "/twilio/sms", params)

    assert first.status == 200
    assert second.status == 200
    assert await count(database, Message) == 1
    assert await count(database, Activity) == 1


async def test_sms_status_only_moves_forward(client: Any, database: Database) -> None:
    sid = new_sid("SM")
    path = "/twilio/sms/status?rep=ana%40demo.touchline.test"
    order = ["queued", "delivered", "sent", "sent", "queued"]

    for status in order:
        params = sms_status(sid, status, ORGANISATION_NUMBER, HARBOR.phone)
        response = await post_signed(client, path, params)
        assert response.status == 204

    message, activity = await load_message(database, sid)
    assert message.status == "delivered"
    assert activity.direction == "outbound"
    assert await count(database, MessageEvent) == 3
    assert activity.rep_id is not None


async def test_sms_status_rep_from_signed_query(
    client: Any, database: Database
) -> None:
    sid = new_sid("SM")
    params = sms_status(sid, "sent", ORGANISATION_NUMBER, HARBOR.phone)
    path = "/twilio/sms/status?rep=ben%40demo.touchline.test"

    forged = await post_signed(
        client,
        "/twilio/sms/status?rep=ana%40demo.touchline.test",
        params,
        signed_url="https://crm.example.test" + path,
    )
    response = await post_signed(client, path, params)

    assert forged.status == 403
    assert response.status == 204
    _, activity = await load_message(database, sid)
    async with database.reads() as session:
        rep = await session.get(User, activity.rep_id)
    assert rep is not None
    assert rep.email == REPS[1].email


async def test_sms_unknown_status_rejected(client: Any, database: Database) -> None:
    params = sms_status(new_sid("SM"), "teleported", ORGANISATION_NUMBER, HARBOR.phone)

    response = await post_signed(client, "/twilio/sms/status", params)

    assert response.status == 400
    assert (await response.json())["field"] == "MessageStatus"
    assert await count(database, MessageEvent) == 0


async def test_sms_bad_sid_rejected(client: Any, database: Database) -> None:
    params = inbound_sms("XX123", HARBOR.phone, ORGANISATION_NUMBER, "hi")

    response = await post_signed(client, "/twilio/sms", params)

    assert response.status == 400
    assert (await response.json())["field"] == "MessageSid"
    assert await count(database, Message) == 0
