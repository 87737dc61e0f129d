"""Inbound call routing: TwiML for each stage, fallbacks and missed calls."""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from conftest import PUBLIC_URL, login, make_settings, post_signed, start_client
from sqlalchemy import func, select
from twilio_params import CALL_START, call_status, new_sid

from capture.db import Database, transaction
from capture.demo import load_demo
from capture.demo_data import CUSTOMERS, ORGANISATION_NUMBER, REPS
from capture.models import Activity, Call, ContactPoint, Customer, User
from web.app import create_app
from web.keys import DATABASE

ANA, BEN, CHEN = REPS
HARBOR = CUSTOMERS[0]
INBOUND = "/twilio/voice/inbound"
NEXT = "/twilio/voice/inbound/next"
DISCLOSURE = "This call is recorded for training."
FALLBACK = "+14155550999"


@pytest.fixture
def overrides() -> dict[str, Any]:
    return {}


@pytest.fixture
async def routing_client(
    aiohttp_client: Any,
    tmp_path: Path,
    database_url: str,
    password_hash: str,
    overrides: dict[str, Any],
) -> Any:
    settings = make_settings(tmp_path / "data", database_url, **overrides)
    app = create_app(settings, run_worker=False)
    client = await start_client(aiohttp_client, app)
    async with transaction(database_of(client).writes) as session:
        await load_demo(session, settings.default_region, password_hash)
    return client


def database_of(client: Any) -> Database:
    database: Database = client.app[DATABASE]
    return database


def incoming(call_sid: str, caller: str, **extra: str) -> dict[str, str]:
    params = {
        "AccountSid": "AC" + "0" * 32,
        "ApiVersion": "2010-04-01",
        "CallSid": call_sid,
        "CallStatus": "ringing",
        "Direction": "inbound",
        "From": caller,
        "To": ORGANISATION_NUMBER,
        "Caller": caller,
        "Called": ORGANISATION_NUMBER,
    }
    params.update(extra)
    return params


async def twiml(client: Any, path: str, params: dict[str, str]) -> ElementTree.Element:
    response = await post_signed(client, path, params)
    assert response.status == 200, await response.text()
    assert response.content_type == "text/xml"
    return ElementTree.fromstring(await response.text())


async def next_stage(
    client: Any, call_sid: str, caller: str, stage: int, dial_status: str
) -> ElementTree.Element:
    params = incoming(
        call_sid, caller, CallStatus="in-progress", DialCallStatus=dial_status
    )
    return await twiml(client, f"{NEXT}?stage={stage}", params)


def dialled(response: ElementTree.Element) -> list[tuple[str, str]]:
    dial = response.find("Dial")
    assert dial is not None, ElementTree.tostring(response)
    return [(noun.tag, (noun.text or "").strip()) for noun in dial]


async def missed_touch(database: Database, call_sid: str) -> tuple[Activity, Call]:
    async with database.reads() as session:
        row = (
            await session.execute(
                select(Activity, Call)
                .join(Call, Call.activity_id == Activity.id)
                .where(Call.call_sid == call_sid)
            )
        ).first()
    assert row is not None, "no touch for the call"
    return row[0], row[1]


async def customer_id_of(database: Database, phone: str) -> int | None:
    async with database.reads() as session:
        return await session.scalar(
            select(ContactPoint.customer_id).where(ContactPoint.value == phone)
        )


async def test_inbound_rings_owner_first(routing_client: Any) -> None:
    call_sid = new_sid("CA")

    response = await twiml(routing_client, INBOUND, incoming(call_sid, HARBOR.phone))

    assert response.find("Say") is None
    dial = response.find("Dial")
    assert dial is not None
    assert dialled(response) == [("Number", ANA.phone)]
    assert dial.get("action") == f"{PUBLIC_URL}{NEXT}?stage=1"
    assert dial.get("method") == "POST"
    assert dial.get("record") == "record-from-answer-dual"
    assert dial.get("answerOnBridge") == "true"
    assert dial.get("timeout") == "20"
    assert dial.get("recordingStatusCallback") == f"{PUBLIC_URL}/twilio/voice/recording"
    assert dial.get("recordingStatusCallbackEvent") == "in-progress completed absent"
    number = dial.find("Number")
    assert number is not None
    assert number.get("statusCallback") == f"{PUBLIC_URL}/twilio/voice/status"
    assert number.get("statusCallbackEvent") == "initiated ringing answered completed"


