"""The follow-up chain: setting a customer's next-step plan and completing it.

A customer has at most one open plan; the partial unique index
`uq_plans_one_open` enforces that in the database too. Completing a plan
either opens the next one or closes the customer as won or lost, and a
customer left with neither is a broken chain (see capture/board.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, tzinfo

from sqlalchemy import ScalarSelect, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from capture.access import Viewer, visible_users
from capture.errors import Conflict, InvalidInput, NotFound
from capture.models import Activity, Customer, CustomerChange, Plan, User
from capture.windows import (
    EXACT_WINDOW,
    WINDOWS,
    Due,
    WindowRules,
    exact,
    resolve,
    zone_named,
)

PURPOSES = (
    "keep_in_touch",
    "deepen_relationship",
    "nurture_need",
    "uncover_opportunity",
    "counter_competitor",
    "sign_and_collect",
    "courtesy_greeting",
)
# Kinds of step that may follow a completed plan.
NEXT_STEPS = ("plan", "won", "lost", "none")
CLOSED_STATUSES = ("won", "lost")
MAX_NOTE = 2000
# Roles that may own a plan: the people who touch customers.
PLAN_OWNER_ROLES = frozenset({"rep", "manager", "admin"})


@dataclass(frozen=True)
class PlanEntry:
    """A plan as a person sets it: a named window or an exact time, not both."""

    purpose: str
    window: str | None = None
    due_at: datetime | None = None
    note: str = ""
    owner_id: int | None = None
    source_activity_id: int | None = None


@dataclass(frozen=True)
class NextStep:
    """The step after a completed plan: `kind` is one of NEXT_STEPS."""

    kind: str
    plan: PlanEntry | None = None
    reason: str = ""


def check_entry(entry: PlanEntry) -> None:
    """Raise InvalidInput naming the field of the first invalid part of `entry`."""
    if entry.purpose not in PURPOSES:
        raise InvalidInput(
            f"purpose {entry.purpose!r} is unknown; use one of {', '.join(PURPOSES)}",
            "purpose",
        )
    if entry.window is None and entry.due_at is None:
        raise InvalidInput("window or due_at is missing", "window")
    if entry.window is not None and entry.due_at is not None:
        raise InvalidInput("give a window or due_at, not both", "window")
    if entry.window is not None and entry.window not in WINDOWS:
        raise InvalidInput(
            f"window {entry.window!r} is unknown; use one of {', '.join(WINDOWS)}",
            "window",
        )
    if entry.due_at is not None and entry.due_at.tzinfo is None:
        raise InvalidInput("due_at needs a UTC offset", "due_at")
    if len(entry.note) > MAX_NOTE:
        raise InvalidInput(f"note is longer than {MAX_NOTE} characters", "note")


async def set_plan(
    session: AsyncSession,
    viewer: Viewer,
    customer: Customer,
    entry: PlanEntry,
    *,
    now: datetime,
    rules: WindowRules,
    fallback_zone: tzinfo,
) -> Plan:
    """Open a plan for a visible customer that has none open.

    The owner defaults to the customer's owner, then to the viewer. The
    window resolves in the owner's time zone, or in `fallback_zone` (the
    organisation's) when the owner has none.
    """
    check_entry(entry)
    owner = await _owner(session, viewer, entry.owner_id or customer.owner_id)
    open_plan = await session.scalar(
        select(Plan.id).where(Plan.customer_id == customer.id, Plan.status == "open")
    )
    if open_plan is not None:
        raise Conflict(
            f"customer {customer.id} already has open plan {open_plan}; "
            "complete it first",
            "plan",
        )
    due = _due(entry, now, zone_named(owner.timezone, fallback_zone), rules)
    if entry.source_activity_id is not None:
        await _check_source(session, customer.id, entry.source_activity_id)
    customer_id = customer.id
    plan = Plan(
        customer_id=customer_id,
        owner_id=owner.id,
        purpose=entry.purpose,
        window=entry.window or EXACT_WINDOW,
        due_start=due.start,
        due_end=due.end,
        note=entry.note,
        status="open",
        created_at=now,
        source_activity_id=entry.source_activity_id,
    )
    try:
        async with session.begin_nested():
            session.add(plan)
    except IntegrityError:
        # Another request opened a plan for this customer in the meantime.
        raise Conflict(
            f"customer {customer_id} already has an open plan", "plan"
        ) from None
    return plan


async def complete_plan(
    session: AsyncSession,
    viewer: Viewer,
    customer: Customer,
    plan_id: int,
    step: NextStep,
    *,
    now: datetime,
    rules: WindowRules,
    fallback_zone: tzinfo,
) -> Plan | None:
    """Mark the open plan done and take the next step; return the next plan.

    Everything happens in the caller's transaction, so an invalid next plan
    leaves the completed plan open.
    """
    if step.kind not in NEXT_STEPS:
        raise InvalidInput(
            f"next {step.kind!r} is unknown; use one of {', '.join(NEXT_STEPS)}",
            "next",
        )
    if step.kind == "plan" and step.plan is None:
        raise InvalidInput("the next plan is missing", "plan")
    if step.plan is not None:
        check_entry(step.plan)
    if len(step.reason) > MAX_NOTE:
        raise InvalidInput(f"reason is longer than {MAX_NOTE} characters", "reason")
    plan = await session.get(Plan, plan_id)
    if plan is None or plan.customer_id != customer.id:
        raise NotFound(f"plan {plan_id} not found", "plan_id")
    if plan.status != "open":
        raise Conflict(f"plan {plan_id} is {plan.status}, not open", "plan_id")
    plan.status = "done"
    plan.closed_at = now
    await session.flush()
    if step.kind in CLOSED_STATUSES:
        close_customer(session, customer, step.kind, step.reason, viewer, now)
        return None
    if step.plan is None:
        return None
    return await set_plan(
        session,
        viewer,
        customer,
        step.plan,
        now=now,
        rules=rules,
        fallback_zone=fallback_zone,
    )


def close_customer(
    session: AsyncSession,
    customer: Customer,
    status: str,
    reason: str,
    viewer: Viewer,
    now: datetime,
) -> None:
    """Close the customer as won or lost and keep the change in its history."""
    session.add(
        CustomerChange(
            customer_id=customer.id,
            user_id=viewer.user_id,
            field="status",
            old_value=customer.status,
            new_value=status,
            changed_at=now,
        )
    )
    customer.status = status
    customer.closed_at = now
    customer.closed_reason = reason


def _due(entry: PlanEntry, now: datetime, zone: tzinfo, rules: WindowRules) -> Due:
    if entry.due_at is not None:
        return exact(entry.due_at)
    assert entry.window is not None
    return resolve(entry.window, now, zone, rules)


async def _owner(session: AsyncSession, viewer: Viewer, owner_id: int | None) -> User:
    """Return the plan's owner: an active person the viewer can see."""
    chosen = owner_id if owner_id is not None else viewer.user_id
    owner = await session.scalar(
        select(User).where(
            User.id == chosen,
            User.active.is_(True),
            User.role.in_(PLAN_OWNER_ROLES),
            visible_users(viewer) | (User.id == viewer.user_id),
        )
    )
    if owner is None:
        raise InvalidInput(f"owner {chosen} is not a rep you can assign", "owner_id")
    return owner


