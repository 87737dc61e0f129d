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

A figure with no data is None, never zero. The figures come from the deals
and from each customer's first touch and first win kept in
`customer_firsts` (`capture.firsts`), never from the touches themselves.
All the periods of a page are computed together: each query groups its
rows by period with one CASE over the periods' bounds.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, and_, case, distinct, func, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from capture.access import Viewer, visible_customers
from capture.models import Customer, CustomerFirst, Deal, User
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
    trend_periods = [period.shifted(offset) for offset in range(1 - TREND_PERIODS, 1)]
    year_earlier = period.year_earlier()
    computed = await compute_periods(session, [*trend_periods, year_earlier], scope)
    trend = [computed[item.first] for item in trend_periods]
    return KpiReport(
        current=trend[-1],
        previous=trend[-2],
        year_earlier=computed[year_earlier.first],
        trend=trend,
    )


async def compute_kpis(
    session: AsyncSession,
    period: CalendarPeriod,
    scope: ColumnElement[bool] | None = None,
) -> Kpis:
    """Compute the KPIs of one period; a `scope` of None means every customer."""
    computed = await compute_periods(session, [period], scope)
    return computed[period.first]


async def compute_periods(
    session: AsyncSession,
    periods: list[CalendarPeriod],
    scope: ColumnElement[bool] | None = None,
) -> dict[date, Kpis]:
    """Compute the KPIs of periods of one kind, keyed by their first day."""
    scope = true() if scope is None else scope
    distinct = {period.first: period for period in periods}
    spans = [(first, distinct[first].range) for first in sorted(distinct)]
    found = {first: Kpis(distinct[first].label) for first, _ in spans}
    grouping = _Grouping(spans)
    await _add_conversion(session, grouping, scope, found)
    await _add_repeats(session, grouping, scope, found)
    await _add_first_deals(session, grouping, scope, found)
    return found


class _Grouping:
    """Maps a timestamp column to the first day of the period that holds it.

    The periods are of one kind, so they never overlap.
    """

    def __init__(self, spans: list[tuple[date, DateRange]]) -> None:
        self.spans = spans
        self.start = min(span.start for _, span in spans)
        self.end = max(span.end for _, span in spans)

    def period_of(self, column: Any) -> ColumnElement[Any]:
        return case(
            *(
                (and_(column >= span.start, column < span.end), index)
                for index, (_, span) in enumerate(self.spans)
            ),
            else_=None,
        )

    def within(self, column: Any) -> ColumnElement[bool]:
        return and_(column >= self.start, column < self.end)

    def first_of(self, index: int | None) -> date | None:
        return None if index is None else self.spans[int(index)][0]


async def _add_conversion(
    session: AsyncSession,
    grouping: _Grouping,
    scope: ColumnElement[bool],
    found: dict[date, Kpis],
) -> None:
    created_in = grouping.period_of(Customer.created_at)
    won_in = grouping.period_of(CustomerFirst.first_won_at)
    query = (
        select(created_in, func.count(), func.count().filter(won_in == created_in))
        .select_from(Customer)
        .outerjoin(CustomerFirst, CustomerFirst.customer_id == Customer.id)
        .where(grouping.within(Customer.created_at), scope)
        .group_by(created_in)
    )
    for index, created, converted in await session.execute(query):
        first = grouping.first_of(index)
        if first is None:
            continue
        kpis = found[first]
        kpis.customers_created, kpis.converted = int(created), int(converted)
        if created:
            kpis.conversion_rate = converted / created


async def _add_repeats(
    session: AsyncSession,
    grouping: _Grouping,
    scope: ColumnElement[bool],
    found: dict[date, Kpis],
) -> None:
    """A buyer repeats when a deal won in the period is later than their first."""
    won_in = grouping.period_of(Deal.won_at)
    repeat = case((Deal.won_at > CustomerFirst.first_won_at, Deal.customer_id))
    query = (
        select(
            won_in,
            func.count(distinct(Deal.customer_id)),
            func.count(distinct(repeat)),
        )
        .join(CustomerFirst, CustomerFirst.customer_id == Deal.customer_id)
        .join(Customer, Customer.id == Deal.customer_id)
        .where(Deal.stage == "won", grouping.within(Deal.won_at), scope)
        .group_by(won_in)
    )
    for index, buyers, repeats in await session.execute(query):
        first = grouping.first_of(index)
        if first is None:
            continue
        kpis = found[first]
        kpis.buyers, kpis.repeat_buyers = int(buyers), int(repeats)
        if buyers:
            kpis.repeat_rate = repeats / buyers


@dataclass
class _FirstDeals:
    """The first deals won in one period, summed for the figures."""

    # Per currency: [sum of the signed amounts, number of deals].
    amounts: dict[str, list[int]] = field(default_factory=dict)
    # Customers with touches before the win, by calendar days to the win.
    cycles: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    touches: int = 0


async def _add_first_deals(
    session: AsyncSession,
    grouping: _Grouping,
    scope: ColumnElement[bool],
    found: dict[date, Kpis],
) -> None:
    """Add the first-order value and the follow-up figures.

    A customer's first deal is their first won deal; two deals won at the
    same first moment are one order, the one with the lower id.
    """
    won_in = grouping.period_of(CustomerFirst.first_won_at)
    query = (
        select(
            won_in,
            CustomerFirst.currency,
            CustomerFirst.cycle_days,
            func.count(),
            func.sum(CustomerFirst.signed_minor),
            func.sum(CustomerFirst.touches_to_win),
        )
        .join(Customer, Customer.id == CustomerFirst.customer_id)
        .where(grouping.within(CustomerFirst.first_won_at), scope)
        .group_by(won_in, CustomerFirst.currency, CustomerFirst.cycle_days)
    )
    sums: dict[date, _FirstDeals] = defaultdict(_FirstDeals)
    for index, currency, cycle, count, signed, touches in await session.execute(query):
        first = grouping.first_of(index)
        if first is None:
            continue
        period = sums[first]
        totals = period.amounts.setdefault(currency, [0, 0])
        totals[0] += int(signed or 0)
        totals[1] += int(count)
        if cycle is not None:
            period.cycles[int(cycle)] += int(count)
            period.touches += int(touches or 0)
    for first, period in sums.items():
        _set_first_deals(found[first], period)


def _set_first_deals(kpis: Kpis, period: _FirstDeals) -> None:
    kpis.first_deals = sum(count for _, count in period.amounts.values())
    kpis.first_order_value = {
        currency: (Decimal(total) / count / 100).quantize(Decimal("0.01"))
        for currency, (total, count) in sorted(period.amounts.items())
    }
    if not period.cycles:
        return
    cycles = [
        days for days, count in sorted(period.cycles.items()) for _ in range(count)
    ]
    kpis.cycle_days_median = float(statistics.median(cycles))
    kpis.cycle_days_mean = statistics.fmean(cycles)
    kpis.follow_up_count = period.touches / len(cycles)
