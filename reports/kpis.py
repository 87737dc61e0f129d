"""Customer KPIs of a calendar period, with comparisons and trends.

Definitions, for a period P in the organisation's time zone (the reports
definitions page says the same in words):

- conversion rate: of the customers created in P, the share whose first
  won deal is won within P;
- repeat-purchase rate: of the customers with a deal won in P, the share
  that had won a deal before their last deal won in P;
- first-order value: the mean signed amount of the first deals won in P,
  per currency;
- follow-up cycle: for the customers whose first deal is won in P, the
  calendar days from their first touch to that win (median and mean);
- follow-up count: for the same customers, the touches from the first one
  up to the moment of that win (mean).

A figure with no data is None, never zero. Touches are read per converting
customer through the (customer, time) index, never by scanning a period.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, and_, func, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from capture.access import Viewer, visible_customers
from capture.models import Activity, Customer, Deal, User
from reports.periods import CalendarPeriod, DateRange

# Figures compared against other periods, in page order.
FIGURES = (
    "conversion_rate",
    "repeat_rate",
    "first_order_value",
    "cycle_days_median",
    "cycle_days_mean",
    "follow_up_count",
)
TREND_PERIODS = 12


@dataclass
class Kpis:
    period: str
    customers_created: int = 0
    converted: int = 0
    conversion_rate: float | None = None
    buyers: int = 0
    repeat_buyers: int = 0
    repeat_rate: float | None = None
    first_deals: int = 0
    # Mean first-deal amount per currency, in major units.
    first_order_value: dict[str, Decimal] = field(default_factory=dict)
    cycle_days_median: float | None = None
    cycle_days_mean: float | None = None
    follow_up_count: float | None = None

    def value(self, name: str) -> float | None:
        """A figure as one number; money figures need a single currency."""
        raw = getattr(self, name)
        if isinstance(raw, dict):
            return float(next(iter(raw.values()))) if len(raw) == 1 else None
        return None if raw is None else float(raw)

    def to_json(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["first_order_value"] = {
            currency: str(amount) for currency, amount in self.first_order_value.items()
        }
        return data


@dataclass
class Comparison:
    figure: str
    current: float | None
    previous: float | None
    year_earlier: float | None

    @property
    def previous_change(self) -> float | None:
        return relative_change(self.current, self.previous)

    @property
    def year_change(self) -> float | None:
        return relative_change(self.current, self.year_earlier)

    def to_json(self) -> dict[str, Any]:
        return {
            "figure": self.figure,
            "current": self.current,
            "previous": self.previous,
            "year_earlier": self.year_earlier,
            "previous_change": self.previous_change,
            "year_change": self.year_change,
        }


def relative_change(current: float | None, before: float | None) -> float | None:
    """(current - before) / before; None when either is missing or before is 0."""
    if current is None or before is None or before == 0:
        return None
    return (current - before) / before


@dataclass
class KpiReport:
    current: Kpis
    previous: Kpis
    year_earlier: Kpis
    trend: list[Kpis]

    @property
    def comparisons(self) -> list[Comparison]:
        return [
            Comparison(
                name,
                self.current.value(name),
                self.previous.value(name),
                self.year_earlier.value(name),
            )
            for name in FIGURES
        ]

    def to_json(self) -> dict[str, Any]:
        return {
            "current": self.current.to_json(),
            "previous": self.previous.to_json(),
            "year_earlier": self.year_earlier.to_json(),
            "comparisons": [item.to_json() for item in self.comparisons],
            "trend": [item.to_json() for item in self.trend],
        }


def customer_scope(viewer: Viewer, team_id: int | None) -> ColumnElement[bool]:
    """Customers the viewer may see, narrowed to one team's owners if given."""
    scope = visible_customers(viewer)
    if team_id is None:
        return scope
    team_owners = select(User.id).where(User.team_id == team_id)
    return and_(scope, Customer.owner_id.in_(team_owners))


async def kpi_report(
    session: AsyncSession, period: CalendarPeriod, scope: ColumnElement[bool]
) -> KpiReport:
    trend = [
        await compute_kpis(session, period.shifted(offset), scope)
        for offset in range(1 - TREND_PERIODS, 1)
    ]
    return KpiReport(
        current=trend[-1],
        previous=trend[-2],
        year_earlier=await compute_kpis(session, period.year_earlier(), scope),
        trend=trend,
    )


async def compute_kpis(
    session: AsyncSession,
    period: CalendarPeriod,
    scope: ColumnElement[bool] | None = None,
) -> Kpis:
    """Compute the KPIs of one period; a `scope` of None means every customer."""
    scope = true() if scope is None else scope
    span = period.range
    kpis = Kpis(period.label)
    await _add_conversion(session, span, scope, kpis)
    await _add_repeats(session, span, scope, kpis)
    firsts = await _first_deals(session, span, scope)
    _add_first_order_value(firsts, kpis)
    await _add_follow_up(session, span, firsts, kpis)
    return kpis


def _between(column: Any, span: DateRange) -> ColumnElement[bool]:
    return and_(column >= span.start, column < span.end)


def _first_wins() -> Any:
    return (
        select(Deal.customer_id, func.min(Deal.won_at).label("won_at"))
        .where(Deal.stage == "won")
        .group_by(Deal.customer_id)
        .subquery("first_wins")
    )


