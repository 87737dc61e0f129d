"""The webhook ledger: one row for each request received on a webhook path.

A request whose change goes through the batch writer gets its row in the
same transaction as the change (`with_ledger`), so the ledger costs one
multi-row INSERT per batch rather than a commit per request. Requests that
were rejected or failed get their row through the writer afterwards.

Bodies and headers are kept only for requests that failed to store, which
a replay needs, and for forbidden ones, truncated. Signature headers are
kept only as a SHA-256 hash.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, delete, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from capture.models import PROBLEM_ROWS, WebhookRequest, table_of, utcnow
from capture.sql import insert_rows
from capture.writer import BulkApply

# The outcomes a row can have; the first four come from the domain layer
# and all are the outcome names of the metrics endpoint.
OUTCOMES = (
    "created",
    "updated",
    "stale",
    "duplicate",
    "accepted",
    "forbidden",
    "invalid",
    "failed",
)
PROBLEM_OUTCOMES = frozenset({"forbidden", "invalid", "failed"})
SIGNATURES = ("valid", "invalid", "missing", "unchecked")
# Outcomes whose request can be replayed: their 5xx response made the sender retry.
REPLAYABLE = frozenset({"failed"})
# Bytes of a forbidden request's body that are kept: enough to see what was
# sent, without storing whatever an unsigned sender posts in full.
FORBIDDEN_BODY_BYTES = 2048
# Headers kept with a stored body. Signature headers are hashed, because
# a signature that is still valid must not be readable from the ledger.
KEPT_HEADERS = (
    "Content-Type",
    "User-Agent",
    "I-Twilio-Idempotency-Token",
    "X-Twilio-Webhooks-Signature-Settings",
)
HASHED_HEADERS = ("X-Twilio-Signature", "X-Twilio-Email-Event-Webhook-Signature")
MAX_ERROR = 2000


@dataclass
class LedgerEntry:
    """The state of one webhook request while it is handled."""

    path: str
    query: str
    received_at: datetime = field(default_factory=utcnow)
    signature: str = "unchecked"
    sid: str | None = None
    replay_of: int | None = None
    # The status the handler returns once its change is committed.
    status_code: int = 200
    # True once the row was written with the change it belongs to.
    stored: bool = False
    # Why the change failed to store, for the row of a failed request.
    error: str | None = None

    def row(
        self,
        *,
        outcome: str,
        status_code: int,
        activity_id: int | None = None,
        error: str | None = None,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        encoding, text = encode_body(body)
        return {
            "received_at": self.received_at,
            "path": self.path[:200],
            "query": self.query,
            "signature": self.signature,
            "outcome": outcome,
            "status_code": status_code,
            "sid": self.sid,
            "activity_id": activity_id,
            "error": error[:MAX_ERROR] if error else None,
            "body_encoding": encoding,
            "body": text,
            "headers": json.dumps(dict(headers), sort_keys=True) if headers else None,
            "replay_of": self.replay_of,
        }


def encode_body(body: bytes | None) -> tuple[str | None, str | None]:
    """Return the body as UTF-8 text, or base64 for bytes that are not UTF-8."""
    if body is None:
        return None, None
    try:
        return "utf-8", body.decode("utf-8")
    except UnicodeDecodeError:
        return "base64", base64.b64encode(body).decode("ascii")


def decode_body(request: WebhookRequest) -> bytes:
    if request.body is None:
        return b""
    if request.body_encoding == "base64":
        return base64.b64decode(request.body)
    return request.body.encode("utf-8")


def kept_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Select the headers to store with a body; hash the signature headers."""
    kept = {name: headers[name] for name in KEPT_HEADERS if name in headers}
    for name in HASHED_HEADERS:
        if name in headers:
            digest = hashlib.sha256(headers[name].encode("utf-8")).hexdigest()
            kept[name] = f"sha256:{digest}"
    return kept


def insert_rows_of(session: Session, rows: list[dict[str, Any]]) -> list[None]:
    """Write ledger rows; a BulkApply for the batch writer."""
    insert_rows(session, table_of(WebhookRequest), rows)
    return [None] * len(rows)


