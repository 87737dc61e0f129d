"""Call status callbacks against a real server on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from conftest import PUBLIC_URL, post_signed
from sqlalchemy import func, select
from twilio_params import CALL_START, call_status, new_sid

from capture.db import Database, transaction
from capture.demo_data import CUSTOMERS, ORGANISATION_NUMBER, REPS
from capture.models import Activity, Call, CallEvent, ContactPoint, Customer, Plan, User

ANA = REPS[0]
HARBOR = CUSTOMERS[0]


async def count(database: Database, model: Any) -> int:
    async with database.reads() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def load_call(database: Database, call_sid: str) -> Call:
    async with database.reads() as session:
        call = await session.scalar(select(Call).where(Call.call_sid == call_sid))
    assert call is not None
    return call


def outbound(call_sid: str, status: str, sequence: int, **extra: Any) -> dict[str, str]:
    return call_status(
        call_sid, status, sequence, caller=ANA.phone, called=HARBOR.phone, **extra
    )


async def test_status_bad_signature_rejected(client: Any, database: Database) -> None:
    params = outbound(new_sid("CA"), "ringing", 1)

    response = await post_signed(
        client, "/twilio/voice/status", params, token="not-the-auth-token"
    )

    assert response.status == 403
    assert await count(database, CallEvent) == 0
    assert await count(database, Activity) == 0


async def test_status_missing_signature_rejected(
    client: Any, database: Database
) -> None:
    response = await client.post(
        "/twilio/voice/status", data=outbound(new_sid("CA"), "ringing", 1)
    )

    assert response.status == 403
    assert await count(database, CallEvent) == 0


async def test_status_signed_for_internal_url_rejected(
    client: Any, database: Database
) -> None:
    # Behind a proxy Twilio signs the public URL. A signature over the URL of
    # the server's own socket (scheme http, loopback host and port) must fail.
    internal = str(client.make_url("/twilio/voice/status"))
    params = outbound(new_sid("CA"), "ringing", 1)

    response = await post_signed(
        client, "/twilio/voice/status", params, signed_url=internal
    )

    assert response.status == 403
    assert await count(database, CallEvent) == 0


async def test_status_wrong_scheme_or_port_rejected(
    client: Any, database: Database
) -> None:
    params = outbound(new_sid("CA"), "ringing", 1)
    wrong = [
        "http://crm.example.test/twilio/voice/status",
        "https://crm.example.test:8443/twilio/voice/status",
    ]

    statuses = [
        (
            await post_signed(client, "/twilio/voice/status", params, signed_url=url)
        ).status
        for url in wrong
    ]

    assert statuses == [403, 403]
    assert await count(database, CallEvent) == 0


async def test_status_query_string_is_signed(client: Any, database: Database) -> None:
    params = outbound(new_sid("CA"), "ringing", 1)
    path = "/twilio/voice/status?leg=rep&x=a%20b"

    accepted = await post_signed(client, path, params)
    tampered = await post_signed(
        client, path, params, signed_url=PUBLIC_URL + "/twilio/voice/status?leg=rep"
    )

    assert accepted.status == 204
    assert tampered.status == 403


async def test_status_creates_touch_for_known_customer(
    client: Any, database: Database
) -> None:
    sid = new_sid("CA")

    response = await post_signed(
        client, "/twilio/voice/status", outbound(sid, "initiated", 0)
    )

    assert response.status == 204
    async with database.reads() as session:
        activity = await session.scalar(
            select(Activity).where(Activity.external_key == f"call:{sid}")
        )
        customer = (
            await session.get(Customer, activity.customer_id) if activity else None
        )
    assert activity is not None
    assert activity.channel == "call"
    assert activity.direction == "outbound"
    assert customer is not None
    assert customer.name == HARBOR.name


async def test_status_duplicate_changes_nothing(
    client: Any, database: Database
) -> None:
    sid = new_sid("CA")
    completed = outbound(sid, "completed", 3, duration=42)
    await post_signed(client, "/twilio/voice/status", outbound(sid, "ringing", 1))
    await post_signed(client, "/twilio/voice/status", completed)

    again = await post_signed(client, "/twilio/voice/status", completed)

    assert again.status == 204
    assert await count(database, CallEvent) == 2
    assert await count(database, Activity) == 1
    call = await load_call(database, sid)
    assert call.status == "completed"
    assert call.talk_seconds == 42


async def test_status_without_sequence_follows_status(
    client: Any, database: Database
) -> None:
    sid = new_sid("CA")
    events = [outbound(sid, "ringing", 0), outbound(sid, "completed", 0, duration=33)]
    for params in events:
        del params["SequenceNumber"]

    for params in events:
        response = await post_signed(client, "/twilio/voice/status", params)
        assert response.status == 204

    call = await load_call(database, sid)
    assert call.status == "completed"
    assert call.talk_seconds == 33
    assert await count(database, CallEvent) == 2


async def test_status_without_timestamp_uses_now(
    client: Any, database: Database
) -> None:
    sid = new_sid("CA")
    params = outbound(sid, "ringing", 1)
    del params["Timestamp"]
    before = datetime.now(UTC)

    response = await post_signed(client, "/twilio/voice/status", params)

    after = datetime.now(UTC)
    async with database.reads() as session:
        event = await session.scalar(select(CallEvent).where(CallEvent.call_sid == sid))
    assert response.status == 204
    assert event is not None
    assert before <= event.occurred_at <= after


async def test_status_out_of_order_follows_sequence(
    client: Any, database: Database
) -> None:
    sid = new_sid("CA")
    events = [
        outbound(sid, "completed", 3, duration=95),
        outbound(sid, "ringing", 1),
        outbound(sid, "in-progress", 2),
        outbound(sid, "initiated", 0),
    ]

    for params in events:
        response = await post_signed(client, "/twilio/voice/status", params)
        assert response.status == 204

    call = await load_call(database, sid)
    assert call.status == "completed"
    assert call.last_sequence == 3
    assert call.talk_seconds == 95
    assert call.answered_at is not None
    assert call.started_at is not None
    assert call.started_at < call.answered_at < call.ended_at
    async with database.reads() as session:
        activity = await session.get(Activity, call.activity_id)
    assert activity is not None
    assert activity.occurred_at == call.started_at


async def test_status_talk_time_ignores_billed_duration(
    client: Any, database: Database
) -> None:
    sid = new_sid("CA")
    params = outbound(sid, "completed", 3, duration=61)

    await post_signed(client, "/twilio/voice/status", params)

    call = await load_call(database, sid)
    assert params["Duration"] == "2"
    assert call.talk_seconds == 61


async def test_status_unknown_caller_becomes_lead(
    client: Any, database: Database
) -> None:
    sid = new_sid("CA")
    parent = new_sid("CA")
    stranger = "(415) 555-0999"
    params = call_status(
        sid,
        "ringing",
        1,
        caller=stranger,
        called=ANA.phone,
        direction="outbound-dial",
        parent=parent,
    )

    response = await post_signed(client, "/twilio/voice/status", params)

    assert response.status == 204
    async with database.reads() as session:
        point = await session.scalar(
            select(ContactPoint).where(ContactPoint.value == "+14155550999")
        )
        lead = await session.get(Customer, point.customer_id) if point else None
        activity = await session.scalar(
            select(Activity).where(Activity.external_key == f"call:{parent}")
        )
    assert lead is not None
    assert lead.status == "lead"
    assert activity is not None
    assert activity.customer_id == lead.id
    assert activity.direction == "inbound"
    assert lead.owner_id == activity.rep_id
    assert activity.rep_id is not None


async def test_status_withheld_caller_not_a_customer(
    client: Any, database: Database
) -> None:
    sid = new_sid("CA")
    parent = new_sid("CA")
    customers_before = await count(database, Customer)
    params = call_status(
        sid,
        "ringing",
        1,
        caller="+266696687",
        called=ANA.phone,
        direction="outbound-dial",
        parent=parent,
    )

    response = await post_signed(client, "/twilio/voice/status", params)

    assert response.status == 204
    assert await count(database, Customer) == customers_before
    async with database.reads() as session:
        activity = await session.scalar(
            select(Activity).where(Activity.external_key == f"call:{parent}")
        )
    assert activity is not None
    assert activity.customer_id is None
    assert activity.rep_id is not None


async def test_status_company_number_never_customer(
    client: Any, database: Database
) -> None:
    sid = new_sid("CA")
    customers_before = await count(database, Customer)
    params = call_status(
        sid, "ringing", 1, caller=ANA.phone, called=ORGANISATION_NUMBER
    )

    await post_signed(client, "/twilio/voice/status", params)

    assert await count(database, Customer) == customers_before


async def test_status_invalid_field_named(client: Any, database: Database) -> None:
    params = outbound(new_sid("CA"), "ringing", 1)
    params["SequenceNumber"] = "soon"

    response = await post_signed(client, "/twilio/voice/status", params)

    assert response.status == 400
    body = await response.json()
    assert body["field"] == "SequenceNumber"
    assert await count(database, CallEvent) == 0


async def test_status_unknown_call_status_rejected(
    client: Any, database: Database
) -> None:
    params = outbound(new_sid("CA"), "exploded", 1)

    response = await post_signed(client, "/twilio/voice/status", params)

    assert response.status == 400
    assert (await response.json())["field"] == "CallStatus"


async def activity_of(database: Database, call_sid: str) -> Activity:
    async with database.reads() as session:
        activity = await session.scalar(
            select(Activity).where(Activity.external_key == f"call:{call_sid}")
        )
    assert activity is not None
    return activity


async def test_status_client_identity_is_rep(client: Any, database: Database) -> None:
    chen = REPS[2]
    sid = new_sid("CA")
    params = call_status(
        sid, "ringing", 1, caller=f"client:{chen.client_identity}", called=HARBOR.phone
    )

    await post_signed(client, "/twilio/voice/status", params)

    activity = await activity_of(database, sid)
    async with database.reads() as session:
        rep = await session.get(User, activity.rep_id)
    assert rep is not None
    assert rep.email == chen.email
    assert activity.direction == "outbound"
    assert activity.customer_id == 1


async def test_status_national_format_matches_customer(
    client: Any, database: Database
) -> None:
    sid = new_sid("CA")
    params = call_status(sid, "ringing", 1, caller=ANA.phone, called="(415) 555-0201")
    customers_before = await count(database, Customer)

    await post_signed(client, "/twilio/voice/status", params)

    activity = await activity_of(database, sid)
    assert activity.customer_id == 1
    assert await count(database, Customer) == customers_before


async def test_status_sip_party_not_a_customer(client: Any, database: Database) -> None:
    sid = new_sid("CA")
    parent = new_sid("CA")
    params = call_status(
        sid,
        "ringing",
        1,
        caller="sip:desk@pbx.example.com",
        called=ANA.phone,
        direction="outbound-dial",
        parent=parent,
    )
    customers_before = await count(database, Customer)

    response = await post_signed(client, "/twilio/voice/status", params)

    assert response.status == 204
    activity = await activity_of(database, parent)
    assert activity.customer_id is None
    assert await count(database, Customer) == customers_before


async def add_plan(database: Database, created_at: datetime) -> int:
    async with transaction(database.writes) as session:
        plan = Plan(
            customer_id=1,
            purpose="keep_in_touch",
            window="this_week",
            created_at=created_at,
        )
        session.add(plan)
        await session.flush()
        return plan.id


async def test_status_touch_attaches_to_open_plan(
    client: Any, database: Database
) -> None:
    plan_id = await add_plan(database, CALL_START - timedelta(days=1))
    sid = new_sid("CA")

    await post_signed(client, "/twilio/voice/status", outbound(sid, "ringing", 1))

    activity = await activity_of(database, sid)
    assert activity.plan_id == plan_id


async def test_status_touch_before_plan_not_attached(
    client: Any, database: Database
) -> None:
    await add_plan(database, CALL_START + timedelta(hours=1))
    sid = new_sid("CA")

    await post_signed(client, "/twilio/voice/status", outbound(sid, "ringing", 1))

    activity = await activity_of(database, sid)
    assert activity.plan_id is None


async def test_status_late_first_event_moves_touch(
    client: Any, database: Database
) -> None:
    # The plan opened between the call's first and second events.
    plan_id = await add_plan(database, CALL_START + timedelta(seconds=5))
    sid = new_sid("CA")

    await post_signed(client, "/twilio/voice/status", outbound(sid, "ringing", 1))
    attached_first = (await activity_of(database, sid)).plan_id
    await post_signed(client, "/twilio/voice/status", outbound(sid, "initiated", 0))

    activity = await activity_of(database, sid)
    assert attached_first == plan_id
    assert activity.occurred_at == CALL_START
    assert activity.plan_id is None


async def test_status_number_of_two_customers_unmatched(
    client: Any, database: Database
) -> None:
    # The front desk number is on two customers' records, so the call's
    # customer is unknown and it waits in the unmatched inbox.
    shared = "+14155550777"
    async with transaction(database.writes) as session:
        for name in ("Pier 9 Logistics", "Pier 9 Storage"):
            customer = Customer(name=name, status="active")
            customer.contact_points.append(ContactPoint(kind="phone", value=shared))
            session.add(customer)
    customers_before = await count(database, Customer)
    sid = new_sid("CA")
    params = call_status(
        sid,
        "ringing",
        1,
        caller="(415) 555-0777",
        called=ANA.phone,
        direction="inbound",
    )

    response = await post_signed(client, "/twilio/voice/status", params)

    assert response.status == 204
    assert await count(database, Customer) == customers_before
    async with database.reads() as session:
        activity = await session.scalar(
            select(Activity).where(Activity.external_key == f"call:{sid}")
        )
    assert activity is not None
    assert activity.customer_id is None
    assert activity.rep_id is not None
