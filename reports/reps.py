"""The per-rep summary: actions, sales, new value and targets for a period.

A touch belongs to the rep who made or received it; deals, payments and
opportunities to the deal's owner; customers to their owner. Calls are made
plus received; answered calls have talk time above zero; talk time is the
sum of Twilio's `CallDuration`. Automatic email is not a touch.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Select,
    String,
    and_,
    bindparam,
    case,
    cast,
    func,
    literal_column,
    null,
    or_,
    select,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession

from capture.access import Viewer, sees_user
from capture.models import (
    Customer,
    CustomerFirst,
    Deal,
    Payment,
    Plan,
    Team,
    TouchDay,
    TouchMonth,
    User,
)
from capture.rollups import MONTH_COLUMNS, MONTH_COUNTS
from capture.sql import Prepared
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
    """Return the summary of each rep the viewer may see, by name, then by id.

    `team_id` narrows the reps to one team.
    """
    months, days = split_months(period.first, period.last)
    figures = _figures(months is not None, len(days))
    rows = await figures.fetch(session, _parameters(period, months, days))
    reps = {}
    figure_rows = []
    for row in rows:
        if row[0] != "rep":
            figure_rows.append(row)
            continue
        rep_id, rep_team = row[1], row[3]
        if sees_user(viewer, rep_id, rep_team) and team_id in (None, rep_team):
            reps[rep_id] = RepSummary(rep_id, *row[-TEXTS:])
    for row in figure_rows:
        summary = reps.get(row[1])
        if summary is not None:
            _ADD[row[0]](summary, row)
    for summary in reps.values():
        _finish(summary)
    flag_busy_not_converting(list(reps.values()))
    return sorted(
        reps.values(), key=lambda summary: (summary.name.lower(), summary.rep_id)
    )


def _in(column: Any) -> Any:
    """Filter `column` to the period's UTC bounds, bound as `start` and `end`."""
    return and_(column >= bindparam("start"), column < bindparam("end"))


# Every figure of the summary comes from one statement, so that a page costs
# one round trip to the database. Each of its parts gives rows of (kind,
# rep, currency, NUMBERS integers, TEXTS texts), padded with NULLs.
NUMBERS = 9
TEXTS = 3
NO_NUMBER = cast(null(), BigInteger)
NO_TEXT = cast(null(), String(300))
NO_CURRENCY = cast(null(), String(3))


def _part(
    kind: str, rep: Any, currency: Any, *numbers: Any, texts: tuple[Any, ...] = ()
) -> Select[Any]:
    return select(
        literal_column(f"'{kind}'"),
        rep,
        NO_CURRENCY if currency is None else currency,
        # Sums are NUMERIC on PostgreSQL; integers read faster.
        *(cast(number, BigInteger) for number in numbers),
        *[NO_NUMBER] * (NUMBERS - len(numbers)),
        *texts,
        *[NO_TEXT] * (TEXTS - len(texts)),
    )


def _reps_part() -> Select[Any]:
    """Select every rep with their team id, name, email and team name.

    The viewer's scope is applied to the rows read, so that one statement
    serves every viewer.
    """
    return (
        _part(
            "rep",
            User.id,
            None,
            User.team_id,
            texts=(User.name, User.email, Team.name),
        )
        .select_from(User)
        .outerjoin(Team, User.team_id == Team.id)
        .where(User.role == "rep")
    )


@functools.cache
def _figures(whole_months: bool, day_ranges: int) -> Prepared:
    """Return the statement for a period with or without whole months and
    with 0 to 2 ranges of other days. It is compiled once for each database."""

    def build(_: str) -> Any:
        return union_all(
            _reps_part(),
            *_touch_parts(whole_months, day_ranges),
            *_sales_parts(),
            *_customer_parts(),
            _plans_part(),
        )

    return Prepared(build)


def _parameters(
    period: DateRange,
    months: tuple[date, date] | None,
    days: list[tuple[date, date]],
) -> dict[str, Any]:
    parameters: dict[str, Any] = {"start": period.start, "end": period.end}
    if months is not None:
        parameters["months_start"], parameters["months_end"] = months
    for index, (first, last) in enumerate(days):
        parameters[f"first_{index}"], parameters[f"last_{index}"] = first, last
    return parameters


