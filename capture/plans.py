"""Reads of next-step plans: the ones due now, and one customer's chain of plans."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from capture.access import Viewer, visible_plans
from capture.chain import first_touch_in_window, outcome
from capture.models import (
    Activity,
    Call,
    Customer,
    Message,
    Plan,
    Recording,
    Transcript,
    User,
    utcnow,
)
from capture.suggest import Suggestion, suggest

MAX_DUE = 200
# Suggestions come from this many of the newest touches with text, no older
# than SUGGESTION_DAYS and none from before the newest plan was set.
SUGGESTION_TOUCHES = 10
SUGGESTION_DAYS = 30
MAX_SUGGESTIONS = 3


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
    # fulfilled, late or missed (capture.chain.outcome).
    outcome: str = "missed"


@dataclass(frozen=True)
class PlanChain:
    open: Plan | None
    open_owner: User | None
    # Closed and cancelled plans, most recently closed first.
    history: list[ClosedPlan]
    # pending, overdue, fulfilled or late; None without an open plan.
    open_outcome: str | None = None

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
    now = utcnow()
    history = [
        ClosedPlan(
            plan,
            owner,
            touches.get(plan.id, []),
            outcome(plan, _first_touch(plan, touches.get(plan.id, [])), now),
        )
        for plan, owner in closed
    ]
    current = open_plan[0]
    open_outcome = None
    if current is not None:
        first = await session.scalar(
            select(first_touch_in_window()).where(Plan.id == current.id)
        )
        open_outcome = outcome(current, first, now)
    return PlanChain(current, open_plan[1], history, open_outcome)


def _first_touch(plan: Plan, touches: list[Activity]) -> datetime | None:
    """Return the first counted touch at or after the plan's window start."""
    start = plan.due_start or plan.created_at
    counted = [
        t.occurred_at for t in touches if not t.automatic and t.occurred_at >= start
    ]
    return min(counted, default=None)


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


@dataclass(frozen=True)
class TouchSuggestion:
    activity_id: int
    channel: str
    occurred_at: datetime
    suggestion: Suggestion


async def suggested_steps(
    session: AsyncSession, customer_id: int, now: datetime
) -> list[TouchSuggestion]:
    """Suggest next steps from the customer's newest touches, newest first.

    The text of a touch is its SMS body, its summary (an email's subject
    and body, a note) and its call's transcript. Two touches suggesting the
    same window and purpose give one suggestion.
    """
    newest_plan = await session.scalar(
        select(func.max(Plan.created_at)).where(Plan.customer_id == customer_id)
    )
    since = now - timedelta(days=SUGGESTION_DAYS)
    if newest_plan is not None:
        since = max(since, newest_plan)
    query = (
        select(
            Activity.id,
            Activity.channel,
            Activity.occurred_at,
            Activity.summary,
            Message.body,
            Transcript.text,
        )
        .outerjoin(Message, Message.activity_id == Activity.id)
        .outerjoin(Call, Call.activity_id == Activity.id)
        .outerjoin(
            Recording,
            or_(
                Recording.call_sid == Call.call_sid,
                Recording.call_sid == Call.parent_call_sid,
            ),
        )
        .outerjoin(Transcript, Transcript.recording_id == Recording.id)
        .where(
            Activity.customer_id == customer_id,
            Activity.automatic.is_(False),
            Activity.occurred_at >= since,
        )
        .order_by(Activity.occurred_at.desc(), Activity.id.desc())
        .limit(SUGGESTION_TOUCHES * 2)
    )
    found: list[TouchSuggestion] = []
    seen: set[tuple[str, str]] = set()
    for activity_id, channel, occurred_at, summary, body, transcript in (
        await session.execute(query)
    ).all():
        text = "\n".join(part for part in (body, summary, transcript) if part)
        suggestion = suggest(text)
        if suggestion is None or (suggestion.window, suggestion.purpose) in seen:
            continue
        seen.add((suggestion.window, suggestion.purpose))
        found.append(TouchSuggestion(activity_id, channel, occurred_at, suggestion))
        if len(found) == MAX_SUGGESTIONS:
            break
    return found
