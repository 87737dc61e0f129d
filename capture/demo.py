"""Loading the demo company into an empty database."""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from capture import demo_data
from capture.accounts import add_company_number, add_user
from capture.models import ContactPoint, Customer, User

log = logging.getLogger(__name__)


async def load_demo(session: AsyncSession, default_region: str) -> bool:
    """Add the demo reps, numbers and customers; False if already loaded."""
    first = demo_data.REPS[0].email
    if await session.scalar(select(User.id).where(User.email == first)):
        return False
    await add_company_number(session, demo_data.ORGANISATION_NUMBER, "Main line")
    owners: dict[str, int] = {}
    for rep in demo_data.REPS:
        user = await add_user(
            session,
            email=rep.email,
            name=rep.name,
            role="rep",
            default_region=default_region,
            phone=rep.phone,
            team=rep.team,
            client_identity=rep.client_identity,
        )
        owners[rep.email] = user.id
    await add_user(
        session,
        email="mia@demo.touchline.test",
        name="Mia Manager",
        role="manager",
        default_region=default_region,
        team="West",
    )
    for item in demo_data.CUSTOMERS:
        customer = Customer(name=item.name, owner_id=owners[item.owner_email])
        customer.contact_points.append(ContactPoint(kind="phone", value=item.phone))
        customer.contact_points.append(ContactPoint(kind="email", value=item.email))
        session.add(customer)
    await session.flush()
    log.info(
        "demo company loaded: reps=%s customers=%s",
        len(owners),
        len(demo_data.CUSTOMERS),
    )
    return True
