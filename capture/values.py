"""Value calibration, milestones and custom fields of customers.

Value calibration is the rep's view of what a customer is worth: a
judgement, the expected deal size, and when and for how much the customer
should sign. Custom fields are the company's own customer fields, defined
by a manager. Every change of either is kept in `customer_changes`, with
who made it and when, so the history of a customer's value can be read
back.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from capture.currencies import is_currency
from capture.errors import Conflict, InvalidInput
from capture.models import (
    Customer,
    CustomerChange,
    CustomField,
    CustomFieldValue,
    Milestone,
    utcnow,
)

JUDGEMENTS = ("valuable", "not_valuable", "uncertain")
DEAL_SIZES = ("large", "normal", "small")
FIELD_KINDS = ("text", "number", "choice", "date")
CALIBRATION_FIELDS = (
    "judgement",
    "deal_size",
    "expected_sign_date",
    "expected_amount",
    "expected_currency",
)
MAX_TEXT = 1000
# Control characters; a note may keep tabs and line breaks, a name may not.
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029]")
LINE_BREAKS = re.compile(r"[\t\n\r]")
MAX_CHOICES = 100
KEY = re.compile(r"[a-z][a-z0-9_]{0,63}")
# Digits after the decimal point for currencies that do not use two
# (ISO 4217 minor units); every other currency uses two.
MINOR_DIGITS = {
    "BHD": 3,
    "BIF": 0,
    "CLP": 0,
    "DJF": 0,
    "GNF": 0,
    "IQD": 3,
    "ISK": 0,
    "JOD": 3,
    "JPY": 0,
    "KMF": 0,
    "KRW": 0,
    "KWD": 3,
    "LYD": 3,
    "OMR": 3,
    "PYG": 0,
    "RWF": 0,
    "TND": 3,
    "UGX": 0,
    "VND": 0,
    "VUV": 0,
    "XAF": 0,
    "XOF": 0,
    "XPF": 0,
}
# Amounts beyond this many major units are typing mistakes, not deals.
MAX_AMOUNT = Decimal(10) ** 13


@dataclass(frozen=True)
class Calibration:
    judgement: str | None
    deal_size: str | None
    expected_sign_date: date | None
    expected_amount: Decimal | None
    expected_currency: str | None


def calibration_of(customer: Customer) -> Calibration:
    amount = None
    if customer.expected_amount_minor is not None and customer.expected_currency:
        amount = from_minor(customer.expected_amount_minor, customer.expected_currency)
    return Calibration(
        customer.judgement,
        customer.deal_size,
        customer.expected_sign_date,
        amount,
        customer.expected_currency,
    )


def to_minor(amount: Decimal, currency: str) -> int:
    """Return `amount` in the currency's minor units; more digits are invalid."""
    digits = MINOR_DIGITS.get(currency, 2)
    scaled = amount.scaleb(digits)
    if scaled != scaled.to_integral_value():
        raise InvalidInput(
            f"expected_amount {amount} has more than {digits} decimals for {currency}",
            "expected_amount",
        )
    return int(scaled)


def from_minor(minor: int, currency: str) -> Decimal:
    return Decimal(minor).scaleb(-MINOR_DIGITS.get(currency, 2))


async def update_calibration(
    session: AsyncSession,
    customer: Customer,
    changes: dict[str, Any],
    *,
    user_id: int | None,
    default_currency: str,
) -> list[str]:
    """Apply calibration changes, keep each as history; return the fields changed.

    A field given as None or "" is cleared. An amount needs a currency: the
    one given, else the customer's, else `default_currency`.
    """
    unknown = sorted(set(changes) - set(CALIBRATION_FIELDS))
    if unknown:
        raise InvalidInput(f"{unknown[0]} is not a calibration field", unknown[0])
    before = calibration_of(customer)
    values: dict[str, Any] = {}
    if "judgement" in changes:
        values["judgement"] = _choice(changes["judgement"], JUDGEMENTS, "judgement")
    if "deal_size" in changes:
        values["deal_size"] = _choice(changes["deal_size"], DEAL_SIZES, "deal_size")
    if "expected_sign_date" in changes:
        values["expected_sign_date"] = _date(
            changes["expected_sign_date"], "expected_sign_date"
        )
    currency = before.expected_currency or default_currency
    if "expected_currency" in changes:
        currency = _currency(changes["expected_currency"]) or currency
        values["expected_currency"] = currency
    if "expected_amount" in changes:
        amount = _amount(changes["expected_amount"], "expected_amount")
        if amount is not None and amount < 0:
            raise InvalidInput("expected_amount is negative", "expected_amount")
        values["expected_amount"] = amount
        values["expected_currency"] = currency
    elif "expected_currency" in values and before.expected_amount is not None:
        # The same amount in the new currency, in its own minor units.
        values["expected_amount"] = before.expected_amount
    changed = []
    for name, value in values.items():
        old = getattr(before, name)
        if _text(old) == _text(value):
            continue
        changed.append(name)
        session.add(
            CustomerChange(
                customer_id=customer.id,
                user_id=user_id,
                field=name,
                old_value=_text(old),
                new_value=_text(value),
            )
        )
    _store_calibration(customer, values)
    return changed