@pytest.mark.parametrize("overrides", [{"recording_disclosure": DISCLOSURE}])
async def test_inbound_disclosure_said_first(routing_client: Any) -> None:
    response = await twiml(
        routing_client, INBOUND, incoming(new_sid("CA"), HARBOR.phone)
    )

    children = list(response)
    assert children[0].tag == "Say"
    assert children[0].text == DISCLOSURE
    assert children[1].tag == "Dial"


@pytest.mark.parametrize("overrides", [{"recording_disclosure": DISCLOSURE}])
async def test_disclosure_said_once(routing_client: Any) -> None:
    response = await next_stage(
        routing_client, new_sid("CA"), HARBOR.phone, 1, "no-answer"
    )

    assert response.find("Say") is None
    assert dialled(response) == [("Number", BEN.phone)]


async def test_owner_missed_team_then_voicemail(routing_client: Any) -> None:
    call_sid = new_sid("CA")
    database = database_of(routing_client)

    second = await next_stage(routing_client, call_sid, HARBOR.phone, 1, "no-answer")
    last = await next_stage(routing_client, call_sid, HARBOR.phone, 2, "busy")

    assert dialled(second) == [("Number", BEN.phone)]
    dial = second.find("Dial")
    assert dial is not None
    assert dial.get("action") == f"{PUBLIC_URL}{NEXT}?stage=2"
    assert last.find("Dial") is None
    record = last.find("Record")
    assert record is not None
    assert record.get("recordingStatusCallback") == (
        f"{PUBLIC_URL}/twilio/voice/recording"
    )
    assert record.get("action") == f"{PUBLIC_URL}/twilio/voice/inbound/done"
    say = last.find("Say")
    assert say is not None
    assert say.text == "Please leave a message after the tone."
    touch, call = await missed_touch(database, call_sid)
    assert call.missed is True
    assert touch.customer_id == await customer_id_of(database, HARBOR.phone)
    assert touch.direction == "inbound"


@pytest.mark.parametrize("overrides", [{"inbound_fallback_number": FALLBACK}])
async def test_fallback_number_before_voicemail(routing_client: Any) -> None:
    call_sid = new_sid("CA")

    fallback = await next_stage(routing_client, call_sid, HARBOR.phone, 2, "no-answer")
    voicemail = await next_stage(routing_client, call_sid, HARBOR.phone, 3, "no-answer")

    assert dialled(fallback) == [("Number", FALLBACK)]
    dial = fallback.find("Dial")
    assert dial is not None
    assert dial.get("action") == f"{PUBLIC_URL}{NEXT}?stage=3"
    assert voicemail.find("Record") is not None
    _, call = await missed_touch(database_of(routing_client), call_sid)
    assert call.missed is True


async def test_answered_dial_hangs_up(routing_client: Any) -> None:
    call_sid = new_sid("CA")

    response = await next_stage(routing_client, call_sid, HARBOR.phone, 1, "completed")

    assert [child.tag for child in response] == ["Hangup"]
    async with database_of(routing_client).reads() as session:
        calls = await session.scalar(select(func.count()).select_from(Call))
    assert calls == 0, "an answered call is not missed"


@pytest.mark.parametrize("overrides", [{"inbound_team": "East"}])
async def test_unknown_caller_rings_team(routing_client: Any) -> None:
    call_sid = new_sid("CA")
    stranger = "+14155550988"

    first = await twiml(routing_client, INBOUND, incoming(call_sid, stranger))

    assert dialled(first) == [("Number", CHEN.phone), ("Client", "chen")]
    assert await customer_id_of(database_of(routing_client), stranger) is None


