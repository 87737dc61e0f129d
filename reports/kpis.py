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
All the periods of a page are computed with two statements, in which
each figure of each period reads one index range.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    ColumnElement,
    and_,
    bindparam,
    distinct,
    func,
    literal,
    or_,
    select,
    true,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import True_

from capture.access import Viewer, visible_customers
from capture.models import Customer, CustomerFirst, Deal, User, UTCDateTime
from reports.periods import CalendarPeriod

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
    """Compute the KPIs of several periods, keyed by their first day."""
    scope = true() if scope is None else scope
    distinct = {period.first: period for period in periods}
    spans = [(first, distinct[first].range) for first in sorted(distinct)]
    found = {first: Kpis(distinct[first].label) for first, _ in spans}
    counts, values = _statements(len(spans), scope)
    bounds: dict[str, Any] = {}
    for index, (_, span) in enumerate(spans):
        bounds[f"start_{index}"], bounds[f"end_{index}"] = span.start, span.end
    for index, *figures in await session.execute(counts, bounds):
        _set_counts(found[spans[index][0]], *figures)
    amounts: dict[date, dict[str, tuple[int, int]]] = defaultdict(dict)
    for index, currency, count, signed in await session.execute(values, bounds):
        amounts[spans[index][0]][currency] = (int(count), int(signed or 0))
    for first, by_currency in amounts.items():
        _set_first_order_value(found[first], by_currency)
    return found


# The statements of the whole organisation by number of periods: building
# and compiling them is most of a first call's time.
# NOTE: a rep's or a team's scope builds its statements on every call:
# building and compiling those of a page's 13 periods took 8 to 9 ms on
# the shared 2-core benchmark machine.
_ORGANISATION_STATEMENTS: dict[int, tuple[Any, Any]] = {}


def _statements(count: int, scope: ColumnElement[bool]) -> tuple[Any, Any]:
    """Build or reuse the counts and first-value statements of `count` periods.

    Period i's bounds are the parameters start_i and end_i. Each statement
    covers every period at once: its figures are subqueries correlated with
    a small table of the periods, so each one reads the index range of one
    period as if that period's bounds were constants.
    """
    cached = isinstance(scope, True_)
    if cached and count in _ORGANISATION_STATEMENTS:
        return _ORGANISATION_STATEMENTS[count]
    periods = _periods_table(count)
    built = (_period_counts(periods, scope), _first_values(periods, scope))
    if cached:
        _ORGANISATION_STATEMENTS[count] = built
    return built


def _periods_table(count: int) -> Any:
    """Build a CTE of `count` rows: idx, start_at and end_at (UTC, end excluded)."""
    rows = [
        select(
            literal(index).label("idx"),
            bindparam(f"start_{index}", type_=UTCDateTime()).label("start_at"),
            bindparam(f"end_{index}", type_=UTCDateTime()).label("end_at"),
        )
        for index in range(count)
    ]
    table = rows[0] if count == 1 else union_all(*rows)
    return table.cte("periods")


def _between(column: Any, periods: Any) -> ColumnElement[bool]:
    return and_(column >= periods.c.start_at, column < periods.c.end_at)


def _period_counts(periods: Any, scope: ColumnElement[bool]) -> Any:
    """Select one row of counts per period, each figure from one index range.

    Columns: index, customers created, converted, buyers, one-time buyers,
    customers with touches before their first win, their summed cycle days
    and touches, and the median of those cycle days.
    """
    firsts = CustomerFirst
    created = (
        select(func.count())
        .select_from(Customer)
        .where(_between(Customer.created_at, periods), scope)
    )
    converted = _first_wins(periods, scope, func.count()).where(
        _between(firsts.created_at, periods)
    )
    figures = (
        created,
        converted,
        _won_deals(periods, scope, func.count(distinct(Deal.customer_id))),
        _one_time_buyers(periods, scope),
        _first_wins(periods, scope, func.count(firsts.cycle_days)),
        _first_wins(periods, scope, func.sum(firsts.cycle_days)),
        _first_wins(periods, scope, func.sum(firsts.touches_to_win)),
        _median_cycle(periods, scope),
    )
    return select(
        periods.c.idx, *(figure.scalar_subquery() for figure in figures)
    ).order_by(periods.c.idx)


