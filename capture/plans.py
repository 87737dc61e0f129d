"""Reads of next-step plans: the ones due now, and one customer's chain of plans."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from capture.access import Viewer, visible_plans
from capture.models import Activity, Customer, Plan, User, utcnow

MAX_DUE = 200


@dataclass(frozen=True)
class DuePlan:
    plan: Plan
    customer: Customer
    # The plan's owner, or the customer's owner when the plan names none.
    owner: User | None
    overdue: bool


@dataclass(frozen=True)
class ClosedPlan:
    plan: Plan
    owner: User | None
    # Touches attached to the plan, oldest first.
    touches: list[Activity] = field(default_factory=list)


@dataclass(frozen=True)
class PlanChain:
    open: Plan | None
    open_owner: User | None
    # Closed and cancelled plans, most recently closed first.
    history: list[ClosedPlan]

    @property
    def open_overdue(self) -> bool:
        """True when the open plan's window has ended."""
        return bool(self.open and self.open.due_end and self.open.due_end < utcnow())


async def due_plans(
    session: AsyncSession,
    viewer: Viewer,
    *,
    now: datetime,
    day_end: datetime,
    limit: int = MAX_DUE,
) -> list[DuePlan]:
    """Return open visible plans that are overdue or due before `day_end`.

    A plan is overdue when its window ended before `now`, and due when its
    window starts before `day_end` (the end of the viewer's day). Overdue
    plans come first, each group by due time. A plan with no due time is
    never due.
    """
    start = func.coalesce(Plan.due_start, Plan.due_end)
    overdue = Plan.due_end < now
    responsible = func.coalesce(Plan.owner_id, Customer.owner_id)
    query = (
        select(Plan, Customer, User)
        .join(Customer, Plan.customer_id == Customer.id)
        .outerjoin(User, User.id == responsible)
        .where(
            Plan.status == "open", visible_plans(viewer), overdue | (start < day_end)
        )
        .order_by(
            case((overdue, 0), else_=1),
            func.coalesce(Plan.due_end, Plan.due_start),
            Plan.id,
        )
        .limit(limit)
    )
    rows = (await session.execute(query)).all()
    return [
        DuePlan(plan, customer, owner, plan.due_end is not None and plan.due_end < now)
        for plan, customer, owner in rows
    ]


async def customer_plans(session: AsyncSession, customer_id: int) -> PlanChain:
    """Return a customer's open plan and closed plans with their touches.

    The caller checks first that the customer is visible; every touch of a
    visible customer shows, whichever rep made it.
    """
    query = (
        select(Plan, User)
        .outerjoin(User, Plan.owner_id == User.id)
        .where(Plan.customer_id == customer_id)
        .order_by(Plan.closed_at.desc(), Plan.id.desc())
    )
    rows = [(plan, owner) for plan, owner in (await session.execute(query)).all()]
    open_plan = next(((p, o) for p, o in rows if p.status == "open"), (None, None))
    closed = [(plan, owner) for plan, owner in rows if plan.status != "open"]
    touches = await _touches_of_plans(session, [plan.id for plan, _ in closed])
    history = [
        ClosedPlan(plan, owner, touches.get(plan.id, [])) for plan, owner in closed
    ]
    return PlanChain(open_plan[0], open_plan[1], history)


async def _touches_of_plans(
    session: AsyncSession, plan_ids: list[int]
) -> dict[int, list[Activity]]:
    if not plan_ids:
        return {}
    query = (
        select(Activity)
        .where(Activity.plan_id.in_(plan_ids))
        .options(
            selectinload(Activity.call),
            selectinload(Activity.message),
            selectinload(Activity.email),
            selectinload(Activity.rep),
        )
        .order_by(Activity.occurred_at, Activity.id)
    )
    touches: dict[int, list[Activity]] = {}
    for activity in await session.scalars(query):
        if activity.plan_id is not None:
            touches.setdefault(activity.plan_id, []).append(activity)
    return touches
