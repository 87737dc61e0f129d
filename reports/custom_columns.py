"""Custom field columns added to a report table whose rows name a customer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from capture.values import active_fields
from reports.field_values import (
    column_definition,
    column_name,
    field_cells,
    field_values,
)
from reports.tables import Table

CUSTOMER_COLUMN = "customer_id"


async def with_custom_fields(session: AsyncSession, table: Table) -> Table:
    """Return `table` with one column per active custom field at the end.

    Each cell is the value of the row's customer. The table must have a
    `customer_id` column; values are read once per chunk of rows.
    """
    fields = await active_fields(session)
    if not fields:
        return table
    position = table.columns.index(CUSTOMER_COLUMN)
    names = [column_name(field) for field in fields]
    definitions = dict(table.definitions)
    for field, name in zip(fields, names, strict=True):
        definitions[name] = column_definition(field)
    inner_rows = table.rows

    async def rows() -> AsyncIterator[list[list[Any]]]:
        async for chunk in inner_rows():
            customer_ids = {row[position] for row in chunk}
            values = await field_values(
                session, fields, {i for i in customer_ids if isinstance(i, int)}
            )
            yield [row + field_cells(row[position], fields, values) for row in chunk]

    return Table(table.name, [*table.columns, *names], definitions, rows)