async def _check_source(
    session: AsyncSession, customer_id: int, activity_id: int
) -> None:
    found = await session.scalar(
        select(Activity.id).where(
            Activity.id == activity_id, Activity.customer_id == customer_id
        )
    )
    if found is None:
        raise InvalidInput(
            f"touch {activity_id} is not one of this customer's", "source_activity_id"
        )


def first_touch_in_window() -> ScalarSelect[datetime]:
    """Build a subquery of a plan's first counted touch at or after its window start.

    The subquery is correlated to `Plan`. Automatic email does not count.
    """
    return (
        select(func.min(Activity.occurred_at))
        .where(
            Activity.plan_id == Plan.id,
            Activity.automatic.is_(False),
            Activity.occurred_at >= func.coalesce(Plan.due_start, Plan.created_at),
        )
        .correlate(Plan)
        .scalar_subquery()
    )


def outcome(plan: Plan, first_touch: datetime | None, now: datetime) -> str:
    """Return fulfilled, late, missed, overdue or pending for a plan.

    `first_touch` is the plan's earliest touch at or after its window start.
    A touch inside the window fulfils the plan and one after it makes it
    late. A closed plan with no such touch was missed. An open one is
    overdue once its window has ended, because a late touch may still come,
    and pending before that.
    """
    if first_touch is not None:
        if plan.due_end is None or first_touch < plan.due_end:
            return "fulfilled"
        return "late"
    if plan.status != "open":
        return "missed"
    if plan.due_end is not None and plan.due_end <= now:
        return "overdue"
    return "pending"
