"""The JSON API of a customer's deals and the payments against them.

Reading follows the customer's access rules; changing needs a role that
works with customers (ops read only). Amounts are decimal strings.
"""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from capture import deals
from capture.db import transaction
from capture.errors import NotFound
from capture.models import Deal, Payment
from capture.queries import get_customer, parse_id
from web.access import viewer_of
from web.keys import DATABASE, SETTINGS
from web.runtime import current_settings
from web.values_api import _editor, customer_id_of, json_object

routes = web.RouteTableDef()


def payment_json(payment: Payment, zone: ZoneInfo) -> dict[str, Any]:
    return {
        "id": payment.id,
        "deal_id": payment.deal_id,
        "amount": deals.money_text(payment.amount_minor, payment.currency),
        "currency": payment.currency,
        "received_at": payment.received_at.astimezone(zone).isoformat(),
    }


def deal_json(deal: Deal, payments: list[Payment], zone: ZoneInfo) -> dict[str, Any]:
    def local(value: Any) -> str | None:
        return None if value is None else value.astimezone(zone).isoformat()

    collected = sum(p.amount_minor for p in payments if p.deal_id == deal.id)
    return {
        "id": deal.id,
        "customer_id": deal.customer_id,
        "owner_id": deal.owner_id,
        "title": deal.title,
        "stage": deal.stage,
        "currency": deal.currency,
        "expected_amount": deals.money_text(deal.expected_minor, deal.currency),
        "signed_amount": deals.money_text(deal.signed_minor, deal.currency),
        "collected_amount": deals.money_text(collected, deal.currency),
        "created_at": local(deal.created_at),
        "won_at": local(deal.won_at),
        "lost_at": local(deal.lost_at),
        "lost_reason": deal.lost_reason,
        "payments": [payment_json(p, zone) for p in payments if p.deal_id == deal.id],
    }


def _deal_id(request: web.Request) -> int:
    raw = request.match_info["id"]
    number = parse_id(raw)
    if number is None:
        raise NotFound(f"deal {raw[:20]!r} not found", "id")
    return number


async def _visible_deal(request: web.Request, session: AsyncSession) -> Deal:
    """Return the deal if the viewer may see its customer, else raise NotFound."""
    deal = await deals.get_deal(session, _deal_id(request))
    await get_customer(session, viewer_of(request), deal.customer_id)
    return deal


async def _one_deal_json(session: AsyncSession, deal: Deal, zone: ZoneInfo) -> Any:
    payments = await deals.payments_of(session, [deal.id])
    return deal_json(deal, payments, zone)


@routes.get("/api/v1/customers/{id}/deals")
async def list_deals(request: web.Request) -> web.Response:
    zone = request.app[SETTINGS].zone
    async with request.app[DATABASE].reads() as session:
        customer = await get_customer(
            session, viewer_of(request), customer_id_of(request)
        )
        found = await deals.deals_of(session, customer.id)
        payments = await deals.payments_of(session, [deal.id for deal in found])
    return web.json_response(
        {"items": [deal_json(deal, payments, zone) for deal in found]}
    )


@routes.post("/api/v1/customers/{id}/deals")
async def create_deal(request: web.Request) -> web.Response:
    zone = request.app[SETTINGS].zone
    viewer = _editor(viewer_of(request))
    document = await json_object(request)
    currency = (await current_settings(request)).currency
    async with transaction(request.app[DATABASE].writes) as session:
        customer = await get_customer(session, viewer, customer_id_of(request))
        deal = await deals.create_deal(session, customer, document, currency)
        body = await _one_deal_json(session, deal, zone)
    return web.json_response(body, status=201)


@routes.patch("/api/v1/deals/{id}")
async def update_deal(request: web.Request) -> web.Response:
    zone = request.app[SETTINGS].zone
    _editor(viewer_of(request))
    document = await json_object(request)
    async with transaction(request.app[DATABASE].writes) as session:
        deal = await _visible_deal(request, session)
        await deals.update_deal(session, deal, document, zone)
        body = await _one_deal_json(session, deal, zone)
    return web.json_response(body)


@routes.post("/api/v1/deals/{id}/payments")
async def add_payment(request: web.Request) -> web.Response:
    zone = request.app[SETTINGS].zone
    _editor(viewer_of(request))
    document = await json_object(request)
    async with transaction(request.app[DATABASE].writes) as session:
        deal = await _visible_deal(request, session)
        payment = await deals.add_payment(session, deal, document, zone)
        body = payment_json(payment, zone)
    return web.json_response(body, status=201)
