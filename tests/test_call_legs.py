"""Child legs (ParentCallSid) folded into their parent call, in any order."""

from __future__ import annotations

import itertools
import random
from datetime import timedelta
from typing import Any

import pytest
from conftest import post_signed
from sqlalchemy import func, select
from twilio_params import CALL_START, call_status, new_sid

from capture import rollups
from capture.db import Database
from capture.demo_data import CUSTOMERS, ORGANISATION_NUMBER, REPS
from capture.models import (
    Activity,
    Call,
    CallLeg,
    ContactPoint,
    Customer,
    TouchDay,
    User,
)
from capture.settings import Settings

ANA = REPS[0]
BEN = REPS[1]
CHEN = REPS[2]
HARBOR = CUSTOMERS[0]
STATUS = "/twilio/voice/status"


def at(seconds: int) -> Any:
    return CALL_START + timedelta(seconds=seconds)


def click_to_call(parent: str, child: str) -> list[dict[str, str]]:
    """A REST call to Ana's phone, bridged to Harbor by a <Dial>: both legs."""
    rep_leg = {
        "caller": ORGANISATION_NUMBER,
        "called": ANA.phone,
        "direction": "outbound-api",
    }
    customer_leg = {
        "caller": ORGANISATION_NUMBER,
        "called": HARBOR.phone,
        "direction": "outbound-dial",
        "parent": parent,
    }
    return [
        call_status(parent, "initiated", 0, at=at(0), **rep_leg),
        call_status(parent, "ringing", 1, at=at(1), **rep_leg),
        call_status(parent, "in-progress", 2, at=at(5), **rep_leg),
        call_status(child, "initiated", 0, at=at(6), **customer_leg),
        call_status(child, "ringing", 1, at=at(7), **customer_leg),
        call_status(child, "in-progress", 2, at=at(15), **customer_leg),
        call_status(child, "completed", 3, at=at(75), duration=60, **customer_leg),
        call_status(parent, "completed", 3, at=at(76), duration=71, **rep_leg),
    ]


def inbound(parent: str, legs: list[tuple[str, str, str, int]]) -> list[dict[str, str]]:
    """An inbound call from Harbor to the company number, dialling `legs` in turn.

    Each leg is (CallSid, rep phone, final status, talk seconds).
    """
    caller = {
        "caller": HARBOR.phone,
        "called": ORGANISATION_NUMBER,
        "direction": "inbound",
    }
    events = [
        call_status(parent, "ringing", 0, at=at(0), **caller),
        call_status(parent, "in-progress", 1, at=at(1), **caller),
    ]
    start = 2
    for sid, phone, final, talk in legs:
        leg = {
            "caller": HARBOR.phone,
            "called": phone,
            "direction": "outbound-dial",
            "parent": parent,
        }
        events.append(call_status(sid, "ringing", 0, at=at(start), **leg))
        if final == "completed":
            events.append(call_status(sid, "in-progress", 1, at=at(start + 5), **leg))
        end = start + 5 + talk
        events.append(call_status(sid, final, 2, at=at(end), duration=talk, **leg))
        start = end + 1
    events.append(
        call_status(parent, "completed", 2, at=at(start), duration=start, **caller)
    )
    return events


async def send_all(client: Any, events: list[dict[str, str]]) -> None:
    for params in events:
        response = await post_signed(client, STATUS, params)
        assert response.status == 204, await response.text()


async def call_row(database: Database, call_sid: str) -> Call:
    async with database.reads() as session:
        call = await session.scalar(select(Call).where(Call.call_sid == call_sid))
    assert call is not None
    return call


async def touch_of(database: Database, call_sid: str) -> Activity:
    async with database.reads() as session:
        activity = await session.scalar(
            select(Activity).where(Activity.external_key == f"call:{call_sid}")
        )
    assert activity is not None
    return activity


async def call_touches(database: Database) -> int:
    async with database.reads() as session:
        query = select(func.count()).where(Activity.channel == "call")
        return int(await session.scalar(query) or 0)


async def snapshot(database: Database, parent: str) -> tuple[Any, ...]:
    call = await call_row(database, parent)
    touch = await touch_of(database, parent)
    async with database.reads() as session:
        legs = (
            await session.execute(
                select(CallLeg.call_sid, CallLeg.status, CallLeg.talk_seconds)
                .where(CallLeg.call_id == call.id)
                .order_by(CallLeg.call_sid)
            )
        ).all()
    return (
        call.status,
        call.twilio_direction,
        call.from_party,
        call.to_party,
        call.started_at,
        call.answered_at,
        call.ended_at,
        call.talk_seconds,
        call.leg_count,
        touch.occurred_at,
        touch.customer_id,
        touch.rep_id,
        touch.direction,
        tuple(tuple(leg) for leg in legs),
    )


