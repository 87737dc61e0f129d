"""Command-line exports of the reports and the rebuild of their kept counts.

`touchline export calls|summary|kpis [--format csv|xlsx]` writes the same
tables as the API with no viewer to limit them, because the command line
runs with database access. A progress bar on stderr counts the rows.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from tqdm import tqdm

from capture import rollups
from capture.access import Viewer
from capture.db import Database
from capture.errors import InvalidInput
from capture.models import Team
from capture.queries import MAX_ID
from capture.settings import Settings, load_settings
from reports.custom_columns import with_custom_fields
from reports.export import ExportFilter, count_rows
from reports.kpis import customer_scope, kpi_report
from reports.periods import DateRange, parse_period, parse_range
from reports.reps import rep_summaries
from reports.tables import (
    Table,
    activities_table,
    calls_table,
    kpi_table,
    summary_table,
)
from reports.xlsx import table_csv, write_xlsx

REPORTS = ("activities", "calls", "summary", "kpis")


def add_commands(export: Any, commands: Any) -> None:
    """Add the report exports under `export` and `reports rebuild`."""
    for name in REPORTS[1:]:
        parser = export.add_parser(name, help=f"the {name} export as CSV or XLSX")
        add_export_options(parser)
        parser.set_defaults(run=run_export, report=name)
    reports = commands.add_parser("reports", help="report data").add_subparsers(
        required=True, metavar="WHAT"
    )
    rebuild = reports.add_parser(
        "rebuild",
        help="count every touch again into the daily and monthly counts and "
        "recompute every customer's first touch and first win",
    )
    rebuild.set_defaults(run=run_rebuild)


def add_export_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--from", dest="first", help="first day (YYYY-MM-DD)")
    parser.add_argument("--to", dest="last", help="last day (YYYY-MM-DD)")
    parser.add_argument(
        "--kind", choices=("month", "quarter", "year"), help="calendar period type"
    )
    parser.add_argument("--period", help="calendar period: 2026-11, 2026-Q4 or 2026")
    parser.add_argument("--team", type=int, help="team id")
    parser.add_argument("--format", choices=("csv", "xlsx"), default="csv")
    parser.add_argument("-o", "--output", type=Path, help="file (default stdout)")


def run_export(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    rows = asyncio.run(_export(settings, args))
    print(f"{rows} rows exported", file=sys.stderr)
    return 0


def run_rebuild(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    database = Database(settings.database_url)
    try:
        with database.batch_sessions()() as session, session.begin():
            rows = rollups.rebuild(session, settings.zone)
    finally:
        asyncio.run(database.dispose())
    print(f"{rows} daily count rows written, with their months", file=sys.stderr)
    return 0


def _span(settings: Settings, args: argparse.Namespace) -> DateRange:
    if args.first or args.last:
        return parse_range(args.first, args.last, settings.zone)
    today = datetime.now(settings.zone).date()
    return parse_period(args.kind, args.period, today, settings.zone).range


async def _table(
    session: AsyncSession, settings: Settings, args: argparse.Namespace
) -> tuple[Table, int | None]:
    """Build the table to export and return its row count when known."""
    span = _span(settings, args)
    if args.team is not None:
        await _check_team(session, args.team)
    if args.report == "summary":
        summaries = await rep_summaries(session, span, _everyone(), args.team)
        return summary_table(summaries), len(summaries)
    if args.report == "kpis":
        today = datetime.now(settings.zone).date()
        period = parse_period(args.kind, args.period, today, settings.zone)
        scope = customer_scope(_everyone(), args.team)
        return kpi_table(await kpi_report(session, period, scope)), None
    channel = "call" if args.report == "calls" else None
    options = ExportFilter(span, None, team_id=args.team, channel=channel)
    total = await count_rows(session, options)
    if args.report == "calls":
        table = calls_table(session, options)
    else:
        table = activities_table(session, options)
    return await with_custom_fields(session, table), total


async def _check_team(session: AsyncSession, team_id: int) -> None:
    """Raise InvalidInput unless `team_id` is a stored team, as the API does."""
    if not 0 < team_id <= MAX_ID or await session.get(Team, team_id) is None:
        raise InvalidInput(
            f"team {team_id} not found; the page /admin/teams lists the team ids",
            "team",
        )


def _everyone() -> Viewer:
    """Return a viewer of the whole organisation, for the command line."""
    return Viewer(user_id=0, email="", role="ops", team_id=None)


async def _export(settings: Settings, args: argparse.Namespace) -> int:
    database = Database(settings.database_url)
    try:
        async with database.reads() as session:
            table, total = await _table(session, settings, args)
            with tqdm(total=total, unit="rows", file=sys.stderr) as progress:
                if args.format == "xlsx":
                    await _write_xlsx(table, settings, args.output, progress.update)
                else:
                    await _write_csv(table, args.output, progress.update)
                return int(progress.n)
    finally:
        await database.dispose()


async def _write_csv(table: Table, path: Path | None, on_rows: Any) -> None:
    output = path.open("wb") if path else sys.stdout.buffer
    try:
        async for chunk in table_csv(table, on_rows):
            output.write(chunk)
    finally:
        if path:
            output.close()


async def _write_xlsx(
    table: Table, settings: Settings, path: Path | None, on_rows: Any
) -> None:
    if path is not None:
        await write_xlsx(table, path, settings.timezone, on_rows)
        return
    with tempfile.TemporaryDirectory(prefix="touchline-xlsx-") as folder:
        temporary = Path(folder) / "export.xlsx"
        await write_xlsx(table, temporary, settings.timezone, on_rows)
        sys.stdout.buffer.write(temporary.read_bytes())
