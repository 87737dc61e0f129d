"""Reads of touches across customers: the latest ones and those with no customer."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from capture.access import Viewer, visible_activities
from capture.models import Activity

RECENT = 20
UNMATCHED_PAGE = 50


# Loader options are immutable, so one tuple serves every query.
DETAILS = (
    selectinload(Activity.call),
    selectinload(Activity.message),
    selectinload(Activity.email),
    selectinload(Activity.customer),
    selectinload(Activity.rep),
)


async def recent_touches(
    session: AsyncSession, viewer: Viewer, limit: int = RECENT
) -> list[Activity]:
    """Return the latest touches the viewer may see, newest first."""
    query = (
        select(Activity)
        .where(visible_activities(viewer))
        .options(*DETAILS)
        .order_by(Activity.occurred_at.desc(), Activity.id.desc())
        .limit(limit)
    )
    return list((await session.scalars(query)).all())


async def unmatched_touches(
    session: AsyncSession, viewer: Viewer, limit: int = UNMATCHED_PAGE
) -> tuple[list[Activity], int]:
    """Return the latest visible touches with no customer, and how many there are.

    Such a touch is visible through its rep alone: a rep's own, a manager's
    team's, or every one for ops and admin.
    """
    condition = Activity.customer_id.is_(None) & visible_activities(viewer)
    query = (
        select(Activity)
        .where(condition)
        .options(*DETAILS)
        .order_by(Activity.occurred_at.desc(), Activity.id.desc())
        .limit(limit)
    )
    total = await session.scalar(select(func.count()).where(condition))
    return list((await session.scalars(query)).all()), int(total or 0)