def _first_wins(periods: Any, scope: ColumnElement[bool], *columns: Any) -> Any:
    """Select `columns` of the customers whose first win is in the period."""
    query = select(*columns).select_from(CustomerFirst)
    return _scoped(query, scope, CustomerFirst.customer_id).where(
        _between(CustomerFirst.first_won_at, periods)
    )


def _won_deals(periods: Any, scope: ColumnElement[bool], *columns: Any) -> Any:
    """Select `columns` of the deals won in the period."""
    query = select(*columns).select_from(Deal)
    return _scoped(query, scope, Deal.customer_id).where(
        Deal.stage == "won", _between(Deal.won_at, periods)
    )


def _one_time_buyers(periods: Any, scope: ColumnElement[bool]) -> Any:
    """Count the customers first won in the period with no other win in it.

    Every other buyer of the period repeats: either their first win is
    before the period, or they won again in it after their first win.
    """
    second = CustomerFirst.second_won_at
    return _first_wins(periods, scope, func.count()).where(
        or_(second.is_(None), second >= periods.c.end_at)
    )


def _scoped(query: Any, scope: ColumnElement[bool], customer_id: Any) -> Any:
    """Join the customers to `query` only when the scope reads them."""
    if isinstance(scope, True_):
        return query
    return query.join(Customer, Customer.id == customer_id).where(scope)


def _median_cycle(periods: Any, scope: ColumnElement[bool]) -> Any:
    """Select the median cycle: the mean of the one or two middle values."""
    days = CustomerFirst.cycle_days
    ranked = (
        _first_wins(
            periods,
            scope,
            days.label("days"),
            func.row_number().over(order_by=days).label("rank"),
            func.count().over().label("total"),
        )
        .where(days.is_not(None))
        .correlate(periods)
        .subquery("ranked")
    )
    middle = (ranked.c.total + 1) // 2, (ranked.c.total + 2) // 2
    return select(func.avg(ranked.c.days)).where(ranked.c.rank.in_(middle))


def _first_values(periods: Any, scope: ColumnElement[bool]) -> Any:
    """Select the periods' first deals per currency: index, currency, count, sum.

    A customer's first deal is their first won deal. Two deals won at the
    same first moment are one order, the one with the lower id.
    """
    firsts = CustomerFirst
    return _first_wins(
        periods,
        scope,
        periods.c.idx,
        firsts.currency,
        func.count(),
        func.sum(firsts.signed_minor),
    ).group_by(periods.c.idx, firsts.currency)


def _set_counts(
    kpis: Kpis,
    created: int,
    converted: int,
    buyers: int,
    one_time: int,
    followed: int,
    cycle_days: int | None,
    touches: int | None,
    median: Any,
) -> None:
    kpis.customers_created, kpis.converted = int(created), int(converted)
    if created:
        kpis.conversion_rate = converted / created
    kpis.buyers, kpis.repeat_buyers = int(buyers), int(buyers) - int(one_time)
    if buyers:
        kpis.repeat_rate = kpis.repeat_buyers / buyers
    if followed:
        kpis.cycle_days_median = float(median)
        kpis.cycle_days_mean = int(cycle_days or 0) / followed
        kpis.follow_up_count = int(touches or 0) / followed


def _set_first_order_value(kpis: Kpis, amounts: dict[str, tuple[int, int]]) -> None:
    kpis.first_deals = sum(count for count, _ in amounts.values())
    kpis.first_order_value = {
        currency: (Decimal(total) / count / 100).quantize(Decimal("0.01"))
        for currency, (count, total) in sorted(amounts.items())
    }
