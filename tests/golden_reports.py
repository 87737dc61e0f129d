"""A small data set for the reports, with every figure worked out by hand.

`golden_reports.md` beside this file has the rows and the working as
tables. The organisation's time zone is America/Los_Angeles (the tests'
settings), where daylight-saving time ended on 2026-11-01.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from capture.models import Activity, Call, Customer, Deal, Payment, User


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


CUSTOMERS = {
    "G1": ("ana", "2026-11-03 17:00", "active", None),
    "G2": ("ana", "2026-11-01 07:30", "won", None),
    "G3": ("ben", "2026-10-31 06:30", "won", None),
    "G4": ("ben", "2025-11-10 18:00", "won", None),
    "G5": ("ana", "2026-12-01 07:30", "lost", "2026-11-30 20:00"),
}
# customer, created, stage, closed, expected, signed (minor units)
DEALS = {
    "D1": ("G1", "2026-11-05 18:00", "won", "2026-11-20 18:00", 120000, 100000),
    "D2": ("G2", "2026-11-02 18:00", "won", "2026-12-01 07:00", 60000, 50000),
    "D3": ("G3", "2026-10-31 18:00", "won", "2026-11-10 18:00", 30000, 30000),
    "D4": ("G4", "2025-11-10 19:00", "won", "2025-11-15 18:00", 80000, 80000),
    "D5": ("G4", "2026-11-01 18:00", "won", "2026-11-12 18:00", 25000, 20000),
    "D6": ("G5", "2026-11-29 18:00", "lost", "2026-11-30 20:00", 40000, None),
}
PAYMENTS = (
    ("D1", 60000, "2026-11-25 18:00"),
    ("D1", 40000, "2026-12-01 09:00"),
    ("D4", 80000, "2025-11-20 18:00"),
)
# customer, rep, channel, direction, time, talk seconds, automatic
TOUCHES = {
    "t1": ("G1", "ana", "call", "outbound", "2026-11-03 18:00", 60, False),
    "t2": ("G1", "ana", "sms", "outbound", "2026-11-10 18:00", None, False),
    "t3": ("G1", "ana", "call", "inbound", "2026-11-20 17:00", 0, False),
    "t4": ("G1", "ana", "call", "outbound", "2026-11-21 18:00", 30, False),
    "t5": ("G2", "ana", "call", "outbound", "2026-11-01 08:30", 120, False),
    "t6": ("G2", "ana", "sms", "inbound", "2026-11-30 07:30", None, False),
    "t7": ("G3", "ben", "call", "outbound", "2026-10-31 18:00", 90, False),
    "t8": ("G3", "ben", "meeting", "outbound", "2026-11-09 18:00", None, False),
    "t9": ("G4", "ben", "call", "inbound", "2025-11-11 18:00", 45, False),
    "t10": ("G3", "ben", "call", "outbound", "2026-12-01 07:59", 10, False),
    "t11": ("G1", "ana", "email", "inbound", "2026-11-15 18:00", None, True),
}

# The hand-worked figures of the tables above, as the API returns them.
SUMMARY_2026_11 = {
    "ana@demo.touchline.test": {
        "calls": 4,
        "calls_made": 3,
        "calls_received": 1,
        "answered_calls": 3,
        "talk_seconds": 210,
        "sms_sent": 1,
        "sms_received": 1,
        "emails": 0,
        "other_touches": 0,
        "signed": {"USD": "1500.00"},
        "collected": {"USD": "600.00"},
        "new_opportunities": 3,
        "new_opportunity_amount": {"USD": "2200.00"},
        "new_customers": 3,
        "won_customers": 2,
        "won_amount": {"USD": "1500.00"},
        "lost_customers": 1,
        "lost_amount": {"USD": "400.00"},
    },
    "ben@demo.touchline.test": {
        "calls": 1,
        "calls_made": 1,
        "calls_received": 0,
        "answered_calls": 1,
        "talk_seconds": 10,
        "sms_sent": 0,
        "sms_received": 0,
        "emails": 0,
        "other_touches": 1,
        "signed": {"USD": "500.00"},
        "collected": {},
        "new_opportunities": 1,
        "new_opportunity_amount": {"USD": "250.00"},
        "new_customers": 0,
        "won_customers": 1,
        "won_amount": {"USD": "300.00"},
        "lost_customers": 0,
        "lost_amount": {},
    },
}
KPIS = {
    "2026-11": {
        "customers_created": 3,
        "converted": 2,
        "conversion_rate": 2 / 3,
        "buyers": 4,
        "repeat_buyers": 1,
        "repeat_rate": 1 / 4,
        "first_deals": 3,
        "first_order_value": {"USD": "600.00"},
        "cycle_days_median": 17.0,
        "cycle_days_mean": 56 / 3,
        "follow_up_count": 7 / 3,
    },
    "2026-10": {
        "customers_created": 1,
        "converted": 0,
        "conversion_rate": 0.0,
        "buyers": 0,
        "repeat_buyers": 0,
        "repeat_rate": None,
        "first_deals": 0,
        "first_order_value": {},
        "cycle_days_median": None,
        "cycle_days_mean": None,
        "follow_up_count": None,
    },
    "2025-11": {
        "customers_created": 1,
        "converted": 1,
        "conversion_rate": 1.0,
        "buyers": 1,
        "repeat_buyers": 0,
        "repeat_rate": 0.0,
        "first_deals": 1,
        "first_order_value": {"USD": "800.00"},
        "cycle_days_median": 4.0,
        "cycle_days_mean": 4.0,
        "follow_up_count": 1.0,
    },
}
# Relative changes of 2026-11: None where the other figure is empty or zero.
CHANGES = {
    "conversion_rate": (None, (2 / 3 - 1) / 1),
    "repeat_rate": (None, None),
    "first_order_value": (None, (600 - 800) / 800),
    "cycle_days_median": (None, (17 - 4) / 4),
    "cycle_days_mean": (None, (56 / 3 - 4) / 4),
    "follow_up_count": (None, (7 / 3 - 1) / 1),
}


async def load_golden(session: AsyncSession) -> dict[str, int]:
    """Insert the data set next to the demo data; return the ids by key."""
    reps = {
        email.split("@")[0]: user_id
        for user_id, email in await session.execute(select(User.id, User.email))
    }
    ids: dict[str, int] = {}
    for key, (owner, created, status, closed) in CUSTOMERS.items():
        customer = Customer(
            name=f"Golden {key}",
            owner_id=reps[owner],
            status=status,
            created_at=at(created),
            closed_at=at(closed) if closed else None,
        )
        session.add(customer)
        await session.flush()
        ids[key] = customer.id
    for key, deal_row in DEALS.items():
        ids[key] = await _add_deal(session, deal_row, ids, reps)
    for deal_key, amount, received in PAYMENTS:
        session.add(
            Payment(
                deal_id=ids[deal_key],
                currency="USD",
                amount_minor=amount,
                received_at=at(received),
            )
        )
    for key, touch in TOUCHES.items():
        ids[key] = await _add_touch(session, key, touch, ids, reps)
    return ids


async def _add_deal(
    session: AsyncSession, row: tuple[Any, ...], ids: dict[str, int], reps: Any
) -> int:
    customer_key, created, stage, closed, expected, signed = row
    owner = CUSTOMERS[customer_key][0]
    deal = Deal(
        customer_id=ids[customer_key],
        owner_id=reps[owner],
        stage=stage,
        currency="USD",
        expected_minor=expected,
        signed_minor=signed,
        created_at=at(created),
        won_at=at(closed) if stage == "won" else None,
        lost_at=at(closed) if stage == "lost" else None,
    )
    session.add(deal)
    await session.flush()
    return deal.id


async def _add_touch(
    session: AsyncSession,
    key: str,
    row: tuple[Any, ...],
    ids: dict[str, int],
    reps: Any,
) -> int:
    customer_key, rep, channel, direction, moment, talk, automatic = row
    activity = Activity(
        external_key=f"golden:{key}",
        customer_id=ids[customer_key],
        rep_id=reps[rep],
        channel=channel,
        direction=direction,
        occurred_at=at(moment),
        automatic=automatic,
    )
    session.add(activity)
    await session.flush()
    if channel == "call":
        session.add(
            Call(
                activity_id=activity.id,
                call_sid=f"CA{activity.id:032d}",
                twilio_direction="outbound-api",
                from_party="+14155550111",
                to_party="+14155550201",
                status="completed" if talk else "no-answer",
                last_sequence=3,
                talk_seconds=talk,
            )
        )
    return activity.id
