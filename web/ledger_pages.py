"""The webhook ledger for ops and admins: a search page, the API and replay.

A replay runs a stored request that failed to store through the same
route, middleware and handler as a request from the network. Its signature
is not checked again, because it was valid when the request arrived and
the signature header is not kept.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp_jinja2
from aiohttp import StreamReader, web
from aiohttp.http import RawRequestMessage
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from capture import audit
from capture.access import Viewer
from capture.db import transaction
from capture.errors import Conflict, Forbidden, InvalidInput, NotFound
from capture.ledger import (
    OUTCOMES,
    REPLAYABLE,
    LedgerFilter,
    decode_body,
    replays_of,
    search,
)
from capture.models import WebhookRequest
from capture.queries import id_cursor, page_size, parse_id
from reports.periods import DateRange, parse_date
from telephony.ledger import stored_headers
from web.access import user_of, viewer_of
from web.auth import remote_of
from web.direct import serve_webhook
from web.keys import DATABASE, SETTINGS

routes = web.RouteTableDef()
PAGE = "/admin/webhooks"
PAGE_SIZE = 100
MAX_TEXT = 200
# The paths Twilio and the email providers post to, offered in the filter.
KNOWN_PATHS = (
    "/twilio/voice/status",
    "/twilio/voice/recording",
    "/twilio/sms",
    "/twilio/sms/status",
)


def require_operations(request: web.Request) -> Viewer:
    viewer = viewer_of(request)
    if not viewer.sees_organisation:
        raise Forbidden("this page needs the ops or admin role")
    return viewer


def _text(request: web.Request, name: str, max_length: int) -> str | None:
    value = request.query.get(name, "").strip()
    if len(value) > max_length:
        raise InvalidInput(f"{name} is longer than {max_length} characters", name)
    return value or None


def _day_bound(raw: str | None, name: str, zone: ZoneInfo) -> DateRange | None:
    if not raw:
        return None
    day = parse_date(raw, name)
    return DateRange(day, day, zone)


def read_filter(request: web.Request) -> tuple[LedgerFilter, int]:
    """Read the search filters from the query string; 400 names a bad one."""
    zone = request.app[SETTINGS].zone
    outcome = _text(request, "outcome", 16)
    if outcome is not None and outcome not in OUTCOMES:
        raise InvalidInput(
            f"outcome {outcome!r} is not one of {', '.join(OUTCOMES)}", "outcome"
        )
    first = _day_bound(request.query.get("from"), "from", zone)
    last = _day_bound(request.query.get("to"), "to", zone)
    if first is not None and last is not None and last.first < first.first:
        raise InvalidInput(f"to {last.first} is before from {first.first}", "to")
    criteria = LedgerFilter(
        path=_text(request, "path", 200),
        outcome=outcome,
        sid=_text(request, "sid", 64),
        text=_text(request, "q", MAX_TEXT),
        start=first.start if first is not None else None,
        end=last.end if last is not None else None,
        before_id=id_cursor(request.query.get("cursor")),
    )
    return criteria, page_size(request.query.get("limit"), PAGE_SIZE)


async def _search(
    request: web.Request,
) -> tuple[list[WebhookRequest], dict[int, WebhookRequest], str | None]:
    require_operations(request)
    criteria, limit = read_filter(request)
    async with request.app[DATABASE].reads() as session:
        found = await search(session, criteria, limit)
        page = found[:limit]
        replays = await replays_of(session, [row.id for row in page])
    following = str(page[-1].id) if len(found) > limit else None
    return page, replays, following


@routes.get(PAGE)
@aiohttp_jinja2.template("webhooks.html")
async def ledger_page(request: web.Request) -> dict[str, Any]:
    rows, replays, following = await _search(request)
    return {
        "rows": rows,
        "replays": replays,
        "next": following,
        "query": {key: value for key, value in request.query.items() if value},
        "outcomes": OUTCOMES,
        "paths": KNOWN_PATHS,
        "replayable": REPLAYABLE,
    }


def ledger_json(row: WebhookRequest, zone: ZoneInfo) -> dict[str, Any]:
    return {
        "id": row.id,
        "received_at": row.received_at.astimezone(zone).isoformat(),
        "path": row.path,
        "query": row.query,
        "signature": row.signature,
        "outcome": row.outcome,
        "status": row.status_code,
        "sid": row.sid,
        "activity_id": row.activity_id,
        "error": row.error,
        "body_kept": row.body is not None,
        "replay_of": row.replay_of,
    }


@routes.get("/api/v1/webhooks")
async def ledger_api(request: web.Request) -> web.Response:
    rows, _, following = await _search(request)
    zone = request.app[SETTINGS].zone
    items = [ledger_json(row, zone) for row in rows]
    return web.json_response({"items": items, "next": following})


@routes.post(PAGE + "/{id}/replay")
async def replay_page(request: web.Request) -> web.Response:
    replayed = await _replay(request)
    target = f"{PAGE}?sid={replayed.sid}" if replayed.sid else PAGE
    raise web.HTTPSeeOther(target)


@routes.post("/api/v1/webhooks/{id}/replay")
async def replay_api(request: web.Request) -> web.Response:
    replayed = await _replay(request)
    return web.json_response(ledger_json(replayed, request.app[SETTINGS].zone))


async def _replay(request: web.Request) -> WebhookRequest:
    """Replay a failed request; return the ledger row of the replay."""
    require_operations(request)

    raw = request.match_info["id"]
    request_id = parse_id(raw)
    if request_id is None:
        raise NotFound(f"webhook request {raw!r} not found", "id")
    database = request.app[DATABASE]
    async with database.reads() as session:
        original = await session.get(WebhookRequest, request_id)
    if original is None:
        raise NotFound(f"webhook request {request_id} not found", "id")

    if original.outcome not in REPLAYABLE or original.body is None:
        raise Conflict(
            f"webhook request {request_id} is {original.outcome}; "
            "only requests that failed to store can be replayed",
            "id",
        )

    await _run_replay(request, original)
    async with database.reads() as session:
        replays = await replays_of(session, [request_id])
    replayed = replays.get(request_id)
    if replayed is None:
        raise NotFound(f"the replay of webhook request {request_id} left no row", "id")

    async with transaction(database.writes) as session:
        audit.record(
            session,
            audit.WEBHOOK_REPLAYED,
            actor=user_of(request),
            target_type="webhook_request",
            target_id=request_id,
            detail={"path": original.path, "outcome": replayed.outcome},
            remote=remote_of(request),
        )
    return replayed


async def _run_replay(request: web.Request, original: WebhookRequest) -> None:
    stored = _stored_request(request, original)
    match_info = await request.app.router.resolve(stored)
    if match_info.http_exception is not None:
        raise Conflict(
            f"no webhook handles {original.path!r} any more; it cannot be replayed",
            "id",
        )
    match_info.add_app(request.app)
    match_info.freeze()
    # NOTE: aiohttp has no public setter for a request's route match; its
    # own dispatcher sets this attribute in the same way.
    stored._match_info = match_info
    # The ledger row of the replay contains the status and any error.
    with contextlib.suppress(web.HTTPException):
        await serve_webhook(stored, match_info.handler, replay_of=original.id)


def _stored_request(request: web.Request, original: WebhookRequest) -> web.Request:
    """Build a request from a ledger row, on the connection of `request`."""
    target = original.path + (f"?{original.query}" if original.query else "")
    body = decode_body(original)
    headers = CIMultiDict(stored_headers(original.headers))
    headers["Content-Length"] = str(len(body))
    message = RawRequestMessage(
        method="POST",
        path=target,
        version=request.version,
        headers=CIMultiDictProxy(headers),
        raw_headers=tuple(
            (name.encode("utf-8"), value.encode("utf-8"))
            for name, value in headers.items()
        ),
        should_close=False,
        compression=None,
        upgrade=False,
        chunked=False,
        url=URL(target, encoded=True),
    )
    loop = asyncio.get_running_loop()
    payload = StreamReader(request.protocol, 2**16, loop=loop)
    payload.feed_data(body)
    payload.feed_eof()
    return web.Request(
        message,
        payload,
        request.protocol,
        request.writer,
        request.task,
        loop,
        client_max_size=request.client_max_size,
    )
