"""The unmatched inbox: touches with no customer, attached by a person.

Adding a phone number or email address to a customer (`add_contact`) also
attaches the unmatched touches of that number or address.

A touch waits here when its other party is no customer's: a withheld
caller, a `sip:` or `client:` party, or a number that several customers
have. Attaching one gives it the customer and the plan that was open at
the touch's time. With `add_number`, the other party's number also joins
the customer's contact points, and every other unmatched touch with that
number is attached too, as if it had been known all along.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from capture import firsts
from capture.access import Viewer, visible_activities, visible_customers
from capture.errors import Forbidden, InvalidInput, NotFound
from capture.identity import PartyKind, parse_party
from capture.models import (
    Activity,
    Call,
    CompanyNumber,
    ContactPoint,
    Customer,
    Email,
    Message,
    User,
)
from capture.stream import PlanIndex

log = logging.getLogger(__name__)

# Roles that may attach touches: everyone who works with customers.
ATTACHERS = frozenset({"rep", "manager", "admin"})


@dataclass(frozen=True)
class Attached:
    customer_id: int
    # Touches attached: the one asked for first, then those of the same number.
    activity_ids: tuple[int, ...]
    number_added: str | None


# Customers offered in an attach form at most; a longer list is no help.
MAX_TARGETS = 500


async def attach_targets(session: AsyncSession, viewer: Viewer) -> list[Customer]:
    """List the customers the viewer may attach a touch to, by name."""
    query = (
        select(Customer)
        .where(visible_customers(viewer))
        .order_by(Customer.name, Customer.id)
        .limit(MAX_TARGETS)
    )
    return list((await session.scalars(query)).all())


def other_number(activity: Activity, default_region: str) -> str | None:
    """Return the E.164 number of the touch's non-rep party, if it has one."""
    leg = activity.call or activity.message
    if leg is None:
        return None
    raw = leg.from_party if activity.direction == "inbound" else leg.to_party
    party = parse_party(raw, default_region)
    return party.value if party.kind is PartyKind.NUMBER else None


async def attach_touch(
    session: AsyncSession,
    viewer: Viewer,
    activity_id: int,
    customer_id: int,
    *,
    add_number: bool,
    default_region: str,
    zone: ZoneInfo,
) -> Attached:
    """Give an unmatched touch its customer; see the module's description."""
    if viewer.role not in ATTACHERS:
        raise Forbidden("this role can read touches but not attach them")
    activity = await _unmatched(session, viewer, activity_id)
    customer = await session.scalar(
        select(Customer).where(Customer.id == customer_id, visible_customers(viewer))
    )
    if customer is None:
        raise NotFound(f"customer {customer_id} not found", "customer_id")
    attached = [activity]
    number = None
    if add_number:
        number = other_number(activity, default_region)
        if number is None:
            raise InvalidInput(
                "this touch has no phone number to add to the customer", "add_number"
            )
        await _add_contact(session, customer, number)
        attached += await _unmatched_of_number(session, viewer, number, default_region)
    await _attach(session, customer.id, attached, zone)
    log.info(
        "touches attached: customer=%s activities=%s number_added=%s",
        customer.id,
        [a.id for a in attached],
        number is not None,
    )
    return Attached(customer.id, tuple(a.id for a in attached), number)


async def add_contact(
    session: AsyncSession,
    viewer: Viewer,
    customer_id: int,
    *,
    kind: str,
    value: str,
    label: str,
    default_region: str,
    zone: ZoneInfo,
) -> list[int]:
    """Add a phone number or email address to a customer.

    Returns the ids of the unmatched touches of the number or address that
    were attached to the customer as a result. A rep's phone or a company number
    is no customer's number and is rejected.
    """
    if viewer.role not in ATTACHERS:
        raise Forbidden("this role can read customers but not change them")
    customer = await session.scalar(
        select(Customer).where(Customer.id == customer_id, visible_customers(viewer))
    )
    if customer is None:
        raise NotFound(f"customer {customer_id} not found", "id")
    if len(label) > 100:
        raise InvalidInput("label is longer than 100 characters", "label")
    if kind == "phone":
        party = parse_party(value, default_region)
        if party.kind is not PartyKind.NUMBER:
            raise InvalidInput(f"value {value[:40]!r} is not a phone number", "value")
        normalised = party.value
        await _reject_own_number(session, normalised)
    elif kind == "email":
        normalised = value.strip().lower()
        if "@" not in normalised or len(normalised) > 320 or " " in normalised:
            raise InvalidInput(f"value {value[:40]!r} is not an email address", "value")
    else:
        raise InvalidInput(f"kind {kind!r} is not phone or email", "kind")
    exists = await session.scalar(
        select(ContactPoint.id).where(
            ContactPoint.customer_id == customer.id,
            ContactPoint.kind == kind,
            ContactPoint.value == normalised,
        )
    )
    if exists is not None:
        raise InvalidInput("the customer already has this contact point", "value")
    session.add(
        ContactPoint(
            customer_id=customer.id, kind=kind, value=normalised, label=label.strip()
        )
    )
    if kind == "phone":
        touches = await _unmatched_of_number(
            session, viewer, normalised, default_region
        )
    else:
        touches = await _unmatched_of_address(session, viewer, normalised)
    if touches:
        await _attach(session, customer.id, touches, zone)
    await session.flush()
    return [touch.id for touch in touches]