async def _add_conversion(
    session: AsyncSession, span: DateRange, scope: ColumnElement[bool], kpis: Kpis
) -> None:
    firsts = _first_wins()
    query = (
        select(func.count(), func.count(firsts.c.customer_id))
        .select_from(Customer)
        .outerjoin(
            firsts,
            and_(
                firsts.c.customer_id == Customer.id,
                _between(firsts.c.won_at, span),
            ),
        )
        .where(_between(Customer.created_at, span), scope)
    )
    created, converted = (await session.execute(query)).one()
    kpis.customers_created, kpis.converted = int(created), int(converted)
    if created:
        kpis.conversion_rate = converted / created


async def _add_repeats(
    session: AsyncSession, span: DateRange, scope: ColumnElement[bool], kpis: Kpis
) -> None:
    firsts = _first_wins()
    last_in_period = (
        select(Deal.customer_id, func.max(Deal.won_at).label("won_at"))
        .where(Deal.stage == "won", _between(Deal.won_at, span))
        .group_by(Deal.customer_id)
        .subquery("last_wins")
    )
    query = (
        select(
            func.count(),
            func.count().filter(firsts.c.won_at < last_in_period.c.won_at),
        )
        .select_from(last_in_period)
        .join(firsts, firsts.c.customer_id == last_in_period.c.customer_id)
        .join(Customer, Customer.id == last_in_period.c.customer_id)
        .where(scope)
    )
    buyers, repeats = (await session.execute(query)).one()
    kpis.buyers, kpis.repeat_buyers = int(buyers), int(repeats)
    if buyers:
        kpis.repeat_rate = repeats / buyers


@dataclass(frozen=True)
class FirstDeal:
    customer_id: int
    won_at: datetime
    currency: str
    signed_minor: int


async def _first_deals(
    session: AsyncSession, span: DateRange, scope: ColumnElement[bool]
) -> list[FirstDeal]:
    """The first won deal of each customer whose first win falls in the span.

    Two deals won at the same instant as a customer's first are one order:
    the one with the lower id is taken.
    """
    firsts = _first_wins()
    query = (
        select(Deal.customer_id, Deal.won_at, Deal.currency, Deal.signed_minor)
        .join(
            firsts,
            and_(
                firsts.c.customer_id == Deal.customer_id,
                firsts.c.won_at == Deal.won_at,
            ),
        )
        .join(Customer, Customer.id == Deal.customer_id)
        .where(Deal.stage == "won", _between(firsts.c.won_at, span), scope)
        .order_by(Deal.customer_id, Deal.id)
    )
    seen: dict[int, FirstDeal] = {}
    for customer_id, won_at, currency, signed in await session.execute(query):
        if customer_id not in seen and won_at is not None:
            seen[customer_id] = FirstDeal(customer_id, won_at, currency, signed or 0)
    return list(seen.values())


def _add_first_order_value(firsts: list[FirstDeal], kpis: Kpis) -> None:
    kpis.first_deals = len(firsts)
    amounts: dict[str, list[int]] = defaultdict(list)
    for deal in firsts:
        amounts[deal.currency].append(deal.signed_minor)
    kpis.first_order_value = {
        currency: (Decimal(sum(values)) / len(values) / 100).quantize(Decimal("0.01"))
        for currency, values in sorted(amounts.items())
    }


async def _add_follow_up(
    session: AsyncSession, span: DateRange, firsts: list[FirstDeal], kpis: Kpis
) -> None:
    if not firsts:
        return
    wins = {deal.customer_id: deal.won_at for deal in firsts}
    touches = await _touches_before(session, wins)
    cycles: list[int] = []
    counts: list[int] = []
    for customer_id, (first_touch, count) in touches.items():
        cycles.append(_days_between(first_touch, wins[customer_id], span))
        counts.append(count)
    if cycles:
        kpis.cycle_days_median = float(statistics.median(cycles))
        kpis.cycle_days_mean = statistics.fmean(cycles)
        kpis.follow_up_count = statistics.fmean(counts)


def _days_between(first: datetime, last: datetime, span: DateRange) -> int:
    start: date = first.astimezone(span.zone).date()
    end: date = last.astimezone(span.zone).date()
    return (end - start).days


async def _touches_before(
    session: AsyncSession, wins: dict[int, datetime]
) -> dict[int, tuple[datetime, int]]:
    """First touch and touch count up to the win, per customer with touches."""
    found: dict[int, tuple[datetime, int]] = {}
    customer_ids = sorted(wins)
    for start in range(0, len(customer_ids), 500):
        chunk = customer_ids[start : start + 500]
        latest = max(wins[customer_id] for customer_id in chunk)
        query = (
            select(Activity.customer_id, Activity.occurred_at)
            .where(Activity.customer_id.in_(chunk), Activity.automatic.is_(False))
            .where(Activity.occurred_at <= latest)
            .order_by(Activity.customer_id, Activity.occurred_at)
        )
        for customer_id, moment in await session.execute(query):
            if customer_id is None or moment > wins[customer_id]:
                continue
            first, count = found.get(customer_id, (moment, 0))
            found[customer_id] = (first, count + 1)
    return found
