"""The per-rep summary: actions, sales, new value and targets for a period.

A touch belongs to the rep who made or received it; deals, payments and
opportunities to the deal's owner; customers to their owner. Calls are made
plus received; answered calls have talk time above zero; talk time is the
sum of Twilio's `CallDuration`. Automatic email is not a touch.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, func, or_, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from capture.access import Viewer, visible_users
from capture.models import (
    Customer,
    Deal,
    Payment,
    Plan,
    Team,
    TouchDay,
    TouchMonth,
    User,
)
from reports.busy import flag_busy_not_converting
from reports.periods import DateRange

Money = dict[str, int]


@dataclass
class RepSummary:
    rep_id: int
    name: str
    email: str
    team: str | None
    calls: int = 0
    calls_made: int = 0
    calls_received: int = 0
    answered_calls: int = 0
    talk_seconds: int = 0
    sms: int = 0
    sms_sent: int = 0
    sms_received: int = 0
    emails: int = 0
    emails_sent: int = 0
    emails_received: int = 0
    other_touches: int = 0
    signed: Money = field(default_factory=dict)
    collected: Money = field(default_factory=dict)
    new_opportunities: int = 0
    new_opportunity_amount: Money = field(default_factory=dict)
    new_customers: int = 0
    won_customers: int = 0
    won_amount: Money = field(default_factory=dict)
    lost_customers: int = 0
    lost_amount: Money = field(default_factory=dict)
    plans_due: int = 0
    plans_fulfilled: int = 0
    plan_fulfilment_rate: float | None = None
    busy_not_converting: bool = False
    # The figures that raised the flag, when it is raised.
    busy_figures: dict[str, float] = field(default_factory=dict)

    @property
    def actions(self) -> int:
        """Touches of every channel: the volume side of the busy flag."""
        return self.calls + self.sms + self.emails + self.other_touches

    def to_json(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["actions"] = self.actions
        for key, value in data.items():
            if isinstance(value, dict) and key != "busy_figures":
                data[key] = format_money(value)
        return data


def format_money(amounts: Money) -> dict[str, str]:
    """Minor units to decimal strings per currency (2 decimals)."""
    return {
        currency: str(Decimal(minor).scaleb(-2))
        for currency, minor in sorted(amounts.items())
    }


async def rep_summaries(
    session: AsyncSession,
    period: DateRange,
    viewer: Viewer,
    team_id: int | None = None,
) -> list[RepSummary]:
    """Return the summary of each rep the viewer may see, by name.

    `team_id` narrows the reps to one team.
    """
    reps = await _reps(session, viewer, team_id)
    await _add_touches(session, period, reps)
    await _add_sales(session, period, reps)
    await _add_customers(session, period, reps)
    await _add_plans(session, period, reps)
    flag_busy_not_converting(list(reps.values()))
    return sorted(reps.values(), key=lambda summary: summary.name.lower())


async def _reps(
    session: AsyncSession, viewer: Viewer, team_id: int | None
) -> dict[int, RepSummary]:
    query = (
        select(User.id, User.name, User.email, Team.name)
        .outerjoin(Team, User.team_id == Team.id)
        .where(User.role == "rep", visible_users(viewer))
        .order_by(User.id)
    )
    if team_id is not None:
        query = query.where(User.team_id == team_id)
    return {
        rep_id: RepSummary(rep_id, name, email, team)
        for rep_id, name, email, team in await session.execute(query)
    }


def _in(column: Any, period: DateRange) -> Any:
    return and_(column >= period.start, column < period.end)


# Which summary field counts the touches of a (channel, direction) in the
# daily counts; a channel missing here counts as an other touch.
TOUCH_FIELDS: dict[tuple[str, str], str] = {
    ("call", "outbound"): "calls_made",
    ("call", "inbound"): "calls_received",
    ("sms", "outbound"): "sms_sent",
    ("sms", "inbound"): "sms_received",
    ("mms", "outbound"): "sms_sent",
    ("mms", "inbound"): "sms_received",
    ("email", "outbound"): "emails_sent",
    ("email", "inbound"): "emails_received",
}


def _counts(model: Any, condition: ColumnElement[bool]) -> Any:
    return (
        select(
            model.rep_id,
            model.channel,
            model.direction,
            func.sum(model.touches),
            func.sum(model.answered),
            func.sum(model.talk_seconds),
        )
        .where(condition)
        .group_by(model.rep_id, model.channel, model.direction)
    )


async def _add_touches(
    session: AsyncSession, period: DateRange, reps: dict[int, RepSummary]
) -> None:
    """Add touch counts from the monthly and daily counts, never from the touches.

    Whole calendar months come from `touch_months`, the days of a month
    the period covers only in part from `touch_days`.
    """
    months, days = split_months(period.first, period.last)
    parts: list[Any] = []
    if months is not None:
        parts.append(
            _counts(
                TouchMonth,
                and_(TouchMonth.month >= months[0], TouchMonth.month < months[1]),
            )
        )
    if days:
        parts.append(
            _counts(
                TouchDay,
                or_(*(and_(TouchDay.day >= a, TouchDay.day <= b) for a, b in days)),
            )
        )
    query: Any = union_all(*parts) if len(parts) > 1 else parts[0]
    for rep_id, channel, direction, touches, answered, talk in await session.execute(
        query
    ):
        summary = reps.get(rep_id)
        if summary is None:
            continue
        name = TOUCH_FIELDS.get((channel, direction), "other_touches")
        setattr(summary, name, getattr(summary, name) + int(touches))
        summary.answered_calls += int(answered or 0)
        summary.talk_seconds += int(talk or 0)
    for summary in reps.values():
        summary.calls = summary.calls_made + summary.calls_received
        summary.sms = summary.sms_sent + summary.sms_received
        summary.emails = summary.emails_sent + summary.emails_received


def split_months(
    first: date, last: date
) -> tuple[tuple[date, date] | None, list[tuple[date, date]]]:
    """Split the days `first`..`last` into whole calendar months and other days.

    Returns the first days of the whole months as [start, end), or None when
    there is none, and the remaining days as inclusive (first, last) pairs.
    """
    start = first if first.day == 1 else _next_month(first)
    following = last + timedelta(days=1)
    # The first day after the whole months: `last` ends a month or it does not.
    end = following if following.day == 1 else last.replace(day=1)
    if start >= end:
        return None, [(first, last)]
    days = []
    if first < start:
        days.append((first, start - timedelta(days=1)))
    if end <= last:
        days.append((end, last))
    return (start, end), days


def _next_month(day: date) -> date:
    return (day.replace(day=1) + timedelta(days=32)).replace(day=1)


async def _add_sales(
    session: AsyncSession, period: DateRange, reps: dict[int, RepSummary]
) -> None:
    signed = select(Deal.owner_id, Deal.currency, func.sum(Deal.signed_minor)).where(
        Deal.stage == "won", _in(Deal.won_at, period)
    )
    for owner, currency, amount in await session.execute(
        signed.group_by(Deal.owner_id, Deal.currency)
    ):
        _add_money(reps, owner, "signed", currency, amount)
    collected = (
        select(Deal.owner_id, Payment.currency, func.sum(Payment.amount_minor))
        .join(Deal, Payment.deal_id == Deal.id)
        .where(_in(Payment.received_at, period))
        .group_by(Deal.owner_id, Payment.currency)
    )
    for owner, currency, amount in await session.execute(collected):
        _add_money(reps, owner, "collected", currency, amount)
    opened = (
        select(
            Deal.owner_id, Deal.currency, func.count(), func.sum(Deal.expected_minor)
        )
        .where(_in(Deal.created_at, period))
        .group_by(Deal.owner_id, Deal.currency)
    )
    for owner, currency, count, amount in await session.execute(opened):
        if owner in reps:
            reps[owner].new_opportunities += count
        _add_money(reps, owner, "new_opportunity_amount", currency, amount)


async def _add_customers(
    session: AsyncSession, period: DateRange, reps: dict[int, RepSummary]
) -> None:
    created = (
        select(Customer.owner_id, func.count())
        .where(_in(Customer.created_at, period))
        .group_by(Customer.owner_id)
    )
    for owner, count in await session.execute(created):
        if owner in reps:
            reps[owner].new_customers = count
    await _add_won_customers(session, period, reps)
    lost = (
        select(
            Customer.owner_id,
            Deal.currency,
            func.count(func.distinct(Customer.id)),
            func.sum(Deal.expected_minor),
        )
        .outerjoin(Deal, and_(Deal.customer_id == Customer.id, Deal.stage == "lost"))
        .where(Customer.status == "lost", _in(Customer.closed_at, period))
        .group_by(Customer.owner_id, Deal.currency)
    )
    for owner, currency, count, amount in await session.execute(lost):
        if owner in reps:
            reps[owner].lost_customers += count
        if currency is not None:
            _add_money(reps, owner, "lost_amount", currency, amount)


async def _add_won_customers(
    session: AsyncSession, period: DateRange, reps: dict[int, RepSummary]
) -> None:
    # A customer's first deals are their won deals with the earliest time:
    # those won in the period with no won deal of the customer before them.
    earlier = aliased(Deal, name="earlier")
    won_before = exists().where(
        earlier.customer_id == Deal.customer_id,
        earlier.stage == "won",
        earlier.won_at < Deal.won_at,
    )
    query = (
        select(
            Customer.owner_id, Deal.currency, func.count(), func.sum(Deal.signed_minor)
        )
        .join(Customer, Customer.id == Deal.customer_id)
        .where(Deal.stage == "won", _in(Deal.won_at, period), ~won_before)
        .group_by(Customer.owner_id, Deal.currency)
    )
    totals: dict[int | None, int] = defaultdict(int)
    for owner, currency, count, amount in await session.execute(query):
        totals[owner] += count
        _add_money(reps, owner, "won_amount", currency, amount)
    for owner, count in totals.items():
        if owner in reps:
            reps[owner].won_customers = count


def _add_money(
    reps: dict[int, RepSummary],
    owner: int | None,
    name: str,
    currency: str,
    amount: Any,
) -> None:
    if owner not in reps or amount is None:
        return
    money: Money = getattr(reps[owner], name)
    money[currency] = money.get(currency, 0) + int(amount)


def fulfilled_plan() -> ColumnElement[bool]:
    """Filter on `Plan`: done no later than the end of its due window."""
    return and_(
        Plan.status == "done",
        or_(Plan.due_end.is_(None), Plan.closed_at <= Plan.due_end),
    )


async def _add_plans(
    session: AsyncSession, period: DateRange, reps: dict[int, RepSummary]
) -> None:
    """Plans whose window ended in the period, and the share fulfilled in time.

    Cancelled plans do not count.
    """
    query = (
        select(Plan.owner_id, func.count(), func.count().filter(fulfilled_plan()))
        .where(_in(Plan.due_end, period), Plan.status != "cancelled")
        .group_by(Plan.owner_id)
    )
    for owner, due, fulfilled in await session.execute(query):
        summary = reps.get(owner) if owner is not None else None
        if summary is None:
            continue
        summary.plans_due, summary.plans_fulfilled = int(due), int(fulfilled)
        summary.plan_fulfilment_rate = fulfilled / due if due else None