async def test_click_to_call_legs_one_touch(client: Any, database: Database) -> None:
    parent, child = new_sid("CA"), new_sid("CA")

    await send_all(client, click_to_call(parent, child))

    assert await call_touches(database) == 1
    call = await call_row(database, parent)
    touch = await touch_of(database, parent)
    assert call.status == "completed"
    assert call.talk_seconds == 60, "talk time is the bridged child leg's"
    assert call.answered_at == at(15), "answered when the customer answered"
    assert call.own_talk_seconds == 71
    assert call.leg_count == 1
    assert touch.direction == "outbound"
    assert touch.occurred_at == at(0)
    async with database.reads() as session:
        ana_id = await session.scalar(
            select(Activity.rep_id).where(Activity.id == touch.id)
        )
        harbor = await session.scalar(
            select(ContactPoint.customer_id).where(ContactPoint.value == HARBOR.phone)
        )
        leg = await session.scalar(select(CallLeg).where(CallLeg.call_sid == child))
    assert ana_id is not None
    assert touch.customer_id == harbor
    assert leg is not None
    assert leg.call_id == call.id
    assert leg.talk_seconds == 60


async def test_click_to_call_any_order_same_result(
    client: Any, database: Database
) -> None:
    orders = {
        "parent first": lambda events: events,
        "child first": lambda events: events[3:7] + events[:3] + events[7:],
        "reversed": lambda events: list(reversed(events)),
    }
    results = {}
    for name, reorder in orders.items():
        parent, child = new_sid("CA"), new_sid("CA")
        await send_all(client, reorder(click_to_call(parent, child)))
        results[name] = await snapshot(database, parent)

    expected = results["parent first"]
    for name, result in results.items():
        assert result[:-1] == expected[:-1], name
        assert [leg[1:] for leg in result[-1]] == [leg[1:] for leg in expected[-1]]
    assert await call_touches(database) == len(orders)


async def test_inbound_legs_every_order_same_result(
    client: Any, database: Database
) -> None:
    # Parent ringing, parent answered, leg ringing, leg answered, leg ended,
    # parent ended: every fifth of all 720 orders of these six events.
    results = set()
    for order in itertools.islice(itertools.permutations(range(6)), 0, None, 5):
        parent, leg = new_sid("CA"), new_sid("CA")
        events = inbound(parent, [(leg, ANA.phone, "completed", 42)])
        await send_all(client, [events[index] for index in order])
        state = await snapshot(database, parent)
        results.add((*state[:-1], tuple(item[1:] for item in state[-1])))
        if len(results) > 1:
            pytest.fail(f"order {order} gave a different call")

    [state] = results
    assert state[0] == "completed"
    assert state[1] == "inbound"
    assert state[5] == at(7), "answered when the rep's leg answered"
    assert state[7] == 42
    assert state[12] == "inbound"


async def test_legs_retried_change_nothing(client: Any, database: Database) -> None:
    parent, child = new_sid("CA"), new_sid("CA")
    events = click_to_call(parent, child)
    await send_all(client, events)
    before = await snapshot(database, parent)

    for params in events[3:]:
        response = await post_signed(client, STATUS, params)
        assert response.status == 204

    assert await snapshot(database, parent) == before
    assert await call_touches(database) == 1


async def test_late_leg_event_never_moves_parent_back(
    client: Any, database: Database
) -> None:
    parent, child = new_sid("CA"), new_sid("CA")
    events = click_to_call(parent, child)
    late_ringing = events[4]
    await send_all(client, [event for event in events if event is not late_ringing])

    await send_all(client, [late_ringing])

    call = await call_row(database, parent)
    assert call.status == "completed"
    assert call.talk_seconds == 60
    assert call.ended_at == at(76)


