"""Loading the demo company into an empty database."""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from capture import demo_data
from capture.accounts import add_company_number, add_user
from capture.models import ContactPoint, Customer, User

log = logging.getLogger(__name__)


async def load_demo(
    session: AsyncSession, default_region: str, password_hash: str | None = None
) -> bool:
    """Add the demo users, numbers and customers; False if already loaded.

    Every demo user gets `password_hash`. With None, no demo user can log in.
    """
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
            password_hash=password_hash,
        )
        owners[rep.email] = user.id
    for email, name, role, team in demo_data.STAFF:
        await add_user(
            session,
            email=email,
            name=name,
            role=role,
            default_region=default_region,
            team=team,
            password_hash=password_hash,
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
