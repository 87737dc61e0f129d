"""Matching phone numbers and Twilio parties to customers and reps."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import phonenumbers
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from capture.models import CompanyNumber, ContactPoint, Customer, User

# Twilio reports withheld callers as these numbers: anonymous, restricted.
WITHHELD_NUMBERS = frozenset({"+266696687", "+7378742833"})
WITHHELD_WORDS = frozenset({"anonymous", "restricted", "unknown", "private", ""})


class PartyKind(StrEnum):
    NUMBER = "number"
    CLIENT = "client"
    SIP = "sip"
    WITHHELD = "withheld"
    INVALID = "invalid"


@dataclass(frozen=True)
class Party:
    """One side of a call or message as Twilio reported it."""

    kind: PartyKind
    # E.164 for numbers, the identity for client:, the URI for sip:.
    value: str
    raw: str


def parse_party(raw: str, default_region: str) -> Party:
    """Classify a Twilio `From`/`To` value and normalise numbers to E.164."""
    text = raw.strip()
    lowered = text.lower()
    if lowered.startswith("client:"):
        return Party(PartyKind.CLIENT, text[len("client:") :], raw)
    if lowered.startswith("sip:"):
        return Party(PartyKind.SIP, text, raw)
    if lowered in WITHHELD_WORDS:
        return Party(PartyKind.WITHHELD, "", raw)
    number = normalize_phone(text, default_region)
    if number is None:
        return Party(PartyKind.INVALID, "", raw)
    if number in WITHHELD_NUMBERS:
        return Party(PartyKind.WITHHELD, number, raw)
    return Party(PartyKind.NUMBER, number, raw)


def normalize_phone(text: str, default_region: str) -> str | None:
    """Return `text` as E.164, or None when it is not a possible number."""
    try:
        parsed = phonenumbers.parse(text, default_region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def mask_phone(number: str) -> str:
    """Keep the last three digits of a number, for logs."""
    if len(number) <= 4:
        return "***"
    return "*" * (len(number) - 3) + number[-3:]


async def find_rep(session: AsyncSession, party: Party) -> User | None:
    """Return the active user whose phone or client identity is `party`."""
    if party.kind is PartyKind.NUMBER:
        condition = User.phone == party.value
    elif party.kind is PartyKind.CLIENT:
        condition = User.client_identity == party.value
    else:
        return None
    result = await session.execute(select(User).where(condition, User.active))
    return result.scalar_one_or_none()


async def is_company_number(session: AsyncSession, party: Party) -> bool:
    if party.kind is not PartyKind.NUMBER:
        return False
    result = await session.execute(
        select(CompanyNumber.id).where(CompanyNumber.phone == party.value)
    )
    return result.first() is not None


async def find_customer_by_phone(session: AsyncSession, number: str) -> Customer | None:
    """Return the customer owning `number`, the oldest one when several do."""
    result = await session.execute(
        select(Customer)
        .join(ContactPoint)
        .where(ContactPoint.kind == "phone", ContactPoint.value == number)
        .order_by(Customer.id)
        .limit(1)
    )
    return result.scalar_one_or_none()


async def create_lead(
    session: AsyncSession, number: str, owner_id: int | None
) -> Customer:
    """Create a lead customer for a number no customer owns yet."""
    name = phonenumbers.format_number(
        phonenumbers.parse(number), phonenumbers.PhoneNumberFormat.INTERNATIONAL
    )
    customer = Customer(name=name, owner_id=owner_id, status="lead")
    customer.contact_points.append(ContactPoint(kind="phone", value=number))
    session.add(customer)
    await session.flush()
    return customer
