"""Report tables as CSV or XLSX, written chunk by chunk.

The XLSX file is written with xlsxwriter in constant-memory mode, which
flushes each row to a temporary file, so memory stays flat however many
rows. Text cells are always written as strings, never as formulas, and
lose the control characters that XML 1.0 forbids. Times are real Excel
dates in the organisation's time zone, the zone named in the header.
"""

from __future__ import annotations

import asyncio
import re
import tempfile
from collections.abc import AsyncIterator, Callable
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import xlsxwriter
from xlsxwriter.worksheet import Worksheet

from reports.export import BOM, encode_rows
from reports.tables import Table

CONTROL_CHARACTERS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
READ_CHUNK = 64 * 1024


def clean_text(text: str) -> str:
    return CONTROL_CHARACTERS.sub("", text)


async def table_csv(
    table: Table, on_rows: Callable[[int], None] | None = None
) -> AsyncIterator[bytes]:
    yield BOM.encode("utf-8") + encode_rows([table.columns])
    if table.csv_rows is not None:
        async for chunk, count in table.csv_rows():
            yield chunk
            if on_rows is not None:
                on_rows(count)
        return
    async for rows in table.rows():
        yield encode_rows(rows)
        if on_rows is not None:
            on_rows(len(rows))


async def write_xlsx(
    table: Table,
    path: Path,
    zone_name: str,
    on_rows: Callable[[int], None] | None = None,
) -> int:
    """Write `table` and its definitions sheet to `path`; return the row count."""
    workbook = xlsxwriter.Workbook(
        str(path),
        {
            "constant_memory": True,
            "strings_to_formulas": False,
            "strings_to_urls": False,
            "strings_to_numbers": False,
        },
    )
    sheet = workbook.add_worksheet(table.name)
    formats = {
        "datetime": workbook.add_format({"num_format": "yyyy-mm-dd hh:mm:ss"}),
        "date": workbook.add_format({"num_format": "yyyy-mm-dd"}),
    }
    header = [
        f"{name} ({zone_name})" if name in ("occurred_at", "date") else name
        for name in table.columns
    ]
    for column, name in enumerate(header):
        sheet.write_string(0, column, name)
    count = 0
    async for rows in table.rows():
        for row in rows:
            count += 1
            _write_row(sheet, count, row, formats)
        if on_rows is not None:
            on_rows(len(rows))
    _write_definitions(workbook.add_worksheet("definitions"), table)
    await asyncio.to_thread(workbook.close)
    return count


def _write_row(sheet: Worksheet, number: int, row: list[Any], formats: Any) -> None:
    for column, value in enumerate(row):
        if value is None:
            continue
        if isinstance(value, bool):
            sheet.write_number(number, column, int(value))
        elif isinstance(value, int | float | Decimal):
            sheet.write_number(number, column, float(value))
        elif isinstance(value, datetime):
            local = value.replace(tzinfo=None)
            sheet.write_datetime(number, column, local, formats["datetime"])
        elif isinstance(value, date):
            sheet.write_datetime(
                number,
                column,
                datetime.combine(value, datetime.min.time()),
                formats["date"],
            )
        else:
            sheet.write_string(number, column, clean_text(str(value)))


def _write_definitions(sheet: Worksheet, table: Table) -> None:
    sheet.write_string(0, 0, "column")
    sheet.write_string(0, 1, "definition")
    for number, name in enumerate(table.columns, start=1):
        sheet.write_string(number, 0, name)
        sheet.write_string(number, 1, table.definitions.get(name, ""))


async def table_xlsx(table: Table, zone_name: str) -> AsyncIterator[bytes]:
    """Write the workbook to a temporary file, then yield it in chunks."""
    with tempfile.TemporaryDirectory(prefix="touchline-xlsx-") as folder:
        path = Path(folder) / f"{table.name}.xlsx"
        await write_xlsx(table, path, zone_name)
        with path.open("rb") as handle:
            while chunk := await asyncio.to_thread(handle.read, READ_CHUNK):
                yield chunk