async def test_unknown_caller_no_team_voicemail(routing_client: Any) -> None:
    call_sid = new_sid("CA")
    stranger = "+14155550987"
    database = database_of(routing_client)

    response = await twiml(routing_client, INBOUND, incoming(call_sid, stranger))

    assert response.find("Record") is not None
    lead_id = await customer_id_of(database, stranger)
    assert lead_id is not None, "an unknown caller becomes a lead"
    touch, call = await missed_touch(database, call_sid)
    assert call.missed is True
    assert touch.customer_id == lead_id
    async with database.reads() as session:
        lead = await session.get(Customer, lead_id)
    assert lead is not None
    assert lead.status == "lead"


@pytest.mark.parametrize(
    "caller", ["+266696687", ANA.phone, ORGANISATION_NUMBER, "client:chen"]
)
async def test_non_customer_caller_never_customer(
    routing_client: Any, caller: str
) -> None:
    database = database_of(routing_client)
    async with database.reads() as session:
        before = await session.scalar(select(func.count()).select_from(Customer))
    call_sid = new_sid("CA")

    response = await twiml(routing_client, INBOUND, incoming(call_sid, caller))

    assert response.find("Record") is not None
    touch, call = await missed_touch(database, call_sid)
    assert call.missed is True
    assert touch.customer_id is None, "the touch waits in the unmatched inbox"
    async with database.reads() as session:
        after = await session.scalar(select(func.count()).select_from(Customer))
    assert after == before


async def test_caller_hung_up_is_missed(routing_client: Any) -> None:
    call_sid = new_sid("CA")
    params = incoming(
        call_sid, HARBOR.phone, CallStatus="completed", DialCallStatus="no-answer"
    )

    response = await twiml(routing_client, f"{NEXT}?stage=1", params)

    assert [child.tag for child in response] == ["Hangup"]
    _, call = await missed_touch(database_of(routing_client), call_sid)
    assert call.missed is True


async def test_missed_then_status_one_touch(routing_client: Any) -> None:
    call_sid = new_sid("CA")
    database = database_of(routing_client)
    await next_stage(routing_client, call_sid, HARBOR.phone, 2, "no-answer")
    leg = new_sid("CA")
    caller = {
        "caller": HARBOR.phone,
        "called": ORGANISATION_NUMBER,
        "direction": "inbound",
    }
    events = [
        call_status(call_sid, "ringing", 0, **caller),
        call_status(
            leg,
            "no-answer",
            1,
            caller=HARBOR.phone,
            called=ANA.phone,
            direction="outbound-dial",
            parent=call_sid,
        ),
        call_status(call_sid, "completed", 3, duration=40, **caller),
    ]

    for params in events:
        response = await post_signed(routing_client, "/twilio/voice/status", params)
        assert response.status == 204

    touch, call = await missed_touch(database, call_sid)
    async with database.reads() as session:
        touches = await session.scalar(
            select(func.count()).where(Activity.channel == "call")
        )
    assert touches == 1
    assert call.missed is True
    assert call.status == "completed"
    assert call.talk_seconds == 0, "no rep talked on a missed call"
    assert touch.customer_id == await customer_id_of(database, HARBOR.phone)


async def test_missed_call_on_customer_page(routing_client: Any) -> None:
    call_sid = new_sid("CA")
    database = database_of(routing_client)
    await next_stage(routing_client, call_sid, HARBOR.phone, 2, "no-answer")
    customer_id = await customer_id_of(database, HARBOR.phone)
    await login(routing_client, ANA.email)

    page = await routing_client.get(f"/customers/{customer_id}")

    assert page.status == 200
    assert "missed call" in await page.text()