async def _reject_own_number(session: AsyncSession, number: str) -> None:
    if await session.scalar(select(User.id).where(User.phone == number)):
        raise InvalidInput("this number is a rep's phone, not a customer's", "value")
    if await session.scalar(
        select(CompanyNumber.id).where(CompanyNumber.phone == number)
    ):
        raise InvalidInput("this number is one of the company's own", "value")


async def _unmatched(
    session: AsyncSession, viewer: Viewer, activity_id: int
) -> Activity:
    activity = await session.scalar(
        select(Activity)
        .where(Activity.id == activity_id, visible_activities(viewer))
        .options(selectinload(Activity.call), selectinload(Activity.message))
    )
    if activity is None:
        raise NotFound(f"touch {activity_id} not found", "id")
    if activity.customer_id is not None:
        raise InvalidInput("this touch already has a customer", "id")
    return activity


async def _add_contact(session: AsyncSession, customer: Customer, number: str) -> None:
    exists = await session.scalar(
        select(ContactPoint.id).where(
            ContactPoint.customer_id == customer.id,
            ContactPoint.kind == "phone",
            ContactPoint.value == number,
        )
    )
    if exists is None:
        session.add(ContactPoint(customer_id=customer.id, kind="phone", value=number))


async def _unmatched_of_number(
    session: AsyncSession, viewer: Viewer, number: str, default_region: str
) -> list[Activity]:
    """Other unmatched touches, visible to the viewer, with `number` as other party."""
    query = (
        select(Activity)
        .where(
            Activity.customer_id.is_(None),
            visible_activities(viewer),
            Activity.id.in_(
                select(Call.activity_id).where(
                    (Call.from_party == number) | (Call.to_party == number)
                )
            )
            | Activity.id.in_(
                select(Message.activity_id).where(
                    (Message.from_party == number) | (Message.to_party == number)
                )
            ),
        )
        .options(selectinload(Activity.call), selectinload(Activity.message))
    )
    found = (await session.scalars(query)).all()
    # The parties are stored as Twilio sent them; keep those whose other
    # party, not the rep's side, is the number.
    return [a for a in found if other_number(a, default_region) == number]


async def _unmatched_of_address(
    session: AsyncSession, viewer: Viewer, address: str
) -> list[Activity]:
    """Unmatched emails, visible to the viewer, with `address` as other party."""
    query = (
        select(Activity)
        .join(Email, Email.activity_id == Activity.id)
        .where(
            Activity.customer_id.is_(None),
            visible_activities(viewer),
            (Email.from_address == address)
            | Email.to_addresses.contains(address, autoescape=True)
            | Email.cc_addresses.contains(address, autoescape=True),
        )
        .options(selectinload(Activity.email))
    )
    found = (await session.scalars(query)).all()
    # An inbound email's other party is its sender, an outbound one's its
    # recipients; the substring match above also finds longer addresses.
    return [a for a in found if address in _other_addresses(a)]


def _other_addresses(activity: Activity) -> set[str]:
    email = activity.email
    if email is None:
        return set()
    if activity.direction == "inbound":
        return {email.from_address}
    recipients = f"{email.to_addresses},{email.cc_addresses}".split(",")
    return {address.strip() for address in recipients if address.strip()}


async def _attach(
    session: AsyncSession,
    customer_id: int,
    activities: list[Activity],
    zone: ZoneInfo,
) -> None:
    earliest = min(activity.occurred_at for activity in activities)
    plans = await session.run_sync(
        lambda sync: PlanIndex.load(sync, {customer_id}, earliest)
    )
    for activity in activities:
        activity.customer_id = customer_id
        activity.plan_id = plans.open_at(customer_id, activity.occurred_at)
    await session.flush()
    # Unmatched touches had no customer, so only this customer's facts change.
    customers = {customer_id}
    await session.run_sync(lambda sync: firsts.refresh(sync, zone, customers))