def _store_calibration(customer: Customer, values: dict[str, Any]) -> None:
    for name in ("judgement", "deal_size", "expected_sign_date"):
        if name in values:
            setattr(customer, name, values[name])
    if "expected_currency" in values:
        customer.expected_currency = values["expected_currency"]
    if "expected_amount" in values:
        amount = values["expected_amount"]
        currency = customer.expected_currency
        assert currency is not None
        customer.expected_amount_minor = (
            None if amount is None else to_minor(amount, currency)
        )


async def add_milestone(
    session: AsyncSession,
    customer: Customer,
    *,
    title: str,
    occurred_at: datetime,
    note: str,
    user_id: int | None,
) -> Milestone:
    title = _plain(title.strip(), "title")
    note = _plain(note, "note", lines=True)
    if not title:
        raise InvalidInput("title is missing", "title")
    if len(title) > 200:
        raise InvalidInput("title is longer than 200 characters", "title")
    if len(note) > MAX_TEXT:
        raise InvalidInput(f"note is longer than {MAX_TEXT} characters", "note")
    if occurred_at.tzinfo is None:
        raise InvalidInput("occurred_at needs a time zone offset", "occurred_at")
    milestone = Milestone(
        customer_id=customer.id,
        user_id=user_id,
        title=title,
        occurred_at=occurred_at,
        note=note.strip(),
    )
    session.add(milestone)
    await session.flush()
    return milestone


async def define_field(
    session: AsyncSession,
    *,
    key: str,
    label: str,
    kind: str,
    choices: list[str] | None = None,
    required: bool = False,
) -> CustomField:
    """Add a custom field; its key must be new."""
    if not KEY.fullmatch(key):
        raise InvalidInput(
            f"key {key!r} is not lower-case letters, digits and _ "
            "(starting with a letter, at most 64)",
            "key",
        )
    label = _plain(label.strip(), "label")
    if not label or len(label) > 200:
        raise InvalidInput("label must have 1 to 200 characters", "label")
    if kind not in FIELD_KINDS:
        raise InvalidInput(
            f"kind {kind!r} is not one of {', '.join(FIELD_KINDS)}", "kind"
        )
    options = _choices(choices or [], kind)
    if await session.scalar(select(CustomField.id).where(CustomField.key == key)):
        raise Conflict(f"a field with key {key!r} exists", "key")
    position = await session.scalar(
        select(CustomField.position).order_by(CustomField.position.desc()).limit(1)
    )
    field = CustomField(
        key=key,
        label=label,
        kind=kind,
        choices=json.dumps(options, ensure_ascii=False),
        required=required,
        active=True,
        position=(position or 0) + 1,
    )
    session.add(field)
    await session.flush()
    return field


def _choices(choices: list[str], kind: str) -> list[str]:
    if kind != "choice":
        if choices:
            raise InvalidInput("only a choice field has choices", "choices")
        return []
    cleaned = [_plain(str(choice).strip(), "choices") for choice in choices]
    if not cleaned or any(not choice for choice in cleaned):
        raise InvalidInput("a choice field needs non-empty choices", "choices")
    if len(cleaned) > MAX_CHOICES or any(len(c) > 200 for c in cleaned):
        raise InvalidInput(
            f"at most {MAX_CHOICES} choices of at most 200 characters", "choices"
        )
    if len(set(cleaned)) != len(cleaned):
        raise InvalidInput("choices repeat", "choices")
    return cleaned


async def active_fields(session: AsyncSession) -> list[CustomField]:
    query = select(CustomField).where(CustomField.active).order_by(CustomField.position)
    return list((await session.scalars(query)).all())


async def field_values(session: AsyncSession, customer_id: int) -> dict[str, str]:
    """Return the customer's custom field values as text, by field key."""
    query = (
        select(CustomField.key, CustomFieldValue.text_value)
        .join(CustomField, CustomFieldValue.field_id == CustomField.id)
        .where(CustomFieldValue.customer_id == customer_id, CustomField.active)
    )
    return {row.key: row.text_value for row in (await session.execute(query)).all()}


async def update_field_values(
    session: AsyncSession,
    customer: Customer,
    changes: dict[str, Any],
    *,
    user_id: int | None,
) -> list[str]:
    """Set custom field values by key ("" or None clears); return the keys changed.

    Every value is checked against its field before anything is written, so
    one bad value leaves the customer unchanged.
    """
    fields = {field.key: field for field in await active_fields(session)}
    for key in changes:
        if key not in fields:
            raise InvalidInput(f"{key} is not a custom field", key)
    current = {
        row.field_id: row
        for row in (
            await session.scalars(
                select(CustomFieldValue).where(
                    CustomFieldValue.customer_id == customer.id
                )
            )
        ).all()
    }
    # An empty value for a required field that has none yet is no change, so
    # a form that sends every field can still save the others.
    parsed = {
        key: _field_value(fields[key], value, has_value=fields[key].id in current)
        for key, value in changes.items()
    }
    changed = []
    for key, value in parsed.items():
        field = fields[key]
        row = current.get(field.id)
        old = row.text_value if row is not None else None
        new = value[0] if value is not None else None
        if old == new:
            continue
        changed.append(key)
        session.add(
            CustomerChange(
                customer_id=customer.id,
                user_id=user_id,
                field=f"field:{key}",
                old_value=old,
                new_value=new,
            )
        )
        await _store_field_value(session, customer.id, field, row, value)
    await session.flush()
    return changed


