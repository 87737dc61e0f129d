"""Deciding an email's rep, customer and direction from its addresses.

The side whose address is a user's is the rep's side: mail from a user is
outbound, mail to one is inbound. The customer is on the other side, found
by exact address and then by the address's company domain. Free-mail
domains, the capture domains and the users' own domains never identify a
company. A forward from a rep is matched by the original message's parties.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from capture.email_headers import Address
from capture.email_parse import ParsedEmail
from capture.models import ContactPoint, Customer, User

# Providers whose domain does not identify the sender's company.
FREE_MAIL_DOMAINS = frozenset(
    {
        "126.com",
        "139.com",
        "163.com",
        "aim.com",
        "aliyun.com",
        "aol.com",
        "foxmail.com",
        "gmail.com",
        "gmx.de",
        "gmx.net",
        "googlemail.com",
        "hanmail.net",
        "hotmail.com",
        "icloud.com",
        "live.com",
        "mac.com",
        "mail.com",
        "mail.ru",
        "me.com",
        "msn.com",
        "naver.com",
        "outlook.com",
        "proton.me",
        "protonmail.com",
        "qq.com",
        "sina.com",
        "sohu.com",
        "web.de",
        "yahoo.co.jp",
        "yahoo.com",
        "yandex.ru",
        "yeah.net",
        "zoho.com",
    }
)


@dataclass(frozen=True)
class EmailParties:
    direction: str
    rep_id: int | None
    customer_id: int | None
    # The address matched to the customer, for logs and the inbox.
    counterpart: str | None
    occurred_at: datetime | None
    forwarded_by: str | None
    # The parties of the message the touch is: a forward's original, else
    # the email's own.
    sender: Address
    to: tuple[Address, ...]
    cc: tuple[Address, ...]


def domain_of(address: str) -> str:
    return address.rpartition("@")[2]


def resolve_parties(
    session: Session, parsed: ParsedEmail, capture_domains: tuple[str, ...]
) -> EmailParties:
    """Return the direction, rep and customer of an email."""
    every = [parsed.sender, *parsed.to, *parsed.cc]
    if parsed.forwarded is not None:
        original = parsed.forwarded
        every += [original.sender, *original.to, *original.cc]
    users = _users_by_address(session, {a.address for a in every})

    sender, to, cc = parsed.sender, parsed.to, parsed.cc
    sent_at = parsed.sent_at
    forwarded_by = None
    if parsed.forwarded is not None and sender.address in users:
        forwarded_by = sender.address
        original = parsed.forwarded
        sender, to, cc = original.sender, original.to, original.cc
        sent_at = original.sent_at or sent_at

    own_domains = set(capture_domains) | {domain_of(a) for a in users}
    recipients = [
        a.address for a in (*to, *cc) if domain_of(a.address) not in capture_domains
    ]
    if sender.address in users:
        direction = "outbound"
        rep_id: int | None = users[sender.address]
        others = [a for a in recipients if a not in users]
    else:
        direction = "inbound"
        rep_id = next((users[a] for a in recipients if a in users), None)
        others = [sender.address, *(a for a in recipients if a not in users)]
    if rep_id is None and forwarded_by is not None:
        rep_id = users[forwarded_by]

    customer = match_customer(session, list(dict.fromkeys(others)), own_domains)
    customer_id = counterpart = None
    if customer is not None:
        customer_id, owner_id, counterpart = customer
        if rep_id is None:
            rep_id = owner_id
    return EmailParties(
        direction,
        rep_id,
        customer_id,
        counterpart,
        sent_at,
        forwarded_by,
        sender,
        to,
        cc,
    )


def _users_by_address(session: Session, addresses: set[str]) -> dict[str, int]:
    if not addresses:
        return {}
    rows = session.execute(
        select(User.email, User.id).where(
            User.email.in_(sorted(addresses)), User.active
        )
    )
    return {email.lower(): user_id for email, user_id in rows}


def match_customer(
    session: Session, addresses: list[str], own_domains: set[str]
) -> tuple[int, int | None, str] | None:
    """Return (customer id, owner id, address) of the first address that matches.

    Every address is tried by exact match before any by domain. An address
    or domain that several customers share matches none of them.
    """
    if not addresses:
        return None
    exact = _group(
        _contact_rows(session, ContactPoint.value.in_(addresses)), lambda v: v
    )
    for address in addresses:
        found = exact.get(address, [])
        if len(found) == 1:
            return found[0][0], found[0][1], address
    for address in addresses:
        domain = domain_of(address)
        if domain in FREE_MAIL_DOMAINS or domain in own_domains:
            continue
        condition = ContactPoint.value.endswith("@" + domain, autoescape=True)
        found = _group(_contact_rows(session, condition), domain_of).get(domain, [])
        if len(found) == 1:
            return found[0][0], found[0][1], address
    return None


ContactRow = tuple[str, int, int | None]


def _contact_rows(session: Session, condition: ColumnElement[bool]) -> list[ContactRow]:
    rows = session.execute(
        select(ContactPoint.value, Customer.id, Customer.owner_id)
        .join(Customer, ContactPoint.customer_id == Customer.id)
        .where(ContactPoint.kind == "email", condition)
    )
    return [(value, customer_id, owner_id) for value, customer_id, owner_id in rows]


def _group(
    rows: list[ContactRow], key_of: Callable[[str], str]
) -> dict[str, list[tuple[int, int | None]]]:
    """Group (customer id, owner id) pairs by a key of the contact value."""
    found: dict[str, list[tuple[int, int | None]]] = {}
    for value, customer_id, owner_id in rows:
        customers = found.setdefault(key_of(value), [])
        if (customer_id, owner_id) not in customers:
            customers.append((customer_id, owner_id))
    return found


def addresses_text(addresses: tuple[Address, ...]) -> str:
    return ", ".join(a.address for a in addresses)
