"""The report tables of the exports: columns with definitions, then rows.

Every export, CSV or XLSX, is a `Table`: its columns, each defined in
words for the definitions sheet, and its rows in chunks. Money columns
carry their currency in the name (`signed_USD`), so amounts stay numbers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from capture.models import Activity, Call, Customer, Team, User
from reports.activity_csv import encoded_activity_rows
from reports.export import (
    COLUMNS,
    ROWS_PER_CHUNK,
    ExportFilter,
    activity_rows,
    filter_conditions,
)
from reports.kpis import KpiReport
from reports.reps import RepSummary

Rows = Callable[[], AsyncIterator[list[list[Any]]]]
EncodedRows = Callable[[], AsyncIterator[tuple[bytes, int]]]

ACTIVITY_DEFINITIONS = {
    "activity_id": "The touch's id; the API and the pages use the same id.",
    "occurred_at": "When the touch happened, in the organisation's time zone.",
    "date": "The calendar day of the touch in the organisation's time zone.",
    "rep": "The rep who made or received the touch.",
    "rep_email": "The rep's email address.",
    "team": "The rep's team.",
    "customer_id": "The customer's id.",
    "customer": "The customer's name.",
    "channel": "call, sms, mms, email, chat, meeting or note.",
    "direction": "outbound (made by the rep) or inbound (received).",
    "status": "The call or message status that Twilio last reported.",
    "talk_seconds": "Talk time of a call in seconds (Twilio's CallDuration).",
    "text": "The message body or the touch's summary.",
}
CALL_COLUMNS = (
    "activity_id",
    "call_sid",
    "occurred_at",
    "date",
    "rep",
    "rep_email",
    "team",
    "customer_id",
    "customer",
    "direction",
    "status",
    "answered",
    "talk_seconds",
)
CALL_DEFINITIONS = {
    **ACTIVITY_DEFINITIONS,
    "call_sid": "Twilio's CallSid of the call.",
    "answered": "1 when the call had talk time above zero, else 0.",
}
SUMMARY_COUNTS = {
    "calls": "Calls made plus calls received.",
    "calls_made": "Outbound calls.",
    "calls_received": "Inbound calls.",
    "answered_calls": "Calls with talk time above zero.",
    "talk_seconds": "Summed talk time of the calls, in seconds.",
    "sms": "Text messages sent plus received.",
    "sms_sent": "Text messages the rep sent.",
    "sms_received": "Text messages the rep received.",
    "emails": "Emails sent and received.",
    "other_touches": "Meetings, notes, chat messages and other touches.",
    "plans_due": "Next-step plans whose window ended in the period.",
    "plans_fulfilled": "Of those, plans completed before their window ended.",
    "new_opportunities": "Deals created in the period.",
    "new_customers": "Customers created in the period.",
    "won_customers": "Customers whose first deal was won in the period.",
    "lost_customers": "Customers closed as lost in the period.",
}
SUMMARY_MONEY = {
    "signed": "Signed amounts of deals won in the period.",
    "collected": "Payments received in the period.",
    "new_opportunity_amount": "Expected amounts of the deals created.",
    "won_amount": "Amounts of the first deals of the won customers.",
    "lost_amount": "Expected amounts of the lost customers' lost deals.",
}


@dataclass
class Table:
    name: str
    columns: list[str]
    definitions: dict[str, str]
    rows: Rows
    # The rows as CSV bytes with their count per chunk, where a table has a
    # faster way to write them than formatting `rows`.
    csv_rows: EncodedRows | None = None


def activities_table(session: AsyncSession, options: ExportFilter) -> Table:
    return Table(
        "activities",
        list(COLUMNS),
        ACTIVITY_DEFINITIONS,
        lambda: activity_rows(session, options),
        lambda: encoded_activity_rows(session, options, []),
    )


def calls_table(session: AsyncSession, options: ExportFilter) -> Table:
    async def rows() -> AsyncIterator[list[list[Any]]]:
        rep = aliased(User)
        query = (
            select(Activity, Call, rep.name, rep.email, Team.name, Customer.name)
            .join(Call, Call.activity_id == Activity.id)
            .outerjoin(rep, Activity.rep_id == rep.id)
            .outerjoin(Team, rep.team_id == Team.id)
            .outerjoin(Customer, Activity.customer_id == Customer.id)
            .where(*filter_conditions(options, rep))
            .order_by(Activity.occurred_at, Activity.id)
            .execution_options(yield_per=ROWS_PER_CHUNK)
        )
        result = await session.stream(query)
        async for partition in result.partitions(ROWS_PER_CHUNK):
            yield [_call_row(record, options) for record in partition]

    return Table("calls", list(CALL_COLUMNS), CALL_DEFINITIONS, rows)


def _call_row(record: Any, options: ExportFilter) -> list[Any]:
    activity, call, rep_name, rep_email, team, customer = record
    local = activity.occurred_at.astimezone(options.period.zone)
    talk = call.talk_seconds
    return [
        activity.id,
        call.call_sid,
        local,
        local.date(),
        rep_name or "",
        rep_email or "",
        team or "",
        activity.customer_id,
        customer or "",
        activity.direction,
        call.status,
        1 if talk else 0,
        talk,
    ]


def summary_table(summaries: list[RepSummary]) -> Table:
    currencies = sorted(
        {
            currency
            for summary in summaries
            for name in SUMMARY_MONEY
            for currency in getattr(summary, name)
        }
    )
    money_columns = [(name, c) for name in SUMMARY_MONEY for c in currencies]
    columns = ["rep_id", "rep", "rep_email", "team", *SUMMARY_COUNTS]
    columns += [f"{name}_{currency}" for name, currency in money_columns]
    columns += ["plan_fulfilment_rate", "busy_not_converting"]
    definitions = {
        "rep_id": "The rep's user id; filter the activity export with rep=<id>.",
        "rep": "The rep's name.",
        "rep_email": "The rep's email address.",
        "team": "The rep's team.",
        **SUMMARY_COUNTS,
        "plan_fulfilment_rate": "plans_fulfilled / plans_due; empty with none due.",
        "busy_not_converting": "1 when the busy-but-not-converting rule flags the rep.",
    }
    for name, currency in money_columns:
        definitions[f"{name}_{currency}"] = f"{SUMMARY_MONEY[name]} In {currency}."

    def row(summary: RepSummary) -> list[Any]:
        cells: list[Any] = [summary.rep_id, summary.name, summary.email]
        cells.append(summary.team or "")
        cells += [getattr(summary, name) for name in SUMMARY_COUNTS]
        cells += [
            _major(getattr(summary, name).get(currency))
            for name, currency in money_columns
        ]
        cells += [summary.plan_fulfilment_rate, int(summary.busy_not_converting)]
        return cells

    async def rows() -> AsyncIterator[list[list[Any]]]:
        yield [row(summary) for summary in summaries]

    return Table("summary", columns, definitions, rows)


def _major(minor: int | None) -> Decimal | None:
    return None if minor is None else Decimal(minor).scaleb(-2)


def kpi_table(report: KpiReport) -> Table:
    columns = [
        "figure",
        "period",
        "current",
        "previous",
        "previous_change",
        "year_earlier",
        "year_change",
    ]
    definitions = {
        "figure": "The KPI; the definitions page of the reports says each in words.",
        "period": "The calendar period in the organisation's time zone.",
        "current": "The figure in the period; empty when there is no data.",
        "previous": "The figure in the previous period of the same kind.",
        "previous_change": "(current - previous) / previous.",
        "year_earlier": "The figure in the same period a year earlier.",
        "year_change": "(current - year_earlier) / year_earlier.",
    }

    async def rows() -> AsyncIterator[list[list[Any]]]:
        period = report.current.period
        yield [
            [
                item.figure,
                period,
                item.current,
                item.previous,
                item.previous_change,
                item.year_earlier,
                item.year_change,
            ]
            for item in report.comparisons
        ]

    return Table("kpis", columns, definitions, rows)
