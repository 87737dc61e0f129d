"""The parties of a click-to-call: the rep, rung first, then the customer."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from capture.access import Viewer
from capture.errors import Conflict, InvalidInput, NotConfigured
from capture.identity import normalize_phone
from capture.models import CompanyNumber, User
from capture.queries import get_customer


@dataclass(frozen=True)
class ClickToCall:
    customer_id: int
    # The rep's phone in E.164, or `client:<identity>` for a browser rep.
    rep_party: str
    customer_number: str
    caller_id: str


async def plan_click_to_call(
    session: AsyncSession,
    viewer: Viewer,
    customer_id: int,
    phone: str | None,
    *,
    caller_id: str,
    default_region: str,
) -> ClickToCall:
    """Check that the rep, the customer's number and a caller ID are all there.

    `phone` picks one of the customer's numbers; None takes the first. The
    customer must be visible to the rep, or NotFound is raised.
    """
    customer = await get_customer(session, viewer, customer_id)
    rep = await session.get(User, viewer.user_id)
    assert rep is not None
    if rep.phone:
        rep_party = rep.phone
    elif rep.client_identity:
        rep_party = f"client:{rep.client_identity}"
    else:
        raise Conflict(
            "your user has no phone number or client identity to ring first; "
            "an admin sets it on the users page",
            "phone",
        )
    numbers = [
        point.value for point in customer.contact_points if point.kind == "phone"
    ]
    if not numbers:
        raise Conflict(f"customer {customer_id} has no phone number", "phone")
    number = numbers[0] if phone is None else normalize_phone(phone, default_region)
    if number not in numbers:
        raise InvalidInput("phone is not one of the customer's numbers", "phone")
    return ClickToCall(
        customer.id, rep_party, number, await _caller_id(session, caller_id)
    )


async def _caller_id(session: AsyncSession, configured: str) -> str:
    if configured:
        return configured
    first = await session.scalar(
        select(CompanyNumber.phone).order_by(CompanyNumber.id).limit(1)
    )
    if first is None:
        raise NotConfigured(
            "no company number to call from: set caller_id or add a number on "
            "the admin numbers page",
            "caller_id",
        )
    return first
