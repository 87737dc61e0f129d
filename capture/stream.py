"""The activity stream: touches recorded once and attached to the open plan."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, bindparam, or_, select
from sqlalchemy.orm import Session

from capture.models import Activity, Plan
from capture.sql import Prepared, one_of, utc, utc_or_none, values_of


def _plans_query(dialect: str) -> Select[int, int, datetime, datetime | None]:
    return select(Plan.id, Plan.customer_id, Plan.created_at, Plan.closed_at).where(
        one_of(dialect, Plan.customer_id, "customers"),
        Plan.status != "cancelled",
        or_(Plan.closed_at.is_(None), Plan.closed_at > bindparam("earliest")),
    )


PLANS = Prepared(_plans_query)


@dataclass(frozen=True)
class PlanSpan:
    """When a plan was open: from its creation until it closed, if it did."""

    id: int
    customer_id: int
    created_at: datetime
    closed_at: datetime | None


class PlanIndex:
    """The plans of some customers, to find the one open at a moment."""

    def __init__(self, plans: Iterable[PlanSpan] = ()) -> None:
        self.by_customer: dict[int, list[PlanSpan]] = defaultdict(list)
        for plan in plans:
            self.by_customer[plan.customer_id].append(plan)

    @classmethod
    def load(
        cls, session: Session, customer_ids: set[int], earliest: datetime
    ) -> PlanIndex:
        """Load the plans of `customer_ids` that were open at or after `earliest`."""
        if not customer_ids:
            return cls()
        # Plain rows rather than ORM entities: this runs in every batch of
        # webhooks.
        dialect = session.get_bind().dialect.name
        parameters = {
            "customers": values_of(dialect, customer_ids),
            "earliest": earliest,
        }
        rows = PLANS.rows(session, parameters)
        return cls(
            PlanSpan(plan_id, customer_id, utc(created_at), utc_or_none(closed_at))
            for plan_id, customer_id, created_at, closed_at in rows
        )

    def open_at(self, customer_id: int | None, moment: datetime) -> int | None:
        """Return the id of the customer's plan that was open at `moment`."""
        if customer_id is None:
            return None
        candidates = [
            plan
            for plan in self.by_customer.get(customer_id, ())
            if plan.created_at <= moment
            and (plan.closed_at is None or plan.closed_at > moment)
        ]
        if not candidates:
            return None
        return max(candidates, key=lambda plan: plan.created_at).id


def plan_open_at(session: Session, customer_id: int, moment: datetime) -> int | None:
    index = PlanIndex.load(session, {customer_id}, moment)
    return index.open_at(customer_id, moment)


def move_activity_time(
    session: Session, activity: Activity, occurred_at: datetime
) -> None:
    """Move a touch earlier when an earlier event of it arrives late."""
    if occurred_at >= activity.occurred_at:
        return
    activity.occurred_at = occurred_at
    if activity.customer_id is not None:
        activity.plan_id = plan_open_at(session, activity.customer_id, occurred_at)
