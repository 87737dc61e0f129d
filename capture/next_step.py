"""Set a customer's next-step plan from another action, such as a call comment."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from capture.errors import InvalidInput
from capture.models import Plan

PURPOSES = (
    "keep_in_touch",
    "deepen_relationship",
    "nurture_need",
    "uncover_opportunity",
    "counter_competitor",
    "sign_and_collect",
    "courtesy_greeting",
)
MAX_NOTE_LENGTH = 2000


async def set_next_step(
    session: AsyncSession,
    customer_id: int,
    owner_id: int | None,
    purpose: str,
    note: str,
) -> Plan:
    """Change the customer's open plan to `purpose` and `note`, or open one.

    The plan's owner and due window stay as they are; a new plan belongs to
    `owner_id` and has no due window yet.
    """
    if purpose not in PURPOSES:
        raise InvalidInput(
            f"plan_purpose {purpose!r} is not one of {', '.join(PURPOSES)}",
            "plan_purpose",
        )
    if len(note) > MAX_NOTE_LENGTH:
        raise InvalidInput(
            f"plan_note is longer than {MAX_NOTE_LENGTH} characters", "plan_note"
        )
    plan = await session.scalar(
        select(Plan).where(Plan.customer_id == customer_id, Plan.status == "open")
    )
    if plan is None:
        plan = Plan(customer_id=customer_id, owner_id=owner_id, status="open")
        session.add(plan)
    plan.purpose = purpose
    plan.note = note
    await session.flush()
    return plan
