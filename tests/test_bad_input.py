"""Bad input gets a 4xx naming the field, and nothing is stored."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import pytest
from conftest import PUBLIC_URL, post_signed, sign
from multidict import MultiDict
from sqlalchemy import func, select
from twilio_params import call_status, inbound_sms, new_sid

from capture.accounts import create_token
from capture.db import Database, transaction
from capture.demo_data import CUSTOMERS, ORGANISATION_NUMBER, REPS
from capture.models import Activity, Call, CallEvent, Message

ANA = REPS[0]
HARBOR = CUSTOMERS[0]


def ringing(**changes: str) -> dict[str, str]:
    params = call_status(
        new_sid("CA"), "ringing", 1, caller=ANA.phone, called=HARBOR.phone
    )
    params.update(changes)
    return params


async def stored(database: Database) -> int:
    async with database.reads() as session:
        events = await session.scalar(select(func.count()).select_from(CallEvent))
        messages = await session.scalar(select(func.count()).select_from(Message))
        touches = await session.scalar(select(func.count()).select_from(Activity))
    return int(events or 0) + int(messages or 0) + int(touches or 0)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"SequenceNumber": "2147483648"}, "SequenceNumber"),
        ({"SequenceNumber": "1_0"}, "SequenceNumber"),
        ({"SequenceNumber": "\u0663"}, "SequenceNumber"),
        ({"SequenceNumber": "-1"}, "SequenceNumber"),
        ({"CallDuration": "9999999"}, "CallDuration"),
        ({"CallSid": "CA\u00e9\u00e9"}, "CallSid"),
        ({"CallSid": "CA123"}, "CallSid"),
        ({"From": "+1415\x00555"}, "From"),
        ({"Timestamp": "Fri, 31 Dec 9999 23:00:00 -1400"}, "Timestamp"),
        ({"Timestamp": "yesterday"}, "Timestamp"),
    ],
)
async def test_status_invalid_value_names_field(
    client: Any, database: Database, changes: dict[str, str], field: str
) -> None:
    response = await post_signed(client, "/twilio/voice/status", ringing(**changes))

    assert response.status == 400
    assert (await response.json())["field"] == field
    assert await stored(database) == 0


async def test_status_repeated_field_rejected(client: Any, database: Database) -> None:
    pairs = [*ringing().items(), ("CallStatus", "completed")]
    body = urlencode(pairs)
    signature = sign(PUBLIC_URL + "/twilio/voice/status", MultiDict(pairs))  # type: ignore[arg-type]

    response = await client.post(
        "/twilio/voice/status",
        data=body,
        headers={
            "X-Twilio-Signature": signature,
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )

    assert response.status == 400
    assert (await response.json())["field"] == "CallStatus"
    assert await stored(database) == 0


@pytest.mark.parametrize(
    ("body", "content_type", "field"),
    [
        (b"From=\xff&To=\xfe", "application/x-www-form-urlencoded", "body"),
        (b"From=x", "application/x-www-form-urlencoded; charset=bogus-xyz", "body"),
        (
            b"--b\r\nContent-Disposition: form-data; name=f\r\n\r\nx\r\n--b--\r\n",
            "multipart/form-data; boundary=b",
            "Content-Type",
        ),
        (b"<From>x</From>", "text/xml", "Content-Type"),
    ],
)
async def test_sms_undecodable_body_rejected(
    client: Any, database: Database, body: bytes, content_type: str, field: str
) -> None:
    response = await client.post(
        "/twilio/sms",
        data=body,
        headers={"Content-Type": content_type, "X-Twilio-Signature": "abc"},
    )

    assert response.status == 400
    assert (await response.json())["field"] == field
    assert await stored(database) == 0


async def test_sms_nul_in_body_rejected(client: Any, database: Database) -> None:
    params = inbound_sms(
        new_sid("SM"), HARBOR.phone, ORGANISATION_NUMBER, "hi\x00there"
    )

    response = await post_signed(client, "/twilio/sms", params)

    assert response.status == 400
    assert (await response.json())["field"] == "Body"
    assert await stored(database) == 0


async def test_status_no_answer_has_no_talk_time(
    client: Any, as_admin: str, database: Database
) -> None:
    sid = new_sid("CA")
    params = call_status(
        sid, "no-answer", 2, caller=ANA.phone, called=HARBOR.phone, duration=50
    )

    await post_signed(client, "/twilio/voice/status", params)

    detail = await (await client.get(f"/calls/{sid}")).text()
    assert "Talk time: 0 s" in detail


@pytest.fixture
async def token(database: Database, demo: None) -> str:
    async with transaction(database.writes) as session:
        secret, _ = await create_token(session, "ada@demo.touchline.test")
        return secret


@pytest.mark.parametrize(
    ("path", "status", "field"),
    [
        ("/api/v1/reports/reps?from=2026-01-01&to=9999-12-31", 400, "to"),
        ("/api/v1/exports/activities.csv?from=9999-12-31&to=9999-12-31", 400, "from"),
        ("/api/v1/customers/99999999999999999999999/activities", 404, "id"),
        ("/api/v1/customers/%D9%A3/activities", 404, "id"),
        ("/api/v1/customers?cursor=9223372036854775808", 400, "cursor"),
        ("/api/v1/customers?limit=%D9%A3", 400, "limit"),
        ("/api/v1/customers?limit=1_0", 400, "limit"),
        ("/api/v1/customers/1/activities?cursor=2026-01-01T00:00:00_1", 400, "cursor"),
        (
            "/api/v1/customers/1/activities?cursor=0001-01-01T00:00:00%2B14:00_1",
            400,
            "cursor",
        ),
        (
            "/api/v1/customers/1/activities?cursor=2026-01-01T00:00:00%2B00:00_99999999999999999999",
            400,
            "cursor",
        ),
    ],
)
async def test_api_out_of_range_names_field(
    client: Any, token: str, path: str, status: int, field: str
) -> None:
    response = await client.get(path, headers={"Authorization": f"Bearer {token}"})

    assert response.status == status
    assert (await response.json())["field"] == field


async def test_pages_huge_id_not_found(client: Any, as_admin: str) -> None:
    response = await client.get("/customers/99999999999999999999999")

    assert response.status == 404


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"Direction": "outbound-api-extra12"}, "Direction"),
        ({"SequenceNumber": "9" * 5000}, "SequenceNumber"),
        ({"From": "+1415\u2028555"}, "From"),
        ({"From": "+1415\x85555"}, "From"),
    ],
)
async def test_status_more_invalid_values(
    client: Any, database: Database, changes: dict[str, str], field: str
) -> None:
    response = await post_signed(client, "/twilio/voice/status", ringing(**changes))

    body = await response.json()
    assert response.status == 400
    assert body["field"] == field
    assert len(body["error"]) < 200
    assert await stored(database) == 0


@pytest.mark.parametrize(
    "sid", ["SM\n2026-12-04 CRITICAL forged", "SM/../../../etc/passwd", "SM" + "z" * 32]
)
async def test_sms_strict_message_sid(
    client: Any, database: Database, sid: str
) -> None:
    params = inbound_sms(sid, HARBOR.phone, ORGANISATION_NUMBER, "hello")

    response = await post_signed(client, "/twilio/sms", params)

    assert response.status == 400
    assert (await response.json())["field"] == "MessageSid"
    assert await stored(database) == 0


async def test_sms_body_over_twilio_limit(client: Any, database: Database) -> None:
    params = inbound_sms(new_sid("SM"), HARBOR.phone, ORGANISATION_NUMBER, "x" * 1601)

    response = await post_signed(client, "/twilio/sms", params)

    assert response.status == 400
    assert (await response.json())["field"] == "Body"


async def test_sms_broken_gzip_body_rejected(client: Any, database: Database) -> None:
    response = await client.post(
        "/twilio/sms",
        data=b"notgzip",
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Content-Encoding": "gzip",
        },
    )

    assert response.status == 400
    assert await stored(database) == 0


async def test_api_non_ascii_token_unauthorised(client: Any) -> None:
    response = await client.get(
        "/api/v1/customers", headers={"Authorization": "Bearer caf\u00e9\u00ff"}
    )

    assert response.status == 401


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/customers?q=a%00b", 400),
        ("/calls/%00", 404),
        ("/customers/2147483648", 404),
    ],
)
async def test_pages_control_characters_rejected(
    client: Any, as_admin: str, path: str, status: int
) -> None:
    response = await client.get(path)

    assert response.status == status


async def test_status_stale_final_keeps_talk_time(
    client: Any, database: Database
) -> None:
    sid = new_sid("CA")
    events = [
        call_status(sid, "initiated", 0, caller=ANA.phone, called=HARBOR.phone),
        call_status(sid, "in-progress", 2, caller=ANA.phone, called=HARBOR.phone),
        call_status(
            sid, "completed", 3, caller=ANA.phone, called=HARBOR.phone, duration=42
        ),
        call_status(sid, "busy", 1, caller=ANA.phone, called=HARBOR.phone, duration=0),
    ]

    for params in events:
        await post_signed(client, "/twilio/voice/status", params)

    async with database.reads() as session:
        call = await session.scalar(select(Call).where(Call.call_sid == sid))
    assert call is not None
    assert call.status == "completed"
    assert call.talk_seconds == 42
    assert call.answered_at is not None
    assert call.ended_at is not None
    assert call.ended_at > call.answered_at


@pytest.mark.parametrize("name", ["From", "To"])
async def test_status_party_with_line_break_rejected(
    client: Any, database: Database, name: str
) -> None:
    params = call_status(
        new_sid("CA"), "ringing", 1, caller=REPS[0].phone, called=HARBOR.phone
    )
    params[name] = params[name] + "\nX-Injected: 1"

    response = await post_signed(client, "/twilio/voice/status", params)

    assert response.status == 400
    assert (await response.json())["field"] == name
    assert await stored(database) == 0
