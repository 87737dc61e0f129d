"""The reports page, the definitions page and the report API.

The page and the API read the same functions of `reports/`, so they show
the same numbers for the same query values: `kind` (month, quarter or
year), `period` (2026-11, 2026-Q4 or 2026) and `team` (a team id).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiohttp_jinja2
from aiohttp import web
from markupsafe import Markup
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from capture.access import Viewer
from capture.errors import InvalidInput
from capture.models import Team
from reports.busy import ACTIONS_FACTOR, MIN_TEAM, TARGETS_FACTOR
from reports.charts import trend_svg
from reports.kpis import FIGURES, KpiReport, customer_scope, kpi_report
from reports.periods import CalendarPeriod, parse_period
from reports.reps import RepSummary, rep_summaries
from web.access import viewer_of
from web.i18n import gettext as _
from web.i18n import gettext_noop as N_
from web.keys import DATABASE, SETTINGS

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
    if not raw.isdigit():
        raise InvalidInput(f"team {raw!r} is not a team id", "team")
    team_id = int(raw)
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
    """One trend chart per figure; the SVG text is built from escaped parts."""
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
