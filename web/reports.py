"""The reports page, the definitions page and the report API.

The page and the API read the same functions of `reports/`, so they show
the same numbers for the same query values: `kind` (month, quarter or
year), `period` (2026-11, 2026-Q4 or 2026) and `team` (a team id).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiohttp_jinja2
from aiohttp import web
from markupsafe import Markup
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from capture import audit
from capture.access import Viewer
from capture.db import transaction
from capture.errors import InvalidInput
from capture.models import Team
from capture.queries import parse_id
from reports.busy import ACTIONS_FACTOR, MIN_TEAM, TARGETS_FACTOR
from reports.charts import trend_svg
from reports.custom_columns import with_custom_fields
from reports.export import ExportFilter
from reports.kpis import FIGURES, KpiReport, customer_scope, kpi_report
from reports.periods import CalendarPeriod, parse_period, parse_range
from reports.reps import RepSummary, rep_summaries
from reports.tables import (
    Table,
    activities_table,
    calls_table,
    kpi_table,
    summary_table,
)
from reports.xlsx import table_csv, table_xlsx
from web.access import user_of, viewer_of
from web.auth import remote_of
from web.i18n import gettext as _
from web.i18n import gettext_noop as N_
from web.keys import DATABASE, SETTINGS

log = logging.getLogger(__name__)
routes = web.RouteTableDef()

FIGURE_NAMES = {
    "conversion_rate": N_("Conversion rate"),
    "repeat_rate": N_("Repeat-purchase rate"),
    "first_order_value": N_("First-order value"),
    "cycle_days_median": N_("Follow-up cycle, median days"),
    "cycle_days_mean": N_("Follow-up cycle, mean days"),
    "follow_up_count": N_("Follow-up count, mean touches"),
}
RATES = frozenset({"conversion_rate", "repeat_rate"})


@dataclass(frozen=True)
class ReportQuery:
    period: CalendarPeriod
    team_id: int | None


async def read_query(request: web.Request, session: AsyncSession) -> ReportQuery:
    """Read and check `kind`, `period` and `team`; a bad value names its field."""
    settings = request.app[SETTINGS]
    today = datetime.now(settings.zone).date()
    period = parse_period(
        request.query.get("kind"), request.query.get("period"), today, settings.zone
    )
    team_id = await _team_of(request, session)
    return ReportQuery(period, team_id)


async def _team_of(request: web.Request, session: AsyncSession) -> int | None:
    raw = request.query.get("team", "").strip()
    if not raw:
        return None
    team_id = parse_id(raw)
    if team_id is None:
        raise InvalidInput(f"team {raw!r} is not a team id", "team")
    if await session.get(Team, team_id) is None:
        raise InvalidInput(f"team {team_id} not found", "team")
    return team_id


async def visible_teams(session: AsyncSession, viewer: Viewer) -> list[Team]:
    query = select(Team).order_by(Team.name)
    if not viewer.sees_organisation:
        query = query.where(Team.id == viewer.team_id)
    return list((await session.scalars(query)).all())


async def load_reports(
    session: AsyncSession, viewer: Viewer, query: ReportQuery
) -> tuple[list[RepSummary], KpiReport]:
    summaries = await rep_summaries(session, query.period.range, viewer, query.team_id)
    kpis = await kpi_report(
        session, query.period, customer_scope(viewer, query.team_id)
    )
    return summaries, kpis


def charts_of(report: KpiReport) -> dict[str, Markup]:
    """Draw one trend chart per figure from escaped parts of SVG text."""
    labels = [kpis.period for kpis in report.trend]
    return {
        name: Markup(
            trend_svg(
                _(FIGURE_NAMES[name]), labels, [k.value(name) for k in report.trend]
            )
        )
        for name in FIGURES
    }


@routes.get("/reports")
@aiohttp_jinja2.template("reports.html")
async def reports_page(request: web.Request) -> dict[str, Any]:
    viewer = viewer_of(request)
    async with request.app[DATABASE].reads() as session:
        query = await read_query(request, session)
        summaries, kpis = await load_reports(session, viewer, query)
        teams = await visible_teams(session, viewer)
    return {
        "query": query,
        "summaries": summaries,
        "kpis": kpis,
        "charts": charts_of(kpis),
        "first_order": {
            currency: int(amount * 100)
            for currency, amount in kpis.current.first_order_value.items()
        },
        "figure_names": FIGURE_NAMES,
        "rates": RATES,
        "teams": teams,
    }


@routes.get("/reports/definitions")
@aiohttp_jinja2.template("report_definitions.html")
async def definitions_page(request: web.Request) -> dict[str, Any]:
    return {
        "actions_factor": ACTIONS_FACTOR,
        "targets_factor": TARGETS_FACTOR,
        "min_team": MIN_TEAM,
    }


def _period_json(query: ReportQuery, timezone: str) -> dict[str, Any]:
    span = query.period.range
    return {
        "kind": query.period.kind,
        "period": query.period.label,
        "from": span.first.isoformat(),
        "to": span.last.isoformat(),
        "timezone": timezone,
        "team": query.team_id,
    }


@routes.get("/api/v1/reports/kpis")
async def kpis_api(request: web.Request) -> web.Response:
    viewer = viewer_of(request)
    async with request.app[DATABASE].reads() as session:
        query = await read_query(request, session)
        report = await kpi_report(
            session, query.period, customer_scope(viewer, query.team_id)
        )
    body = _period_json(query, request.app[SETTINGS].timezone)
    body.update(report.to_json())
    return web.json_response(body)


@routes.get("/api/v1/reports/summary")
async def summary_api(request: web.Request) -> web.Response:
    viewer = viewer_of(request)
    async with request.app[DATABASE].reads() as session:
        query = await read_query(request, session)
        summaries = await rep_summaries(
            session, query.period.range, viewer, query.team_id
        )
    body = _period_json(query, request.app[SETTINGS].timezone)
    body["items"] = [summary.to_json() for summary in summaries]
    return web.json_response(body)


EXPORTS = ("activities", "calls", "summary", "kpis")
FORMATS = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


def _export_name(request: web.Request) -> tuple[str, str]:
    name, fmt = request.match_info["name"], request.match_info["format"]
    if name not in EXPORTS:
        raise InvalidInput(
            f"export {name!r} is not one of {', '.join(EXPORTS)}", "name"
        )
    if fmt not in FORMATS:
        raise InvalidInput(f"format {fmt!r} is not csv or xlsx", "format")
    return name, fmt


def _optional_id(request: web.Request, field: str) -> int | None:
    raw = request.query.get(field, "").strip()
    if not raw:
        return None
    value = parse_id(raw)
    if value is None:
        raise InvalidInput(f"{field} {raw!r} is not an id", field)
    return value


async def _export_table(
    request: web.Request, session: AsyncSession, name: str
) -> tuple[Table, str]:
    """Build the table and the file name stem; a bad filter names its field."""
    settings = request.app[SETTINGS]
    viewer = viewer_of(request)
    query = await read_query(request, session)
    span = query.period.range
    if "from" in request.query or "to" in request.query:
        span = parse_range(
            request.query.get("from"), request.query.get("to"), settings.zone
        )
    stem = f"{name}_{span.first}_{span.last}"
    if name == "summary":
        summaries = await rep_summaries(session, span, viewer, query.team_id)
        return summary_table(summaries), stem
    if name == "kpis":
        report = await kpi_report(
            session, query.period, customer_scope(viewer, query.team_id)
        )
        return kpi_table(report), f"kpis_{query.period.label}"
    options = ExportFilter(
        span,
        viewer,
        team_id=query.team_id,
        rep_id=_optional_id(request, "rep"),
        channel="call" if name == "calls" else None,
    )
    if name == "calls":
        table = calls_table(session, options)
    else:
        table = activities_table(session, options)
    return await with_custom_fields(session, table), stem


@routes.get(r"/api/v1/exports/{name:[a-z]+}.{format:[a-z]+}")
async def export_report(request: web.Request) -> web.StreamResponse:
    name, fmt = _export_name(request)
    settings = request.app[SETTINGS]
    async with request.app[DATABASE].reads() as session:
        table, stem = await _export_table(request, session, name)
        await record_export(request, f"{name}.{fmt}")
        response = web.StreamResponse(
            headers={
                "Content-Type": FORMATS[fmt],
                "Content-Disposition": f'attachment; filename="{stem}.{fmt}"',
            }
        )
        await response.prepare(request)
        chunks = (
            table_csv(table) if fmt == "csv" else table_xlsx(table, settings.timezone)
        )
        try:
            async for chunk in chunks:
                await response.write(chunk)
        except Exception:
            # The status line is sent, so closing early is how the client learns of it.
            log.exception("export %s.%s failed", name, fmt)
            if request.transport is not None:
                request.transport.close()
            return response
    await response.write_eof()
    return response


async def record_export(request: web.Request, target: str) -> None:
    viewer = viewer_of(request)
    async with transaction(request.app[DATABASE].writes) as session:
        audit.record(
            session,
            audit.EXPORT_DOWNLOADED,
            actor=user_of(request),
            target_type="export",
            target_id=target,
            detail={
                "query": dict(request.query),
                "scope": "organisation" if viewer.sees_organisation else viewer.role,
            },
            remote=remote_of(request),
        )
