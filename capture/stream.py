"""The activity stream: touches recorded once and attached to the open plan."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import bindparam, or_, select
from sqlalchemy.orm import Session

from capture.models import Activity, Plan

PLANS_QUERY = select(Plan).where(
    Plan.customer_id.in_(bindparam("customers", expanding=True)),
    Plan.status != "cancelled",
    or_(Plan.closed_at.is_(None), Plan.closed_at > bindparam("earliest")),
)


class PlanIndex:
    """The plans of some customers, to find the one open at a moment."""

    def __init__(self, plans: Iterable[Plan] = ()) -> None:
        self.by_customer: dict[int, list[Plan]] = defaultdict(list)
        for plan in plans:
            self.by_customer[plan.customer_id].append(plan)

    @classmethod
    def load(
        cls, session: Session, customer_ids: set[int], earliest: datetime
    ) -> PlanIndex:
        """Load the plans of `customer_ids` that were open at or after `earliest`."""
        if not customer_ids:
            return cls()
        parameters = {"customers": list(customer_ids), "earliest": earliest}
        return cls(session.scalars(PLANS_QUERY, parameters))

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