async def test_inbound_bad_signature_rejected(routing_client: Any) -> None:
    response = await post_signed(
        routing_client, INBOUND, incoming(new_sid("CA"), HARBOR.phone), token="wrong"
    )

    assert response.status == 403


async def test_next_bad_stage_names_field(routing_client: Any) -> None:
    params = incoming(new_sid("CA"), HARBOR.phone, DialCallStatus="busy")

    response = await post_signed(routing_client, f"{NEXT}?stage=x", params)

    assert response.status == 400
    assert (await response.json())["field"] == "stage"


async def test_inbound_missing_from_names_field(routing_client: Any) -> None:
    params = incoming(new_sid("CA"), HARBOR.phone)
    del params["From"]

    response = await post_signed(routing_client, INBOUND, params)

    assert response.status == 400
    assert (await response.json())["field"] == "From"


async def test_missed_then_leg_keeps_direction(routing_client: Any) -> None:
    call_sid = new_sid("CA")
    database = database_of(routing_client)
    await next_stage(routing_client, call_sid, HARBOR.phone, 2, "no-answer")
    leg = call_status(
        new_sid("CA"),
        "no-answer",
        2,
        caller=HARBOR.phone,
        called=BEN.phone,
        direction="outbound-dial",
        parent=call_sid,
    )

    response = await post_signed(routing_client, "/twilio/voice/status", leg)

    assert response.status == 204
    touch, call = await missed_touch(database, call_sid)
    assert call.twilio_direction == "inbound"
    assert call.status == "no-answer"
    assert call.leg_count == 1
    assert call.missed is True
    assert touch.direction == "inbound"


async def metric_lines(client: Any) -> list[str]:
    response = await client.get("/metrics")
    assert response.status == 200
    return (await response.text()).splitlines()


def twiml_series(path: str, outcome: str, count: int) -> str:
    return f'touchline_webhooks_total{{path="{path}",outcome="{outcome}"}} {count}'


async def test_twiml_endpoints_counted_in_metrics(routing_client: Any) -> None:
    call_sid = new_sid("CA")
    params = incoming(call_sid, HARBOR.phone)
    bridge = incoming(new_sid("CA"), ORGANISATION_NUMBER, To=ANA.phone)
    await twiml(routing_client, INBOUND, params)
    await twiml(routing_client, INBOUND, params)
    await next_stage(routing_client, call_sid, HARBOR.phone, 1, "no-answer")
    await next_stage(routing_client, call_sid, HARBOR.phone, 3, "no-answer")
    await next_stage(routing_client, call_sid, HARBOR.phone, 1, "completed")
    bridge_path = "/twilio/voice/bridge?" + urlencode({"to": HARBOR.phone})
    await twiml(routing_client, bridge_path, bridge)
    forged = await post_signed(routing_client, INBOUND, params, token="wrong")
    bad_stage = await post_signed(routing_client, f"{NEXT}?stage=x", params)

    lines = await metric_lines(routing_client)

    assert forged.status == 403
    assert bad_stage.status == 400
    assert twiml_series(INBOUND, "ring", 2) in lines
    assert twiml_series(INBOUND, "forbidden", 1) in lines
    assert twiml_series(NEXT, "ring", 1) in lines
    assert twiml_series(NEXT, "voicemail", 1) in lines
    assert twiml_series(NEXT, "hangup", 1) in lines
    assert twiml_series(NEXT, "invalid", 1) in lines
    assert twiml_series("/twilio/voice/bridge", "bridge", 1) in lines


async def test_twiml_missed_and_invalid_counted(routing_client: Any) -> None:
    call_sid = new_sid("CA")
    hung_up = incoming(
        call_sid, HARBOR.phone, CallStatus="completed", DialCallStatus="no-answer"
    )
    no_from = incoming(new_sid("CA"), HARBOR.phone)
    del no_from["From"]
    await twiml(routing_client, f"{NEXT}?stage=1", hung_up)
    missing = await post_signed(routing_client, INBOUND, no_from)

    lines = await metric_lines(routing_client)

    assert missing.status == 400
    assert twiml_series(NEXT, "missed", 1) in lines
    assert twiml_series(INBOUND, "invalid", 1) in lines
    assert not any(HARBOR.phone.lstrip("+") in line for line in lines)


