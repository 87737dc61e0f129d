"""Matching phone numbers and Twilio parties to customers and reps."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from enum import StrEnum

import phonenumbers
from sqlalchemy import Select, insert, or_, select
from sqlalchemy.orm import Session

from capture.models import CompanyNumber, ContactPoint, Customer, User, utcnow
from capture.sql import Prepared, one_of, values_of

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


@functools.lru_cache(maxsize=4096)
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


@dataclass(frozen=True)
class RepRef:
    id: int
    email: str


@dataclass(frozen=True)
class CustomerRef:
    id: int
    owner_id: int | None


# Compiled once for each database: building and compiling a statement costs
# more than running it on SQLite.
def _reps_query(dialect: str) -> Select[int, str, str | None, str | None]:
    return select(User.id, User.email, User.phone, User.client_identity).where(
        User.active,
        or_(
            one_of(dialect, User.phone, "numbers"),
            one_of(dialect, User.client_identity, "clients"),
        ),
    )


def _company_query(dialect: str) -> Select[str]:
    return select(CompanyNumber.phone).where(
        one_of(dialect, CompanyNumber.phone, "numbers")
    )


def _customers_query(dialect: str) -> Select[str, int, int | None]:
    return (
        select(ContactPoint.value, Customer.id, Customer.owner_id)
        .join(Customer, ContactPoint.customer_id == Customer.id)
        .where(
            ContactPoint.kind == "phone",
            one_of(dialect, ContactPoint.value, "numbers"),
        )
    )


REPS = Prepared(_reps_query)
COMPANY_NUMBERS = Prepared(_company_query)
CUSTOMERS = Prepared(_customers_query)


class Directory:
    """Reps, company numbers and customers of a set of parties, loaded at once.

    Bulk webhook handling resolves every party of a batch with three
    queries instead of several per event. Leads created while handling the
    batch are added, so two events from one unknown number make one lead.
    """

    def __init__(self) -> None:
        self.reps_by_phone: dict[str, RepRef] = {}
        self.reps_by_client: dict[str, RepRef] = {}
        self.company_numbers: set[str] = set()
        self.customers_by_phone: dict[str, CustomerRef] = {}
        # Numbers that more than one customer has: a touch from one of them
        # goes to the unmatched inbox rather than to a guessed customer.
        self.shared_numbers: set[str] = set()

    @classmethod
    def load(cls, session: Session, parties: list[Party]) -> Directory:
        directory = cls()
        numbers = {p.value for p in parties if p.kind is PartyKind.NUMBER}
        clients = {p.value for p in parties if p.kind is PartyKind.CLIENT}
        if not numbers and not clients:
            return directory
        dialect = session.get_bind().dialect.name
        parameters = {
            "numbers": values_of(dialect, numbers),
            "clients": values_of(dialect, clients),
        }
        reps = REPS.rows(session, parameters)
        for rep_id, email, phone, client in reps:
            if phone:
                directory.reps_by_phone[phone] = RepRef(rep_id, email)
            if client:
                directory.reps_by_client[client] = RepRef(rep_id, email)
        company = COMPANY_NUMBERS.rows(session, {"numbers": parameters["numbers"]})
        directory.company_numbers.update(phone for (phone,) in company)
        customers = CUSTOMERS.rows(session, {"numbers": parameters["numbers"]})
        for number, customer_id, owner_id in customers:
            known = directory.customers_by_phone.get(number)
            if known is not None and known.id != customer_id:
                directory.shared_numbers.add(number)
            directory.customers_by_phone[number] = CustomerRef(customer_id, owner_id)
        return directory

    def rep(self, party: Party) -> RepRef | None:
        if party.kind is PartyKind.NUMBER:
            return self.reps_by_phone.get(party.value)
        if party.kind is PartyKind.CLIENT:
            return self.reps_by_client.get(party.value)
        return None

    def is_company(self, party: Party) -> bool:
        return party.kind is PartyKind.NUMBER and party.value in self.company_numbers

    def resolve_legs(
        self, caller: Party, callee: Party
    ) -> tuple[RepRef | None, Party, str]:
        """Return the rep on the call, the other party and the touch direction.

        The rep is whichever side is a rep's phone or `client:` identity. With
        no rep on either side, a company number on the calling side makes the
        touch outbound; otherwise the caller is the customer.
        """
        rep_called = self.rep(callee)
        if rep_called is not None:
            return rep_called, caller, "inbound"
        rep_calling = self.rep(caller)
        if rep_calling is not None:
            return rep_calling, callee, "outbound"
        if self.is_company(caller):
            return None, callee, "outbound"
        return None, caller, "inbound"

    def customer_for(
        self, session: Session, party: Party, rep: RepRef | None
    ) -> CustomerRef | None:
        """Find the customer of a number, or create a lead owned by `rep`.

        Withheld callers, `client:` and `sip:` parties, reps and company
        numbers are never customers. A number that several customers have
        matches none of them, and makes no lead.
        """
        if party.kind is not PartyKind.NUMBER:
            return None
        if self.is_company(party) or self.rep(party) is not None:
            return None
        if party.value in self.shared_numbers:
            return None
        customer = self.customers_by_phone.get(party.value)
        if customer is None:
            customer = create_lead(session, party.value, rep.id if rep else None)
            self.customers_by_phone[party.value] = customer
        return customer


def create_lead(session: Session, number: str, owner_id: int | None) -> CustomerRef:
    """Insert a lead customer for a number no customer owns yet."""
    name = phonenumbers.format_number(
        phonenumbers.parse(number), phonenumbers.PhoneNumberFormat.INTERNATIONAL
    )
    customer_id = session.scalars(
        insert(Customer)
        .values(name=name, owner_id=owner_id, status="lead", created_at=utcnow())
        .returning(Customer.id)
    ).one()
    session.execute(
        insert(ContactPoint).values(
            customer_id=customer_id, kind="phone", value=number, label=""
        )
    )
    return CustomerRef(customer_id, owner_id)