async def missing_required(session: AsyncSession, customer_id: int) -> list[str]:
    """Keys of required fields the customer has no value for."""
    have = await field_values(session, customer_id)
    return [
        f.key for f in await active_fields(session) if f.required and f.key not in have
    ]


FieldValue = tuple[str, Decimal | None, date | None]


def _field_value(
    field: CustomField, raw: Any, *, has_value: bool = True
) -> FieldValue | None:
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        if field.required and has_value:
            raise InvalidInput(f"{field.key} is required", field.key)
        return None
    if isinstance(raw, bool) or not isinstance(raw, str | int | float):
        raise InvalidInput(f"{field.key} is not a text, number or date", field.key)
    text = _plain(str(raw).strip(), field.key, lines=field.kind == "text")
    if field.kind == "text":
        if len(text) > MAX_TEXT:
            raise InvalidInput(
                f"{field.key} is longer than {MAX_TEXT} characters", field.key
            )
        return (text, None, None)
    if field.kind == "number":
        number = _amount(text, field.key)
        assert number is not None
        return (format(number, "f"), number, None)
    if field.kind == "date":
        day = _date(text, field.key)
        assert day is not None
        return (day.isoformat(), None, day)
    if text not in json.loads(field.choices):
        raise InvalidInput(f"{field.key} {text!r} is not one of its choices", field.key)
    return (text, None, None)


async def _store_field_value(
    session: AsyncSession,
    customer_id: int,
    field: CustomField,
    row: CustomFieldValue | None,
    value: FieldValue | None,
) -> None:
    if value is None:
        if row is not None:
            await session.delete(row)
        return
    text, number, day = value
    if row is None:
        row = CustomFieldValue(customer_id=customer_id, field_id=field.id)
        session.add(row)
    row.text_value = text
    row.number_value = number
    row.date_value = day
    row.updated_at = utcnow()


async def history(session: AsyncSession, customer_id: int) -> list[CustomerChange]:
    query = (
        select(CustomerChange)
        .where(CustomerChange.customer_id == customer_id)
        .order_by(CustomerChange.changed_at.desc(), CustomerChange.id.desc())
    )
    return list((await session.scalars(query)).all())


async def milestones(session: AsyncSession, customer_id: int) -> list[Milestone]:
    query = (
        select(Milestone)
        .where(Milestone.customer_id == customer_id)
        .order_by(Milestone.occurred_at.desc(), Milestone.id.desc())
    )
    return list((await session.scalars(query)).all())


def _plain(text: str, name: str, *, lines: bool = False) -> str:
    """Return `text`, or raise InvalidInput if it contains control characters."""
    if CONTROL.search(text) or (not lines and LINE_BREAKS.search(text)):
        raise InvalidInput(f"{name} contains control characters", name)
    return text


def _choice(value: Any, allowed: tuple[str, ...], name: str) -> str | None:
    if value is None or value == "":
        return None
    if value not in allowed:
        raise InvalidInput(f"{name} {value!r} is not one of {', '.join(allowed)}", name)
    return str(value)


def _date(value: Any, name: str) -> date | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"{name} is not a date (YYYY-MM-DD)", name)
    try:
        day = date.fromisoformat(value.strip())
    except ValueError:
        raise InvalidInput(
            f"{name} {value!r} is not a date (YYYY-MM-DD)", name
        ) from None
    if not 1900 <= day.year <= 2999:
        raise InvalidInput(f"{name} {value!r} is outside 1900..2999", name)
    return day


def _amount(value: Any, name: str) -> Decimal | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise InvalidInput(f"{name} is not a number", name)
    text = str(value).strip().replace(",", "")
    if len(text) > 40 or not text.isascii():
        raise InvalidInput(f"{name} {str(value)[:40]!r} is not a number", name)
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise InvalidInput(f"{name} {value!r} is not a number", name) from None
    if not number.is_finite() or abs(number) >= MAX_AMOUNT:
        raise InvalidInput(f"{name} {value!r} is out of range", name)
    if number.as_tuple().exponent < -6:  # type: ignore[operator]
        raise InvalidInput(f"{name} {value!r} has more than 6 decimals", name)
    return number


def _currency(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not is_currency(value.strip().upper()):
        raise InvalidInput(
            f"expected_currency {value!r} is not an ISO 4217 code", "expected_currency"
        )
    return value.strip().upper()


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)
