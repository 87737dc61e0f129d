"""The plan board: plans due today, overdue and missed, and broken chains.

- Due today: open plans whose window has not ended and starts before the
  end of the viewer's day.
- Overdue: open plans whose window has ended.
- Missed: completed plans with no touch at or after their window start,
  whose window ended within `MISSED_DAYS`.
- Broken chain: a customer that is neither won nor lost and has no open
  plan.

Each list follows the viewer's access rules and may be narrowed to one
responsible rep (the plan's owner, else the customer's) and one purpose.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, Select, and_, exists, func, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from capture.access import Viewer, visible_customers, visible_plans
from capture.chain import CLOSED_STATUSES, first_touch_in_window, outcome
from capture.models import Customer, Plan, User

MISSED_DAYS = 30
# Rows per list; the counts cover the rows loaded.
MAX_ROWS = 500
CATEGORIES = ("due_today", "overdue", "missed", "broken")
PlanRows = Select[Plan, Customer, User, datetime | None]


@dataclass(frozen=True)
class BoardFilters:
    rep_id: int | None = None
    purpose: str | None = None


@dataclass(frozen=True)
class BoardPlan:
    plan: Plan
    customer: Customer
    # The plan's owner, or the customer's owner when the plan names none.
    owner: User | None
    outcome: str


@dataclass(frozen=True)
class BrokenChain:
    customer: Customer
    owner: User | None
    # When the customer's last plan was closed; None if it never had one.
    last_closed_at: datetime | None


@dataclass
class Board:
    due_today: list[BoardPlan] = field(default_factory=list)
    overdue: list[BoardPlan] = field(default_factory=list)
    missed: list[BoardPlan] = field(default_factory=list)
    broken: list[BrokenChain] = field(default_factory=list)
    # True when a list stopped at MAX_ROWS.
    truncated: bool = False

    def by_rep(self) -> dict[str, Counter[str]]:
        """Return the count of each category per responsible rep's name."""
        counts: dict[str, Counter[str]] = {}
        for category in CATEGORIES:
            for item in getattr(self, category):
                name = item.owner.name if item.owner else ""
                counts.setdefault(name, Counter())[category] += 1
        return dict(sorted(counts.items()))

    def by_purpose(self) -> dict[str, Counter[str]]:
        """Return the count of each plan category per purpose."""
        counts: dict[str, Counter[str]] = {}
        for category in ("due_today", "overdue", "missed"):
            for item in getattr(self, category):
                counts.setdefault(item.plan.purpose, Counter())[category] += 1
        return counts


def _responsible() -> ColumnElement[int | None]:
    return func.coalesce(Plan.owner_id, Customer.owner_id)


def _plans_query(viewer: Viewer, filters: BoardFilters) -> PlanRows:
    first_touch = first_touch_in_window().label("first_touch")
    query = (
        select(Plan, Customer, User, first_touch)
        .join(Customer, Plan.customer_id == Customer.id)
        .outerjoin(User, User.id == _responsible())
        .where(visible_plans(viewer))
    )
    if filters.rep_id is not None:
        query = query.where(_responsible() == filters.rep_id)
    if filters.purpose is not None:
        query = query.where(Plan.purpose == filters.purpose)
    return query


async def _plans(
    session: AsyncSession,
    query: PlanRows,
    now: datetime,
) -> tuple[list[BoardPlan], bool]:
    rows = (await session.execute(query.limit(MAX_ROWS + 1))).all()
    items = [
        BoardPlan(plan, customer, owner, outcome(plan, first_touch, now))
        for plan, customer, owner, first_touch in rows[:MAX_ROWS]
    ]
    return items, len(rows) > MAX_ROWS


async def load_board(
    session: AsyncSession,
    viewer: Viewer,
    *,
    now: datetime,
    day_end: datetime,
    filters: BoardFilters | None = None,
) -> Board:
    """Load the board of `viewer` at `now`; `day_end` ends the viewer's day."""
    filters = filters or BoardFilters()
    base = _plans_query(viewer, filters)
    is_open = Plan.status == "open"
    due_today, cut_due = await _plans(
        session,
        base.where(
            is_open,
            Plan.due_end >= now,
            func.coalesce(Plan.due_start, Plan.due_end) < day_end,
        ).order_by(Plan.due_end, Plan.id),
        now,
    )
    overdue, cut_overdue = await _plans(
        session,
        base.where(is_open, Plan.due_end < now).order_by(Plan.due_end, Plan.id),
        now,
    )
    missed_since = now - timedelta(days=MISSED_DAYS)
    missed, cut_missed = await _plans(
        session,
        base.where(
            Plan.status == "done",
            Plan.due_end >= missed_since,
            Plan.due_end < now,
            first_touch_in_window().is_(None),
        ).order_by(Plan.due_end.desc(), Plan.id),
        now,
    )
    broken, cut_broken = await broken_chains(session, viewer, filters)
    truncated = cut_due or cut_overdue or cut_missed or cut_broken
    return Board(due_today, overdue, missed, broken, truncated)


async def broken_chains(
    session: AsyncSession, viewer: Viewer, filters: BoardFilters
) -> tuple[list[BrokenChain], bool]:
    """Return visible customers, neither won nor lost, with no open plan."""
    has_open = exists().where(Plan.customer_id == Customer.id, Plan.status == "open")
    last_closed = (
        select(func.max(Plan.closed_at))
        .where(Plan.customer_id == Customer.id)
        .correlate(Customer)
        .scalar_subquery()
        .label("last_closed")
    )
    query = (
        select(Customer, User, last_closed)
        .outerjoin(User, Customer.owner_id == User.id)
        .where(
            visible_customers(viewer),
            Customer.status.not_in(CLOSED_STATUSES),
            ~has_open,
            _owner_filter(filters),
        )
        .order_by(Customer.id)
        .limit(MAX_ROWS + 1)
    )
    rows = (await session.execute(query)).all()
    items = [BrokenChain(c, owner, closed) for c, owner, closed in rows[:MAX_ROWS]]
    return items, len(rows) > MAX_ROWS


def _owner_filter(filters: BoardFilters) -> ColumnElement[bool]:
    if filters.rep_id is None:
        return true()
    return and_(Customer.owner_id == filters.rep_id)