async def test_fallback_legs_sum_talk_time(client: Any, database: Database) -> None:
    parent, ana_leg, ben_leg = new_sid("CA"), new_sid("CA"), new_sid("CA")
    events = inbound(
        parent,
        [(ana_leg, ANA.phone, "no-answer", 0), (ben_leg, BEN.phone, "completed", 30)],
    )

    await send_all(client, list(reversed(events)))

    call = await call_row(database, parent)
    touch = await touch_of(database, parent)
    assert await call_touches(database) == 1
    assert call.leg_count == 2
    assert call.talk_seconds == 30
    assert call.answered_at is not None
    assert touch.rep_id is not None


async def test_leg_only_makes_placeholder(client: Any, database: Database) -> None:
    parent, child = new_sid("CA"), new_sid("CA")
    leg = {
        "caller": HARBOR.phone,
        "called": ANA.phone,
        "direction": "outbound-dial",
        "parent": parent,
    }

    await send_all(
        client,
        [
            call_status(child, "ringing", 0, at=at(2), **leg),
            call_status(child, "in-progress", 1, at=at(4), **leg),
            call_status(child, "completed", 2, at=at(34), duration=30, **leg),
        ],
    )

    call = await call_row(database, parent)
    touch = await touch_of(database, parent)
    assert call.last_sequence == -1
    assert call.status == "completed"
    assert call.talk_seconds == 30
    assert touch.direction == "inbound"
    assert touch.rep_id is not None
    assert touch.customer_id is not None


async def test_unknown_caller_lead_owned_by_leg_rep(
    client: Any, database: Database
) -> None:
    parent, leg = new_sid("CA"), new_sid("CA")
    stranger = "+14155550977"
    events = inbound(parent, [(leg, ANA.phone, "completed", 10)])
    for params in events:
        for key in ("From", "Caller"):
            params[key] = stranger
    parent_events = [params for params in events if "ParentCallSid" not in params]
    leg_events = [params for params in events if "ParentCallSid" in params]

    await send_all(client, parent_events)
    await send_all(client, leg_events)

    touch = await touch_of(database, parent)
    async with database.reads() as session:
        point = await session.scalar(
            select(ContactPoint).where(ContactPoint.value == stranger)
        )
        lead = await session.get(Customer, point.customer_id) if point else None
    assert lead is not None
    assert lead.status == "lead"
    assert touch.customer_id == lead.id
    assert touch.rep_id is not None
    assert lead.owner_id == touch.rep_id


async def test_call_page_found_by_leg_sid(client: Any, as_admin: str) -> None:
    parent, child = new_sid("CA"), new_sid("CA")
    await send_all(client, click_to_call(parent, child))

    response = await client.get(f"/calls/{child}")

    assert response.status == 200
    assert parent in await response.text()


async def rep_id_of(database: Database, email: str) -> int:
    async with database.reads() as session:
        found = await session.scalar(select(User.id).where(User.email == email))
    assert found is not None
    return found


def call_counts(database: Database) -> dict[str, tuple[int, int, int]]:
    """Return each rep's call touches, answered calls and talk seconds."""
    with database.batch_sessions()() as session:
        query = (
            select(
                User.email,
                func.sum(TouchDay.touches),
                func.sum(TouchDay.answered),
                func.sum(TouchDay.talk_seconds),
            )
            .join(User, User.id == TouchDay.rep_id)
            .where(TouchDay.channel == "call")
            .group_by(User.email)
        )
        rows = session.execute(query).all()
    return {
        email: (int(touches), int(answered), int(talk))
        for email, touches, answered, talk in rows
        if touches or answered or talk
    }


def rebuilt_counts(
    database: Database, settings: Settings
) -> dict[str, tuple[int, int, int]]:
    with database.batch_sessions()() as session, session.begin():
        rollups.rebuild(session, settings.zone)
    return call_counts(database)


def three_reps(parent: str, legs: tuple[str, str, str]) -> list[dict[str, str]]:
    """Harbor's call rings Ana (no answer), then Chen (busy), then Ben answers."""
    ana, chen, ben = legs
    return inbound(
        parent,
        [
            (ana, ANA.phone, "no-answer", 0),
            (chen, CHEN.phone, "busy", 0),
            (ben, BEN.phone, "completed", 30),
        ],
    )


def answering_leg_last(events: list[dict[str, str]], leg: str) -> list[dict[str, str]]:
    others = [params for params in events if params["CallSid"] != leg]
    return others + [params for params in events if params["CallSid"] == leg]


