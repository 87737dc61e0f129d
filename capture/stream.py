"""The activity stream: recording touches once and attaching them to plans."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from capture.models import Activity, Plan


async def plan_open_at(
    session: AsyncSession, customer_id: int, moment: datetime
) -> int | None:
    """Return the id of the customer's plan that was open at `moment`."""
    result = await session.execute(
        select(Plan.id)
        .where(
            Plan.customer_id == customer_id,
            Plan.created_at <= moment,
            or_(Plan.closed_at.is_(None), Plan.closed_at > moment),
            Plan.status != "cancelled",
        )
        .order_by(Plan.created_at.desc())
        .limit(1)
    )
    return result.scalar_one_or_none()


async def find_activity(session: AsyncSession, external_key: str) -> Activity | None:
    result = await session.execute(
        select(Activity).where(Activity.external_key == external_key)
    )
    return result.scalar_one_or_none()


async def add_activity(
    session: AsyncSession,
    *,
    external_key: str,
    channel: str,
    direction: str,
    occurred_at: datetime,
    customer_id: int | None,
    rep_id: int | None,
    summary: str = "",
) -> Activity:
    """Add a touch, attached to the customer's plan open at `occurred_at`."""
    plan_id = None
    if customer_id is not None:
        plan_id = await plan_open_at(session, customer_id, occurred_at)
    activity = Activity(
        external_key=external_key,
        channel=channel,
        direction=direction,
        occurred_at=occurred_at,
        customer_id=customer_id,
        rep_id=rep_id,
        plan_id=plan_id,
        summary=summary,
    )
    session.add(activity)
    await session.flush()
    return activity


async def move_activity_time(
    session: AsyncSession, activity: Activity, occurred_at: datetime
) -> None:
    """Move a touch earlier when an earlier event of it arrives late."""
    if occurred_at >= activity.occurred_at:
        return
    activity.occurred_at = occurred_at
    if activity.customer_id is not None:
        activity.plan_id = await plan_open_at(
            session, activity.customer_id, occurred_at
        )