# The columns of a month row that split its touches, in the order of a
# touch part's numbers. After them come every touch, answered calls and
# talk time. Touches not counted in these columns are other touches.
SPLIT = MONTH_COUNTS[1:7]


def _touch_part(table: Any, splits: Iterable[Any], condition: Any) -> Select[Any]:
    """Sum `table`'s kept counts that match `condition`, one row per rep.

    `splits` are the sums of the SPLIT columns, in order.
    """
    return (
        _part(
            "touches",
            table.rep_id,
            None,
            *splits,
            func.sum(table.touches),
            func.sum(table.answered),
            func.sum(table.talk_seconds),
        )
        .where(condition)
        .group_by(table.rep_id)
    )


def _month_counts() -> Select[Any]:
    """Sum the kept counts of the whole months, one row per rep."""
    months = TouchMonth.__table__.c
    within = and_(
        months.month >= bindparam("months_start"),
        months.month < bindparam("months_end"),
    )
    return _touch_part(months, (func.sum(months[name]) for name in SPLIT), within)


def _day_counts(day_ranges: int) -> Select[Any]:
    """Sum the kept counts of the days, one row per rep, split as a month row."""

    def split(name: str) -> Any:
        matches = or_(
            *(
                and_(TouchDay.channel == channel, TouchDay.direction == direction)
                for (channel, direction), column in MONTH_COLUMNS.items()
                if column == name
            )
        )
        return func.sum(case((matches, TouchDay.touches), else_=0))

    day = TouchDay.day
    ranges = (
        and_(day >= bindparam(f"first_{index}"), day <= bindparam(f"last_{index}"))
        for index in range(day_ranges)
    )
    return _touch_part(TouchDay, (split(name) for name in SPLIT), or_(*ranges))


def _touch_parts(whole_months: bool, day_ranges: int) -> list[Select[Any]]:
    """Build the touch parts from the monthly and daily counts, never the touches.

    Whole calendar months come from `touch_months`, the days of a month
    the period covers only in part from `touch_days`.
    """
    parts = []
    if whole_months:
        parts.append(_month_counts())
    if day_ranges:
        parts.append(_day_counts(day_ranges))
    return parts


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


def _sales_parts() -> list[Select[Any]]:
    signed = (
        _part("signed", Deal.owner_id, Deal.currency, func.sum(Deal.signed_minor))
        .where(Deal.stage == "won", _in(Deal.won_at))
        .group_by(Deal.owner_id, Deal.currency)
    )
    collected = (
        _part(
            "collected",
            Deal.owner_id,
            Payment.currency,
            func.sum(Payment.amount_minor),
        )
        .select_from(Payment)
        .join(Deal, Payment.deal_id == Deal.id)
        .where(_in(Payment.received_at))
        .group_by(Deal.owner_id, Payment.currency)
    )
    opened = (
        _part(
            "opened",
            Deal.owner_id,
            Deal.currency,
            func.count(),
            func.sum(Deal.expected_minor),
        )
        .where(_in(Deal.created_at))
        .group_by(Deal.owner_id, Deal.currency)
    )
    return [signed, collected, opened]


def _customer_parts() -> list[Select[Any]]:
    created = (
        _part("created", Customer.owner_id, None, func.count())
        .where(_in(Customer.created_at))
        .group_by(Customer.owner_id)
    )
    # Lost customers are counted apart from their amounts, because a customer
    # whose lost deals are in several currencies is still one lost customer.
    lost = (
        _part("lost", Customer.owner_id, None, func.count())
        .where(Customer.status == "lost", _in(Customer.closed_at))
        .group_by(Customer.owner_id)
    )
    lost_amount = (
        _part(
            "lost_amount",
            Customer.owner_id,
            Deal.currency,
            func.sum(Deal.expected_minor),
        )
        .select_from(Customer)
        .join(Deal, and_(Deal.customer_id == Customer.id, Deal.stage == "lost"))
        .where(Customer.status == "lost", _in(Customer.closed_at))
        .group_by(Customer.owner_id, Deal.currency)
    )
    return [created, _won_part(), lost, lost_amount]