async def test_answering_leg_owns_touch_any_order(
    client: Any, database: Database
) -> None:
    shuffler = random.Random(7)
    orders = {
        "in time order": lambda events, _: events,
        "reversed": lambda events, _: list(reversed(events)),
        "answering leg last": answering_leg_last,
        "answering leg last, reversed": lambda events, leg: answering_leg_last(
            list(reversed(events)), leg
        ),
    }
    for number in range(8):
        orders[f"shuffled {number}"] = lambda events, _: shuffler.sample(
            events, len(events)
        )
    ben_id = await rep_id_of(database, BEN.email)

    for name, reorder in orders.items():
        parent, legs = new_sid("CA"), (new_sid("CA"), new_sid("CA"), new_sid("CA"))
        await send_all(client, reorder(three_reps(parent, legs), legs[2]))

        touch = await touch_of(database, parent)
        assert touch.rep_id == ben_id, name
        assert (await call_row(database, parent)).talk_seconds == 30, name


async def test_answering_leg_duplicated_last(
    client: Any, database: Database, settings: Settings
) -> None:
    parent, legs = new_sid("CA"), (new_sid("CA"), new_sid("CA"), new_sid("CA"))
    events = answering_leg_last(three_reps(parent, legs), legs[2])
    answering = [params for params in events if params["CallSid"] == legs[2]]
    await send_all(client, events)
    before = await snapshot(database, parent)
    counts_before = call_counts(database)

    await send_all(client, list(reversed(answering)) + answering)

    touch = await touch_of(database, parent)
    assert touch.rep_id == await rep_id_of(database, BEN.email)
    assert await snapshot(database, parent) == before
    assert call_counts(database) == counts_before
    assert counts_before == {BEN.email: (1, 1, 30)}
    assert rebuilt_counts(database, settings) == counts_before


async def test_rep_moves_when_answer_arrives(
    client: Any, database: Database, settings: Settings
) -> None:
    parent, legs = new_sid("CA"), (new_sid("CA"), new_sid("CA"), new_sid("CA"))
    events = answering_leg_last(three_reps(parent, legs), legs[2])
    answering = [params for params in events if params["CallSid"] == legs[2]]
    await send_all(client, [params for params in events if params not in answering])
    first = call_counts(database)

    await send_all(client, answering)

    assert first == {ANA.email: (1, 0, 0)}, "owner, rung first, until an answer"
    assert call_counts(database) == {BEN.email: (1, 1, 30)}
    assert rebuilt_counts(database, settings) == {BEN.email: (1, 1, 30)}


async def test_no_answer_keeps_first_rung_rep(
    client: Any, database: Database, settings: Settings
) -> None:
    results = set()
    for reorder in (lambda events: events, lambda events: list(reversed(events))):
        parent, ana_leg, ben_leg = new_sid("CA"), new_sid("CA"), new_sid("CA")
        events = inbound(
            parent,
            [(ana_leg, ANA.phone, "no-answer", 0), (ben_leg, BEN.phone, "busy", 0)],
        )
        await send_all(client, reorder(events))
        results.add((await touch_of(database, parent)).rep_id)

    assert results == {await rep_id_of(database, ANA.email)}
    assert call_counts(database) == {ANA.email: (2, 0, 0)}
    assert rebuilt_counts(database, settings) == {ANA.email: (2, 0, 0)}


async def test_answered_leg_without_in_progress(
    client: Any, database: Database
) -> None:
    parent, legs = new_sid("CA"), (new_sid("CA"), new_sid("CA"), new_sid("CA"))
    events = [
        params
        for params in three_reps(parent, legs)
        if not (params["CallSid"] == legs[2] and params["CallStatus"] == "in-progress")
    ]

    await send_all(client, list(reversed(events)))

    touch = await touch_of(database, parent)
    assert touch.rep_id == await rep_id_of(database, BEN.email)


async def test_answering_rep_owns_new_lead(client: Any, database: Database) -> None:
    parent, legs = new_sid("CA"), (new_sid("CA"), new_sid("CA"), new_sid("CA"))
    stranger = "+14155550978"
    events = answering_leg_last(three_reps(parent, legs), legs[2])
    for params in events:
        for key in ("From", "Caller"):
            params[key] = stranger

    for params in events:
        await send_all(client, [params])

    touch = await touch_of(database, parent)
    async with database.reads() as session:
        lead = await session.get(Customer, touch.customer_id)
    assert lead is not None
    assert lead.status == "lead"
    assert touch.rep_id == await rep_id_of(database, BEN.email)
    assert lead.owner_id == touch.rep_id
