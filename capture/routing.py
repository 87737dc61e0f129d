"""Who an inbound call rings, and the missed calls no rep answered.

An inbound call rings the caller's owner first, then the other reps of the
owner's team one at a time. A caller with no owner (an unknown number, a
withheld caller, a number several customers share) rings the reps of the
configured inbound team instead. A rep rings on their phone and their
`client:` identity at once, whichever they have.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from capture import rollups
from capture.call_state import NO_OWN_EVENT
from capture.identity import Directory, PartyKind, RepRef, parse_party
from capture.models import (
    Activity,
    Call,
    CompanyNumber,
    ContactPoint,
    Customer,
    Team,
    User,
    utcnow,
)
from capture.stream import plan_open_at

CALLING_ROLES = ("rep", "manager")


@dataclass(frozen=True)
class Target:
    """A rep to ring, on each way they can answer."""

    rep_id: int
    number: str | None
    client: str | None


@dataclass(frozen=True)
class InboundRoute:
    customer_id: int | None
    owner_id: int | None
    # Reps to ring one after the other, the owner first.
    targets: tuple[Target, ...]


async def plan_inbound(
    session: AsyncSession, caller: str, default_region: str, inbound_team: str
) -> InboundRoute:
    """Find the caller's customer and owner, and the reps to ring in turn."""
    customer_id, owner_id = await _customer_of(session, caller, default_region)
    owner = await session.get(User, owner_id) if owner_id is not None else None
    if owner is not None and not owner.active:
        owner = None
    if owner is not None:
        reps = [owner]
        if owner.team_id is not None:
            reps += await _team_reps(session, owner.team_id, exclude=owner.id)
    else:
        reps = await _named_team_reps(session, inbound_team)
    targets = tuple(
        Target(rep.id, rep.phone, rep.client_identity)
        for rep in reps
        if rep.phone or rep.client_identity
    )
    return InboundRoute(customer_id, owner.id if owner else None, targets)


async def _customer_of(
    session: AsyncSession, caller: str, default_region: str
) -> tuple[int | None, int | None]:
    """Return the caller's customer and owner; none for a number that is no customer's.

    Withheld, `client:` and `sip:` callers, reps' phones, company numbers
    and numbers several customers share match no customer.
    """
    party = parse_party(caller, default_region)
    if party.kind is not PartyKind.NUMBER:
        return None, None
    rep = await session.scalar(select(User.id).where(User.phone == party.value))
    company = await session.scalar(
        select(CompanyNumber.id).where(CompanyNumber.phone == party.value)
    )
    if rep is not None or company is not None:
        return None, None
    rows = (
        await session.execute(
            select(Customer.id, Customer.owner_id)
            .join(ContactPoint, ContactPoint.customer_id == Customer.id)
            .where(ContactPoint.kind == "phone", ContactPoint.value == party.value)
            .distinct()
        )
    ).all()
    if len(rows) != 1:
        return None, None
    customer_id, owner_id = rows[0]
    return customer_id, owner_id


async def _team_reps(session: AsyncSession, team_id: int, exclude: int) -> list[User]:
    query = (
        select(User)
        .where(
            User.team_id == team_id,
            User.id != exclude,
            User.active,
            User.role.in_(CALLING_ROLES),
        )
        .order_by(User.name, User.id)
    )
    return list((await session.scalars(query)).all())


async def _named_team_reps(session: AsyncSession, team_name: str) -> list[User]:
    if not team_name:
        return []
    team_id = await session.scalar(select(Team.id).where(Team.name == team_name))
    if team_id is None:
        return []
    return await _team_reps(session, team_id, exclude=-1)


@dataclass(frozen=True)
class MissedCall:
    """An inbound call that no rep answered, as the routing webhook saw it."""

    call_sid: str
    from_party: str
    to_party: str
    occurred_at: datetime
    # The rep who should have answered: the caller's owner, if any.
    owner_id: int | None


def record_missed_call(
    session: Session, missed: MissedCall, default_region: str
) -> int:
    """Mark the call as missed, making its touch if no status callback did yet.

    Return the touch's id. A repeat changes nothing. A touch made here is a
    placeholder call whose status callbacks, arriving later, fill it in.
    """
    call = session.scalar(select(Call).where(Call.call_sid == missed.call_sid))
    if call is None:
        call = _missed_placeholder(session, missed, default_region)
    session.execute(update(Call).where(Call.id == call.id).values(missed=True))
    return call.activity_id


def _missed_placeholder(
    session: Session, missed: MissedCall, default_region: str
) -> Call:
    caller = parse_party(missed.from_party, default_region)
    directory = Directory.load(session, [caller])
    owner = RepRef(missed.owner_id, "") if missed.owner_id is not None else None
    customer = directory.customer_for(session, caller, owner)
    customer_id = customer.id if customer else None
    plan_id = None
    if customer_id is not None:
        plan_id = plan_open_at(session, customer_id, missed.occurred_at)
    activity = Activity(
        external_key=f"call:{missed.call_sid}",
        channel="call",
        direction="inbound",
        occurred_at=missed.occurred_at,
        customer_id=customer_id,
        rep_id=missed.owner_id,
        plan_id=plan_id,
        created_at=utcnow(),
    )
    call = Call(
        activity=activity,
        call_sid=missed.call_sid,
        twilio_direction="inbound",
        from_party=missed.from_party,
        to_party=missed.to_party,
        # The status comes from the call's legs and its own callbacks, which
        # may arrive before or after this, so the placeholder claims none.
        status="queued",
        last_sequence=NO_OWN_EVENT,
        leg_count=0,
        missed=True,
    )
    session.add(call)
    session.flush()
    rollups.mark_new(session, [activity.id])
    return call