def _won_part() -> Select[Any]:
    """Count the customers whose first deal was won in the period, with its amount.

    The first deal is the one `customer_firsts` keeps, as on the KPI page.
    Of two deals won at the same first moment, it is the lower id.
    """
    firsts = CustomerFirst
    return (
        _part(
            "won",
            Customer.owner_id,
            firsts.currency,
            func.count(),
            func.sum(firsts.signed_minor),
        )
        .select_from(firsts)
        .join(Customer, Customer.id == firsts.customer_id)
        .where(_in(firsts.first_won_at))
        .group_by(Customer.owner_id, firsts.currency)
    )


def _plans_part() -> Select[Any]:
    """Count the plans whose window ended in the period, and those fulfilled in time.

    Cancelled plans do not count.
    """
    return (
        _part(
            "plans",
            Plan.owner_id,
            None,
            func.count(),
            func.count().filter(fulfilled_plan()),
        )
        .where(_in(Plan.due_end), Plan.status != "cancelled")
        .group_by(Plan.owner_id)
    )


# A figures row: kind, rep, currency, then its numbers from index 3.
Row = tuple[Any, ...]


def _add_touches(summary: RepSummary, row: Row) -> None:
    # In the order of SPLIT, then every touch, answered calls and talk time.
    calls_made, calls_received, sms_sent, sms_received = row[3:7]
    emails_sent, emails_received = row[7:9]
    total, answered, talk_seconds = row[9:12]
    summary.calls_made += calls_made
    summary.calls_received += calls_received
    summary.sms_sent += sms_sent
    summary.sms_received += sms_received
    summary.emails_sent += emails_sent
    summary.emails_received += emails_received
    split_total = sum(row[3:9])
    summary.other_touches += total - split_total
    summary.answered_calls += answered
    summary.talk_seconds += talk_seconds


def _add_money(money: Money, currency: str | None, amount: int | None) -> None:
    if currency is not None and amount is not None:
        money[currency] = money.get(currency, 0) + amount


def _add_signed(summary: RepSummary, row: Row) -> None:
    _add_money(summary.signed, row[2], row[3])


def _add_collected(summary: RepSummary, row: Row) -> None:
    _add_money(summary.collected, row[2], row[3])


def _add_opened(summary: RepSummary, row: Row) -> None:
    summary.new_opportunities += row[3]
    _add_money(summary.new_opportunity_amount, row[2], row[4])


def _add_created(summary: RepSummary, row: Row) -> None:
    summary.new_customers += row[3]


def _add_won(summary: RepSummary, row: Row) -> None:
    summary.won_customers += row[3]
    _add_money(summary.won_amount, row[2], row[4])


def _add_lost(summary: RepSummary, row: Row) -> None:
    summary.lost_customers += row[3]


def _add_lost_amount(summary: RepSummary, row: Row) -> None:
    _add_money(summary.lost_amount, row[2], row[3])


def _add_plans(summary: RepSummary, row: Row) -> None:
    due, fulfilled = row[3], row[4]
    summary.plans_due, summary.plans_fulfilled = due, fulfilled
    summary.plan_fulfilment_rate = fulfilled / due if due else None


# The function that adds each kind of figures row to a rep's summary.
_ADD: dict[str, Callable[[RepSummary, Row], None]] = {
    "touches": _add_touches,
    "signed": _add_signed,
    "collected": _add_collected,
    "opened": _add_opened,
    "created": _add_created,
    "won": _add_won,
    "lost": _add_lost,
    "lost_amount": _add_lost_amount,
    "plans": _add_plans,
}


def _finish(summary: RepSummary) -> None:
    summary.calls = summary.calls_made + summary.calls_received
    summary.sms = summary.sms_sent + summary.sms_received
    summary.emails = summary.emails_sent + summary.emails_received


def fulfilled_plan() -> ColumnElement[bool]:
    """Filter on `Plan`: done no later than the end of its due window."""
    return and_(
        Plan.status == "done",
        or_(Plan.due_end.is_(None), Plan.closed_at <= Plan.due_end),
    )
