"""Each customer's first touch and first won deal (`customer_firsts`).

The KPI page reads these rows instead of looking up every converting
customer's touches. `refresh` recomputes the rows of the customers given
from their touches and won deals, and writes only the rows that changed.
Callers:

- `rollups.refresh_marked` passes the customers of new touches and of
  touches whose time or customer changed, plus those marked with
  `mark_customers` in the same transaction;
- a deal won and a touch given its customer refresh their customer.

A customer's `created_at` is copied when its row is recomputed. `cycle_days`
uses calendar days in the organisation's time zone, so after the `timezone`
setting changes, run `touchline reports rebuild`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, bindparam, delete, func, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, aliased

from capture.models import Activity, Customer, CustomerFirst, Deal, table_of
from capture.sql import Prepared, one_of, utc_or_none, values_of

CUSTOMER_FIRSTS = table_of(CustomerFirst)
FACTS = (
    "customer_id",
    "created_at",
    "first_touch_at",
    "first_won_at",
    "first_deal_id",
    "currency",
    "signed_minor",
    "touches_to_win",
    "cycle_days",
    "second_won_at",
)
# session.info key of the customers waiting for `refresh_marked`.
_CUSTOMERS = "firsts.customers"
# Rows of one INSERT when a rebuild writes the whole table.
REBUILD_CHUNK = 5000


def mark_customers(session: Session, customer_ids: Iterable[int]) -> None:
    """Note customers whose facts `rollups.refresh_marked` should recompute."""
    marked: set[int] = session.info.setdefault(_CUSTOMERS, set())
    marked.update(customer_ids)


def marked_customers(session: Session) -> set[int]:
    """Remove and return the customers noted with `mark_customers`."""
    marked: set[int] = session.info.pop(_CUSTOMERS, set())
    return marked


def _facts_query(where: ColumnElement[bool] | None) -> Any:
    """Per customer: its facts computed now, then the stored row (or NULLs).

    Each subquery walks the (customer, time) index of the touches or the
    customer index of the deals, so a customer costs a few index seeks plus
    one step per touch before its first win.
    """
    won = aliased(Deal, name="first_deal")
    first_touch = (
        select(Activity.occurred_at)
        .where(Activity.customer_id == Customer.id, Activity.automatic.is_(False))
        .order_by(Activity.occurred_at)
        .limit(1)
        .scalar_subquery()
    )
    first_deal_id = (
        select(Deal.id)
        .where(
            Deal.customer_id == Customer.id,
            Deal.stage == "won",
            Deal.won_at.is_not(None),
        )
        .order_by(Deal.won_at, Deal.id)
        .limit(1)
        .scalar_subquery()
    )
    touches_to_win = (
        select(func.count())
        .select_from(Activity)
        .where(
            Activity.customer_id == Customer.id,
            Activity.automatic.is_(False),
            Activity.occurred_at <= won.won_at,
        )
        .scalar_subquery()
    )
    second_won_at = (
        select(func.min(Deal.won_at))
        .where(
            Deal.customer_id == Customer.id,
            Deal.stage == "won",
            Deal.won_at > won.won_at,
        )
        .scalar_subquery()
    )
    stored = CUSTOMER_FIRSTS
    query = (
        select(
            Customer.id,
            Customer.created_at,
            first_touch,
            won.won_at,
            won.id,
            won.currency,
            won.signed_minor,
            touches_to_win,
            second_won_at,
            *(stored.c[name] for name in FACTS),
        )
        .select_from(Customer)
        .outerjoin(won, won.id == first_deal_id)
        .outerjoin(stored, stored.c.customer_id == Customer.id)
    )
    return query if where is None else query.where(where)


def _select_prepared(dialect: str) -> Any:
    return _facts_query(one_of(dialect, Customer.id, "customers"))


def _upsert(dialect: str) -> Any:
    module: Any = postgresql if dialect == "postgresql" else sqlite
    statement = module.insert(CUSTOMER_FIRSTS).values(
        {name: bindparam(name) for name in FACTS}
    )
    return statement.on_conflict_do_update(
        index_elements=["customer_id"],
        set_={name: statement.excluded[name] for name in FACTS[1:]},
    )


# Compiled once: the webhook writer runs them in every batch with touches.
SELECT = Prepared(_select_prepared)
UPSERT = Prepared(_upsert)


def facts_of(row: Any, zone: ZoneInfo) -> tuple[Any, ...]:
    """Compute the FACTS values from the first nine columns of a query row."""
    customer_id, created_at, first_touch, won_at, deal_id, currency, signed, count = (
        row[:8]
    )
    second_won_at = utc_or_none(row[8])
    created_at = utc_or_none(created_at)
    first_touch = utc_or_none(first_touch)
    won_at = utc_or_none(won_at)
    touches = int(count) if won_at is not None else None
    cycle = None
    if touches and first_touch is not None and won_at is not None:
        cycle = (_local_date(won_at, zone) - _local_date(first_touch, zone)).days
    return (
        customer_id,
        created_at,
        first_touch,
        won_at,
        deal_id,
        currency,
        signed,
        touches,
        cycle,
        second_won_at,
    )


def _stored(row: Any) -> tuple[Any, ...] | None:
    values = list(row[9:])
    if values[0] is None:
        return None
    for index in (1, 2, 3, FACTS.index("second_won_at")):
        values[index] = utc_or_none(values[index])
    return tuple(values)


def _local_date(moment: datetime, zone: ZoneInfo) -> Any:
    return moment.astimezone(zone).date()


def refresh(session: Session, zone: ZoneInfo, customer_ids: set[int]) -> int:
    """Recompute the facts of `customer_ids`; return the rows written."""
    if not customer_ids:
        return 0
    rows = _read(session, sorted(customer_ids))
    changed = []
    for row in rows:
        facts = facts_of(row, zone)
        stored = _stored(row)
        if stored is None and facts[2] is None and facts[3] is None:
            continue
        if facts != stored:
            changed.append(dict(zip(FACTS, facts, strict=True)))
    if changed:
        _write(session, changed)
    return len(changed)


def _read(session: Session, customer_ids: list[int]) -> list[Any]:
    dialect = session.get_bind().dialect
    if dialect.is_async:
        # The async drivers take the plain SQLAlchemy path.
        query = _facts_query(Customer.id.in_(customer_ids))
        return list(session.execute(query))
    return SELECT.rows(session, {"customers": values_of(dialect.name, customer_ids)})


def _write(session: Session, rows: list[dict[str, Any]]) -> None:
    if session.get_bind().dialect.is_async:
        session.execute(_upsert(session.get_bind().dialect.name), rows)
    else:
        UPSERT.run_many(session, rows)


def fill_if_missing(session: Session, zone: ZoneInfo) -> int:
    """Rebuild the table when it is empty but customers have touches or won deals.

    That happens once, after an upgrade that added the table: its rows need
    the organisation's time zone, which the migration does not know.
    Returns the rows written, 0 when nothing was missing.
    """
    if session.scalar(select(CUSTOMER_FIRSTS.c.customer_id).limit(1)) is not None:
        return 0
    touched = select(Activity.id).where(Activity.customer_id.is_not(None)).limit(1)
    won = select(Deal.id).where(Deal.stage == "won").limit(1)
    if session.scalar(touched) is None and session.scalar(won) is None:
        return 0
    return rebuild(session, zone)


def rebuild(session: Session, zone: ZoneInfo) -> int:
    """Compute every customer's facts into an emptied table; return the rows."""
    session.execute(delete(CUSTOMER_FIRSTS))
    query = _facts_query(None).execution_options(yield_per=REBUILD_CHUNK)
    rows = []
    for row in session.execute(query):
        facts = facts_of(row, zone)
        if facts[2] is not None or facts[3] is not None:
            rows.append(dict(zip(FACTS, facts, strict=True)))
    for start in range(0, len(rows), REBUILD_CHUNK):
        session.execute(insert(CUSTOMER_FIRSTS), rows[start : start + REBUILD_CHUNK])
    return len(rows)