@dataclass(frozen=True)
class Ledgered:
    """A writer payload with the ledger entry of the request it came from."""

    payload: Any
    entry: LedgerEntry

    @property
    def lock_key(self) -> str | None:
        return getattr(self.payload, "lock_key", None)


_WRAPPED: dict[BulkApply, BulkApply] = {}


def with_ledger(apply: BulkApply) -> BulkApply:
    """Wrap a bulk apply so that it also writes the ledger row of each item.

    The items are `Ledgered`. Each result must carry an `outcome`, and may
    carry an `activity_id`. The wrapper is cached by `apply`, so items of
    one apply still group into one call within a batch, and it pickles
    when `apply` does.
    """
    wrapped = _WRAPPED.get(apply)
    if wrapped is None:
        wrapped = _WRAPPED[apply] = functools.partial(_apply_with_ledger, apply)
    return wrapped


def _apply_with_ledger(
    apply: BulkApply, session: Session, items: list[Ledgered]
) -> list[Any]:
    results = apply(session, [item.payload for item in items])
    rows = [
        item.entry.row(
            outcome=str(result.outcome),
            status_code=item.entry.status_code,
            activity_id=getattr(result, "activity_id", None),
        )
        for item, result in zip(items, results, strict=True)
    ]
    insert_rows_of(session, rows)
    return results


@dataclass(frozen=True)
class LedgerFilter:
    path: str | None = None
    outcome: str | None = None
    sid: str | None = None
    text: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    before_id: int | None = None


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def search_query(criteria: LedgerFilter, limit: int) -> Select[WebhookRequest]:
    """Build the query for ledger rows matching `criteria`, newest first."""
    query = select(WebhookRequest)
    if criteria.path:
        query = query.where(WebhookRequest.path == criteria.path)
    if criteria.outcome:
        query = query.where(WebhookRequest.outcome == criteria.outcome)
        if criteria.outcome in PROBLEM_OUTCOMES:
            # The partial index's own condition, which SQLite needs to see
            # in the query before it uses that index.
            query = query.where(text(PROBLEM_ROWS))
    if criteria.sid:
        # NOTE: only rows of problem outcomes have an index on the SID, so
        # a SID search over stored events scans them, back from the newest
        # or within the date range.
        query = query.where(WebhookRequest.sid == criteria.sid)
    if criteria.start is not None:
        query = query.where(WebhookRequest.received_at >= criteria.start)
    if criteria.end is not None:
        query = query.where(WebhookRequest.received_at < criteria.end)
    if criteria.before_id is not None:
        query = query.where(WebhookRequest.id < criteria.before_id)
    if criteria.text:
        pattern = f"%{_escape_like(criteria.text)}%"
        query = query.where(
            or_(
                WebhookRequest.sid.ilike(pattern, escape="\\"),
                WebhookRequest.query.ilike(pattern, escape="\\"),
                WebhookRequest.error.ilike(pattern, escape="\\"),
                WebhookRequest.body.ilike(pattern, escape="\\"),
            )
        )
    return query.order_by(WebhookRequest.id.desc()).limit(limit + 1)


async def search(
    session: AsyncSession, criteria: LedgerFilter, limit: int
) -> list[WebhookRequest]:
    """Return up to `limit` + 1 rows, so the caller can tell if more follow."""
    return list((await session.scalars(search_query(criteria, limit))).all())


async def replays_of(
    session: AsyncSession, request_ids: list[int]
) -> dict[int, WebhookRequest]:
    """Return the latest replay of each of `request_ids` that has one."""
    if not request_ids:
        return {}
    rows = await session.scalars(
        select(WebhookRequest)
        .where(WebhookRequest.replay_of.in_(request_ids))
        .order_by(WebhookRequest.id)
    )
    return {row.replay_of: row for row in rows if row.replay_of is not None}


async def prune(session: AsyncSession, *, days: int, now: datetime) -> int:
    """Delete ledger rows received more than `days` ago; return the count."""
    cutoff = now - timedelta(days=days)
    result = await session.execute(
        delete(WebhookRequest).where(WebhookRequest.received_at < cutoff)
    )
    return int(getattr(result, "rowcount", 0) or 0)
