"""Context of the customer page around the chain: forms, suggestions, radar."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from capture.access import visible_users
from capture.chain import CLOSED_STATUSES, PLAN_OWNER_ROLES, PURPOSES
from capture.models import Customer, User
from capture.plans import PlanChain, suggested_steps
from capture.radar import LocalTime, PhoneRadar, local_time, phone_radar, same_company
from capture.windows import WINDOWS
from web.access import viewer_of
from web.i18n import locale_of
from web.plans_api import customer_domains
from web.values_api import EDITORS


@dataclass(frozen=True)
class PhoneFacts:
    radar: PhoneRadar
    local: LocalTime | None


async def chain_context(
    request: web.Request, session: AsyncSession, customer: Customer, plans: PlanChain
) -> dict[str, Any]:
    viewer = viewer_of(request)
    now = datetime.now(UTC)
    owners = await session.scalars(
        select(User)
        .where(
            User.active.is_(True),
            User.role.in_(PLAN_OWNER_ROLES),
            visible_users(viewer) | (User.id == viewer.user_id),
        )
        .order_by(User.name)
    )
    domains = customer_domains(customer)
    return {
        "purposes": PURPOSES,
        "windows": WINDOWS,
        "owners": list(owners),
        "can_plan": viewer.role in EDITORS,
        "broken_chain": plans.open is None and customer.status not in CLOSED_STATUSES,
        "suggestions": await suggested_steps(session, customer.id, now),
        "phones": _phones(customer, locale_of(request), now),
        "company_domains": sorted(domains),
        "same_company": await same_company(session, viewer, customer.id, domains),
    }


def _phones(customer: Customer, locale: str, now: datetime) -> dict[str, PhoneFacts]:
    facts = {}
    for point in customer.contact_points:
        if point.kind != "phone":
            continue
        radar = phone_radar(point.value, locale)
        if radar is not None:
            facts[point.value] = PhoneFacts(radar, local_time(radar.time_zone, now))
    return facts
