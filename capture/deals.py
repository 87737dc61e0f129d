"""Opportunities (deals) and the payments collected against them.

A deal is open, won or lost. Winning records the signed amount and the
moment; losing records a reason. Money is exact: amounts arrive as decimal
text, are checked against the currency's minor units and are stored as
integers. A payment is in the deal's currency.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from capture import firsts
from capture.errors import Conflict, InvalidInput, NotFound
from capture.models import Customer, Deal, Payment, utcnow
from capture.values import _amount, _currency, _plain, from_minor, to_minor

STAGES = ("open", "won", "lost")
MAX_TITLE = 300
MAX_REASON = 2000


def amount_minor(value: Any, currency: str, name: str) -> int:
    """Read a positive decimal amount as minor units of `currency`."""
    amount = _amount(value, name)
    if amount is None:
        raise InvalidInput(f"{name} is missing", name)
    if amount < 0:
        raise InvalidInput(f"{name} {value!r} is negative", name)
    try:
        return to_minor(amount, currency)
    except InvalidInput as error:
        raise InvalidInput(str(error).replace("expected_amount", name), name) from None


def moment(value: Any, name: str, zone: ZoneInfo) -> datetime:
    """Read an ISO date (start of that day in `zone`) or a datetime with offset."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"{name} is missing; give an ISO date or datetime", name)
    text = value.strip()
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), time(), zone)
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(
            f"{name} {text!r} is not an ISO date or datetime", name
        ) from None
    if parsed.tzinfo is None:
        raise InvalidInput(f"{name} {text!r} needs a UTC offset", name)
    return parsed.astimezone(UTC)


def _title(value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > MAX_TITLE:
        raise InvalidInput(
            f"title must be text of at most {MAX_TITLE} characters", "title"
        )
    return _plain(value.strip(), "title")


async def create_deal(
    session: AsyncSession,
    customer: Customer,
    document: dict[str, Any],
    default_currency: str,
) -> Deal:
    currency = _currency(document.get("currency")) or default_currency
    deal = Deal(
        customer_id=customer.id,
        owner_id=customer.owner_id,
        title=_title(document.get("title")),
        stage="open",
        currency=currency,
        expected_minor=amount_minor(
            document.get("expected_amount", "0"), currency, "expected_amount"
        ),
        created_at=utcnow(),
    )
    session.add(deal)
    await session.flush()
    return deal


async def update_deal(
    session: AsyncSession, deal: Deal, document: dict[str, Any], zone: ZoneInfo
) -> Deal:
    """Change the title, expected amount or stage; a closed deal stays closed."""
    unknown = set(document) - {
        "title",
        "expected_amount",
        "stage",
        "signed_amount",
        "won_at",
        "lost_reason",
        "lost_at",
    }
    if unknown:
        name = sorted(unknown)[0]
        raise InvalidInput(f"{name} is not a deal field", name)
    if "title" in document:
        deal.title = _title(document["title"])
    if "expected_amount" in document:
        deal.expected_minor = amount_minor(
            document["expected_amount"], deal.currency, "expected_amount"
        )
    stage = document.get("stage")
    if stage is not None and stage != deal.stage:
        _close(deal, stage, document, zone)
    await session.flush()
    if deal.stage == "won":
        customers = {deal.customer_id}
        await session.run_sync(lambda sync: firsts.refresh(sync, zone, customers))
    return deal


def _close(deal: Deal, stage: Any, document: dict[str, Any], zone: ZoneInfo) -> None:
    if stage not in STAGES or stage == "open":
        raise InvalidInput(f"stage {stage!r} is not won or lost", "stage")
    if deal.stage != "open":
        raise Conflict(f"deal {deal.id} is already {deal.stage}", "stage")
    if stage == "won":
        deal.signed_minor = amount_minor(
            document.get("signed_amount"), deal.currency, "signed_amount"
        )
        deal.won_at = moment(document.get("won_at"), "won_at", zone)
    else:
        reason = document.get("lost_reason")
        if not isinstance(reason, str) or not reason.strip():
            raise InvalidInput("lost_reason is missing", "lost_reason")
        if len(reason) > MAX_REASON:
            raise InvalidInput(
                f"lost_reason is longer than {MAX_REASON} characters", "lost_reason"
            )
        deal.lost_reason = _plain(reason.strip(), "lost_reason", lines=True)
        lost_at = document.get("lost_at")
        deal.lost_at = moment(lost_at, "lost_at", zone) if lost_at else utcnow()
    deal.stage = stage


async def add_payment(
    session: AsyncSession, deal: Deal, document: dict[str, Any], zone: ZoneInfo
) -> Payment:
    currency = _currency(document.get("currency")) or deal.currency
    if currency != deal.currency:
        raise InvalidInput(
            f"currency {currency} differs from the deal's {deal.currency}", "currency"
        )
    if deal.stage != "won":
        raise Conflict(f"deal {deal.id} is {deal.stage}; only won deals collect", "id")
    payment = Payment(
        deal_id=deal.id,
        currency=currency,
        amount_minor=amount_minor(document.get("amount"), currency, "amount"),
        received_at=moment(document.get("received_at"), "received_at", zone),
    )
    if payment.amount_minor == 0:
        raise InvalidInput("amount must be above zero", "amount")
    session.add(payment)
    await session.flush()
    return payment


async def deals_of(session: AsyncSession, customer_id: int) -> list[Deal]:
    query = select(Deal).where(Deal.customer_id == customer_id).order_by(Deal.id)
    return list((await session.scalars(query)).all())


async def payments_of(session: AsyncSession, deal_ids: list[int]) -> list[Payment]:
    query = (
        select(Payment)
        .where(Payment.deal_id.in_(deal_ids))
        .order_by(Payment.received_at, Payment.id)
    )
    return list((await session.scalars(query)).all())


async def get_deal(session: AsyncSession, deal_id: int) -> Deal:
    deal = await session.get(Deal, deal_id)
    if deal is None:
        raise NotFound(f"deal {deal_id} not found", "id")
    return deal


def money_text(minor: int | None, currency: str) -> str | None:
    """Minor units as exact decimal text, such as "1200.00"."""
    if minor is None:
        return None
    amount: Decimal = from_minor(minor, currency)
    return format(amount, "f")
