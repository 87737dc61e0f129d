"""Customers' custom field values as typed export cells.

Every value is stored as text, and number and date fields also typed.
Exports read the text and convert it by the field's kind. A number field
gives a `Decimal`, which CSV and XLSX write as a number, never as a
formula. A date field gives a `date`: a real date in XLSX, ISO 8601 in
CSV. Text and choice values lose the control characters that spreadsheets
and XML reject.
"""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from capture.models import CustomField, CustomFieldValue

# C0 controls but tab, line feed and carriage return, which a multi-line
# text field keeps, plus DEL.
CONTROL_CHARACTERS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
KIND_WORDS = {
    "text": "text",
    "number": "a number",
    "choice": "one of its choices",
    "date": "a date",
}


def column_name(field: CustomField) -> str:
    return f"field:{field.key}"


def column_definition(field: CustomField) -> str:
    kind = KIND_WORDS.get(field.kind, field.kind)
    return (
        f"Custom field {field.label!r} ({kind}): the customer's value at the "
        "time of the export; empty when it has none."
    )


def typed_value(field: CustomField, text: str) -> Any:
    """Convert a stored text value by the field's kind; text stays text."""
    if field.kind == "number":
        try:
            return Decimal(text)
        except InvalidOperation:
            return CONTROL_CHARACTERS.sub("", text)
    if field.kind == "date":
        try:
            return date.fromisoformat(text)
        except ValueError:
            return CONTROL_CHARACTERS.sub("", text)
    return CONTROL_CHARACTERS.sub("", text)


async def field_values(
    session: AsyncSession, fields: list[CustomField], customer_ids: set[int]
) -> dict[tuple[int, int], Any]:
    """Return typed values of some customers by (customer id, field id)."""
    if not fields or not customer_ids:
        return {}
    by_id = {field.id: field for field in fields}
    query = select(
        CustomFieldValue.customer_id,
        CustomFieldValue.field_id,
        CustomFieldValue.text_value,
    ).where(
        CustomFieldValue.customer_id.in_(customer_ids),
        CustomFieldValue.field_id.in_(list(by_id)),
    )
    rows = (await session.execute(query)).all()
    return {
        (customer_id, field_id): typed_value(by_id[field_id], text)
        for customer_id, field_id, text in rows
    }


def field_cells(
    customer_id: Any, fields: list[CustomField], values: dict[tuple[int, int], Any]
) -> list[Any]:
    """Return one cell per field; an unset value or no customer is None."""
    if not isinstance(customer_id, int):
        return [None for _ in fields]
    return [values.get((customer_id, field.id)) for field in fields]