def dialled_leg(
    parent: str, leg: str, rep_phone: str, statuses: list[tuple[str, int]]
) -> list[dict[str, str]]:
    """Status callbacks of one rep's `<Dial>` leg: (status, seconds from start)."""
    return [
        call_status(
            leg,
            status,
            sequence,
            caller=HARBOR.phone,
            called=rep_phone,
            direction="outbound-dial",
            parent=parent,
            at=CALL_START + timedelta(seconds=seconds),
            duration=30 if status == "completed" else None,
        )
        for sequence, (status, seconds) in enumerate(statuses)
    ]


async def send_statuses(client: Any, events: list[dict[str, str]]) -> None:
    for params in events:
        response = await post_signed(client, "/twilio/voice/status", params)
        assert response.status == 204, await response.text()


async def rep_of_touch(database: Database, call_sid: str) -> str | None:
    async with database.reads() as session:
        return await session.scalar(
            select(User.email)
            .join(Activity, Activity.rep_id == User.id)
            .join(Call, Call.activity_id == Activity.id)
            .where(Call.call_sid == call_sid)
        )


async def test_team_rep_who_answered_owns_touch(routing_client: Any) -> None:
    call_sid, ana_leg, ben_leg = new_sid("CA"), new_sid("CA"), new_sid("CA")
    database = database_of(routing_client)
    first = await twiml(routing_client, INBOUND, incoming(call_sid, HARBOR.phone))
    second = await next_stage(routing_client, call_sid, HARBOR.phone, 1, "no-answer")
    parent = {"caller": HARBOR.phone, "called": ORGANISATION_NUMBER}
    ana = dialled_leg(call_sid, ana_leg, ANA.phone, [("ringing", 1), ("no-answer", 21)])
    ben = dialled_leg(
        call_sid,
        ben_leg,
        BEN.phone,
        [("ringing", 22), ("in-progress", 25), ("completed", 55)],
    )
    ringing = call_status(call_sid, "ringing", 0, direction="inbound", **parent)
    ended = call_status(
        call_sid, "completed", 1, direction="inbound", duration=56, **parent
    )

    await send_statuses(routing_client, [ended, *ana, ringing])
    before_answer = await rep_of_touch(database, call_sid)
    await send_statuses(routing_client, [*reversed(ben), *ben, *ben])

    assert dialled(first) == [("Number", ANA.phone)]
    assert dialled(second) == [("Number", BEN.phone)]
    assert before_answer == ANA.email
    assert await rep_of_touch(database, call_sid) == BEN.email
    _, call = await missed_touch(database, call_sid)
    assert call.talk_seconds == 30
    assert call.leg_count == 2


async def test_missed_call_stays_with_owner(routing_client: Any) -> None:
    call_sid, ana_leg, ben_leg = new_sid("CA"), new_sid("CA"), new_sid("CA")
    database = database_of(routing_client)
    await twiml(routing_client, INBOUND, incoming(call_sid, HARBOR.phone))
    await next_stage(routing_client, call_sid, HARBOR.phone, 1, "no-answer")
    voicemail = await next_stage(routing_client, call_sid, HARBOR.phone, 2, "busy")
    ana = dialled_leg(call_sid, ana_leg, ANA.phone, [("ringing", 1), ("no-answer", 21)])
    ben = dialled_leg(call_sid, ben_leg, BEN.phone, [("ringing", 22), ("busy", 30)])

    await send_statuses(routing_client, [*ben, *reversed(ana), *ben])

    assert voicemail.find("Record") is not None
    assert await rep_of_touch(database, call_sid) == ANA.email
    _, call = await missed_touch(database, call_sid)
    assert call.missed is True
    assert call.talk_seconds == 0
