"""Custom field columns in the activities and calls exports, CSV and XLSX.

The files are read back as they are written: the CSV as bytes, the XLSX as
a zip of XML, so that cell types (string, number, date, formula) show.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from typing import Any
from xml.etree import ElementTree

import pytest
from golden_reports import load_golden
from sqlalchemy import select, update

from capture import rollups
from capture.accounts import create_token
from capture.db import Database, transaction
from capture.models import Customer, CustomField, CustomFieldValue
from capture.settings import Settings
from capture.values import define_field, update_field_values

NOVEMBER = {"from": "2026-11-01", "to": "2026-11-30"}
NS = {"m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main"}
FIELD_COLUMNS = ["field:industry", "field:seats", "field:renewal", "field:tier"]
# Stored as it was before values were checked on input: the export must
# still drop the control characters and never run the formula.
HOSTILE_TEXT = '=HYPERLINK("http://evil.example","x")\x07\x1b'


@pytest.fixture
async def token(client: Any, database: Database, settings: Settings) -> str:
    async with transaction(database.writes) as session:
        ids = await load_golden(session)
        await define_field(session, key="industry", label="Industry", kind="text")
        await define_field(session, key="seats", label="Seats", kind="number")
        await define_field(session, key="renewal", label="Renewal", kind="date")
        await define_field(
            session,
            key="tier",
            label="Tier",
            kind="choice",
            choices=["gold", "silver"],
        )
        g1 = await session.get(Customer, ids["G1"])
        g2 = await session.get(Customer, ids["G2"])
        assert g1 is not None and g2 is not None
        await update_field_values(
            session,
            g1,
            {"seats": "-12.5", "renewal": "2027-01-31", "tier": "gold"},
            user_id=None,
        )
        await update_field_values(session, g2, {"industry": "Freight"}, user_id=None)
        await session.flush()
        industry = await _field_id(session, "industry")
        session.add(
            CustomFieldValue(
                customer_id=ids["G1"], field_id=industry, text_value=HOSTILE_TEXT
            )
        )
        secret, _ = await create_token(session, "omar@demo.touchline.test")
    with database.batch_sessions()() as session, session.begin():
        rollups.rebuild(session, settings.zone)
    return secret


async def _field_id(session: Any, key: str) -> int:
    found = await session.scalar(select(CustomField.id).where(CustomField.key == key))
    assert found is not None
    return int(found)


async def _download(client: Any, token: str, path: str) -> bytes:
    response = await client.get(
        path, params=NOVEMBER, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status == 200, await response.text()
    return bytes(await response.read())


def _csv_rows(data: bytes) -> list[list[str]]:
    assert data.startswith(b"\xef\xbb\xbf")
    return list(csv.reader(io.StringIO(data[3:].decode("utf-8"), newline="")))


@pytest.mark.parametrize("name", ["activities", "calls"])
async def test_csv_carries_field_columns(client: Any, token: str, name: str) -> None:
    rows = _csv_rows(await _download(client, token, f"/api/v1/exports/{name}.csv"))

    header = rows[0]
    assert header[-4:] == FIELD_COLUMNS
    by_customer = {row[header.index("customer")]: row for row in rows[1:]}
    g1 = by_customer["Golden G1"][-4:]
    assert g1[0] == "'" + '=HYPERLINK("http://evil.example","x")'
    assert g1[1] == "-12.5"
    assert g1[2] == "2027-01-31"
    assert g1[3] == "gold"
    assert by_customer["Golden G2"][-4:] == ["Freight", "", "", ""]


async def test_csv_number_field_not_neutralised(client: Any, token: str) -> None:
    data = await _download(client, token, "/api/v1/exports/activities.csv")

    assert b",-12.5," in data
    assert b"'-12.5" not in data
    assert b"\x07" not in data
    assert b"\x1b" not in data


def _sheet_cells(data: bytes, number: int) -> list[list[ElementTree.Element]]:
    archive = zipfile.ZipFile(io.BytesIO(data))
    root = ElementTree.fromstring(archive.read(f"xl/worksheets/sheet{number}.xml"))
    return [
        list(row.iterfind("m:c", NS))
        for row in root.iterfind(".//m:sheetData/m:row", NS)
    ]


def _shared_strings(data: bytes) -> list[str]:
    archive = zipfile.ZipFile(io.BytesIO(data))
    if "xl/sharedStrings.xml" not in archive.namelist():
        return []
    strings = ElementTree.fromstring(archive.read("xl/sharedStrings.xml"))
    return ["".join(item.itertext()) for item in strings.iterfind("m:si", NS)]


def _date_styles(data: bytes) -> set[int]:
    """Return the cell style indexes whose number format shows a date."""
    archive = zipfile.ZipFile(io.BytesIO(data))
    styles = ElementTree.fromstring(archive.read("xl/styles.xml"))
    date_formats = {
        int(item.get("numFmtId", "0"))
        for item in styles.iterfind(".//m:numFmts/m:numFmt", NS)
        if "yy" in item.get("formatCode", "")
    }
    cell_formats = styles.find("m:cellXfs", NS)
    assert cell_formats is not None
    return {
        index
        for index, item in enumerate(cell_formats.iterfind("m:xf", NS))
        if int(item.get("numFmtId", "0")) in date_formats
    }


def _text(cell: ElementTree.Element, shared: list[str]) -> str:
    if cell.get("t") == "s":
        return shared[int(cell.findtext("m:v", "", NS))]
    assert cell.get("t") == "inlineStr", cell.attrib
    return "".join(cell.itertext())


def _column(cell: ElementTree.Element) -> str:
    found = re.match(r"[A-Z]+", cell.get("r", ""))
    assert found is not None
    return found.group(0)


@pytest.mark.parametrize(("name", "sheet"), [("activities", 1), ("calls", 1)])
async def test_xlsx_field_cells_typed(
    client: Any, token: str, name: str, sheet: int
) -> None:
    data = await _download(client, token, f"/api/v1/exports/{name}.xlsx")
    shared = _shared_strings(data)
    rows = _sheet_cells(data, sheet)
    dates = _date_styles(data)

    header = [_text(cell, shared) for cell in rows[0]]
    assert header[-4:] == FIELD_COLUMNS
    columns = {_column(cell): index for index, cell in enumerate(rows[0])}
    customer_column = header.index("customer")
    g1 = next(
        row
        for row in rows[1:]
        if any(
            columns[_column(cell)] == customer_column
            and _text(cell, shared) == "Golden G1"
            for cell in row
        )
    )
    cells = {header[columns[_column(cell)]]: cell for cell in g1}
    industry = cells["field:industry"]
    assert industry.find("m:f", NS) is None
    assert _text(industry, shared) == '=HYPERLINK("http://evil.example","x")'
    seats = cells["field:seats"]
    assert seats.get("t") is None
    assert float(seats.findtext("m:v", "", NS)) == -12.5
    renewal = cells["field:renewal"]
    assert renewal.get("t") is None
    assert int(renewal.get("s", "0")) in dates
    # 2027-01-31 is day 46418 of Excel's 1900 date system.
    assert float(renewal.findtext("m:v", "", NS)) == 46418
    assert _text(cells["field:tier"], shared) == "gold"
    assert not any(
        row_cell.find("m:f", NS) is not None for row in rows for row_cell in row
    )


async def test_xlsx_definitions_name_fields(client: Any, token: str) -> None:
    data = await _download(client, token, "/api/v1/exports/activities.xlsx")
    shared = _shared_strings(data)

    rows = [[_text(cell, shared) for cell in row] for row in _sheet_cells(data, 2)]

    definitions = {row[0]: row[1] for row in rows[1:]}
    assert definitions["field:seats"].startswith("Custom field 'Seats' (a number)")
    assert definitions["field:renewal"].startswith("Custom field 'Renewal' (a date)")
    assert "Industry" in definitions["field:industry"]
    assert "choices" in definitions["field:tier"]


async def test_summary_export_has_no_field_columns(client: Any, token: str) -> None:
    rows = _csv_rows(await _download(client, token, "/api/v1/exports/summary.csv"))

    assert not any(name.startswith("field:") for name in rows[0])


async def test_inactive_field_left_out(
    client: Any, token: str, database: Database
) -> None:
    async with transaction(database.writes) as session:
        await session.execute(
            update(CustomField).where(CustomField.key == "tier").values(active=False)
        )

    rows = _csv_rows(await _download(client, token, "/api/v1/exports/calls.csv"))

    assert rows[0][-3:] == FIELD_COLUMNS[:3]
    assert "field:tier" not in rows[0]
