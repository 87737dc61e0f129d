"""Recording each webhook request in the ledger, whichever handler serves it.

`observe` runs around the handler of any webhook path. A handler that
stores through the batch writer passes its change through `store_with_entry`,
which writes the ledger row in the same transaction. Every other request
(rejected, failed, or successful without a stored change) gets its row from
`observe` once the response is known.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

from capture.ledger import (
    FORBIDDEN_BODY_BYTES,
    Ledgered,
    LedgerEntry,
    insert_rows_of,
    kept_headers,
    with_ledger,
)
from capture.writer import BatchWriter, BulkApply

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

LEDGER_ENTRY = web.RequestKey("ledger_entry", LedgerEntry)
SIGNATURE_HEADER = "X-Twilio-Signature"
FORM_TYPE = "application/x-www-form-urlencoded"
# Form fields that name the resource of a request, most specific first.
SID_FIELDS = ("RecordingSid", "MessageSid", "SmsSid", "CallSid")
SID = re.compile(r"[A-Z]{2}[0-9a-fA-F]{32}")
# What reading a body the handler rejected can raise: a broken encoding,
# a body over the size limit, a closed connection.
BODY_ERRORS = (
    web.HTTPException,
    RequestPayloadError,
    HttpProcessingError,
    LookupError,
    ValueError,
    OSError,
    RuntimeError,
)


def sid_of(form: Mapping[str, str]) -> str | None:
    """Return the SID a webhook form is about, if it carries a valid one."""
    for name in SID_FIELDS:
        value = form.get(name, "")
        if SID.fullmatch(value):
            return value
    return None


async def store_with_entry(
    request: web.Request,
    writer: BatchWriter,
    apply: BulkApply,
    payload: Any,
    status_code: int,
) -> Any:
    """Submit a change to the writer with the request's ledger row, if it has one.

    `status_code` is what the handler returns once the change is committed.
    """
    entry = request.get(LEDGER_ENTRY)
    if entry is None:
        return await writer.submit(apply, payload)
    entry.status_code = status_code
    try:
        result = await writer.submit(with_ledger(apply), Ledgered(payload, entry))
    except Exception as error:
        entry.error = f"{type(error).__name__}: {error}"
        raise
    entry.stored = True
    return result


def is_replay(request: web.Request) -> bool:
    """True for a stored request that an operator replays; its signature was
    checked when it first arrived."""
    entry = request.get(LEDGER_ENTRY)
    return entry is not None and entry.replay_of is not None


def mark_verified(request: web.Request, form: Mapping[str, str]) -> None:
    entry = request.get(LEDGER_ENTRY)
    if entry is not None:
        entry.sid = sid_of(form)
        if entry.replay_of is None:
            entry.signature = "valid"


async def observe(
    request: web.Request,
    handler: Handler,
    writer: BatchWriter,
    *,
    replay_of: int | None = None,
) -> web.StreamResponse:
    """Run `handler` and make sure the request ends up in the ledger."""
    _, _, query = request.raw_path.partition("?")
    entry = LedgerEntry(path=request.path, query=query, replay_of=replay_of)
    request[LEDGER_ENTRY] = entry
    try:
        response = await handler(request)
    except web.HTTPException as error:
        await _record_rejection(request, writer, entry, error.status, error.text)
        raise
    except Exception as error:
        await _record_rejection(request, writer, entry, 500, repr(error))
        raise
    if response.status >= 400:
        text = response.text if isinstance(response, web.Response) else None
        await _record_rejection(request, writer, entry, response.status, text)
    elif not entry.stored:
        row = entry.row(outcome="accepted", status_code=response.status)
        _post(writer, row)
    return response


def outcome_of(status: int) -> str:
    if status == 403:
        return "forbidden"
    if status >= 500:
        return "failed"
    return "invalid"


async def _record_rejection(
    request: web.Request,
    writer: BatchWriter,
    entry: LedgerEntry,
    status: int,
    error: str | None,
) -> None:
    """Write the row of a request that stored nothing, with its body if needed.

    The row is awaited so that it is committed before the error response
    goes out. Rejections are rare, and the writer batches them with other work.
    """
    outcome = outcome_of(status)
    if outcome == "forbidden" and entry.replay_of is None:
        entry.signature = (
            "invalid" if SIGNATURE_HEADER in request.headers else "missing"
        )
    if entry.sid is None:
        entry.sid = await _sid_from_body(request)
    body: bytes | None = None
    headers: dict[str, str] | None = None
    if outcome in ("failed", "forbidden"):
        body = await _body(request)
        if outcome == "forbidden":
            body = body[:FORBIDDEN_BODY_BYTES]
        headers = kept_headers(request.headers)
    row = entry.row(
        outcome=outcome,
        status_code=status,
        error=entry.error or error,
        body=body,
        headers=headers,
    )
    try:
        await writer.submit(insert_rows_of, row)
    except Exception as failure:
        log.warning(
            "webhook ledger row for %r (%s) not stored: %r",
            request.path,
            outcome,
            failure,
        )


async def _body(request: web.Request) -> bytes:
    # The handler has read the body already for forms and JSON, so read()
    # returns it from aiohttp's cache.
    # NOTE: a multipart body that a handler read as a stream is gone by now,
    # so its row keeps an empty body and cannot be replayed.
    try:
        return await request.read()
    except BODY_ERRORS as error:
        log.warning("webhook body of %r not kept: %r", request.path, error)
        return b""


async def _sid_from_body(request: web.Request) -> str | None:
    if request.content_type != FORM_TYPE:
        return None
    try:
        form = await request.post()
    except BODY_ERRORS:
        return None
    return sid_of({name: str(value) for name, value in form.items()})


def _post(writer: BatchWriter, row: dict[str, Any]) -> None:
    """Queue a row with the next batch without waiting for its commit."""
    try:
        future = writer.post(insert_rows_of, row)
    except RuntimeError as error:
        log.warning("webhook ledger row for %r not queued: %r", row["path"], error)
        return
    future.add_done_callback(_log_failure)


def _log_failure(future: asyncio.Future[Any]) -> None:
    if future.cancelled():
        return
    error = future.exception()
    if error is not None:
        log.warning("webhook ledger row not stored: %r", error)


def stored_headers(text: str | None) -> dict[str, str]:
    """Return the headers a ledger row kept, without hashed signatures."""
    if not text:
        return {}
    headers: dict[str, str] = json.loads(text)
    return {
        name: value
        for name, value in headers.items()
        if not value.startswith("sha256:") or name == "Content-Type"
    }
