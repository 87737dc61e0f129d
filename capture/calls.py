"""Call status events: stored once each, folded into the call's state.

Twilio does not guarantee arrival order, so a call's status is the status of
the event with the highest `SequenceNumber` seen so far, whatever order the
events arrived in, and a finished call never returns to a live status.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from capture.identity import (
    Party,
    PartyKind,
    create_lead,
    find_customer_by_phone,
    find_rep,
    is_company_number,
    parse_party,
)
from capture.models import Activity, Call, CallEvent, Customer, User
from capture.sql import insert_ignore
from capture.stream import add_activity, move_activity_time

log = logging.getLogger(__name__)

CALL_STATUSES = (
    "queued",
    "initiated",
    "ringing",
    "in-progress",
    "completed",
    "busy",
    "failed",
    "no-answer",
    "canceled",
)
FINAL_STATUSES = frozenset({"completed", "busy", "failed", "no-answer", "canceled"})
START_STATUSES = frozenset({"queued", "initiated", "ringing"})


class Outcome(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    # Stored, but an event with a higher sequence number already set the state.
    STALE = "stale"
    DUPLICATE = "duplicate"


@dataclass(frozen=True)
class CallStatusEvent:
    call_sid: str
    parent_call_sid: str | None
    from_party: str
    to_party: str
    status: str
    twilio_direction: str
    sequence_number: int
    occurred_at: datetime
    # Talk time in seconds, sent with the final status.
    call_duration: int | None


@dataclass(frozen=True)
class CallResult:
    outcome: Outcome
    call_sid: str
    activity_id: int | None = None


async def apply_call_status(
    session: AsyncSession, event: CallStatusEvent, default_region: str
) -> CallResult:
    """Store one status callback and update the call it belongs to."""
    inserted = await insert_ignore(
        session,
        CallEvent.__table__,
        {
            "call_sid": event.call_sid,
            "sequence_number": event.sequence_number,
            "status": event.status,
            "occurred_at": event.occurred_at,
            "call_duration": event.call_duration,
        },
    )
    if not inserted:
        return CallResult(Outcome.DUPLICATE, event.call_sid)
    result = await session.execute(
        select(Call, Activity)
        .join(Activity, Call.activity_id == Activity.id)
        .where(Call.call_sid == event.call_sid)
    )
    row = result.first()
    if row is None:
        call, activity = await _create_call(session, event, default_region)
        outcome = Outcome.CREATED
    else:
        call, activity = row[0], row[1]
        newer = event.sequence_number > call.last_sequence
        outcome = Outcome.UPDATED if newer else Outcome.STALE
    _fold_event(call, event)
    await move_activity_time(session, activity, event.occurred_at)
    return CallResult(outcome, event.call_sid, activity.id)


def _fold_event(call: Call, event: CallStatusEvent) -> None:
    moment = event.occurred_at
    if event.status in START_STATUSES:
        call.started_at = _earliest(call.started_at, moment)
    if event.status == "in-progress":
        call.answered_at = _earliest(call.answered_at, moment)
    if event.status in FINAL_STATUSES:
        call.ended_at = moment
        call.talk_seconds = event.call_duration or 0
    if event.sequence_number > call.last_sequence:
        leaving_final = (
            call.status in FINAL_STATUSES and event.status not in FINAL_STATUSES
        )
        if not leaving_final:
            call.status = event.status
        call.last_sequence = event.sequence_number


def _earliest(current: datetime | None, moment: datetime) -> datetime:
    return moment if current is None else min(current, moment)


async def _create_call(
    session: AsyncSession, event: CallStatusEvent, default_region: str
) -> tuple[Call, Activity]:
    caller = parse_party(event.from_party, default_region)
    callee = parse_party(event.to_party, default_region)
    rep, other, direction = await resolve_legs(session, caller, callee)
    customer = await customer_for_party(session, other, rep)
    rep_id = rep.id if rep is not None else None
    activity = await add_activity(
        session,
        external_key=f"call:{event.call_sid}",
        channel="call",
        direction=direction,
        occurred_at=event.occurred_at,
        customer_id=customer.id if customer is not None else None,
        rep_id=rep_id,
    )
    call = Call(
        activity_id=activity.id,
        call_sid=event.call_sid,
        parent_call_sid=event.parent_call_sid,
        twilio_direction=event.twilio_direction,
        from_party=event.from_party,
        to_party=event.to_party,
        status=event.status,
        last_sequence=event.sequence_number,
    )
    session.add(call)
    await session.flush()
    log.info(
        "call created: call=%s activity=%s customer=%s rep=%s caller=%s",
        event.call_sid,
        activity.id,
        activity.customer_id,
        rep_id,
        other.kind,
    )
    return call, activity


async def resolve_legs(
    session: AsyncSession, caller: Party, callee: Party
) -> tuple[User | None, Party, str]:
    """Return the rep on the call, the other party and the touch direction.

    The rep is whichever side is a rep's phone or `client:` identity. With no
    rep on either side, the side that is a company number is the company and
    the other side the customer.
    """
    rep_called = await find_rep(session, callee)
    if rep_called is not None:
        return rep_called, caller, "inbound"
    rep_calling = await find_rep(session, caller)
    if rep_calling is not None:
        return rep_calling, callee, "outbound"
    if await is_company_number(session, caller):
        return None, callee, "outbound"
    return None, caller, "inbound"


async def customer_for_party(
    session: AsyncSession, party: Party, rep: User | None
) -> Customer | None:
    """Find the customer of a number, or create a lead owned by `rep`.

    Withheld callers, `client:` and `sip:` parties, reps and company numbers
    are never customers.
    """
    if party.kind is not PartyKind.NUMBER:
        return None
    if await is_company_number(session, party):
        return None
    if await find_rep(session, party) is not None:
        return None
    customer = await find_customer_by_phone(session, party.value)
    if customer is not None:
        return customer
    return await create_lead(session, party.value, rep.id if rep else None)
