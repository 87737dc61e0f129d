"""SMS and MMS: stored once per MessageSid, status moving only forward."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from capture.calls import Outcome, customer_for_party, resolve_legs
from capture.identity import parse_party
from capture.models import Message, MessageEvent, User
from capture.sql import insert_ignore
from capture.stream import add_activity

log = logging.getLogger(__name__)

# How far along delivery each MessageStatus is; a message keeps the furthest.
STATUS_RANK = {
    "accepted": 0,
    "scheduled": 0,
    "queued": 1,
    "sending": 2,
    "receiving": 2,
    "sent": 3,
    "received": 4,
    "delivered": 4,
    "undelivered": 4,
    "failed": 4,
    "partially_delivered": 4,
    "canceled": 4,
    "read": 5,
}


@dataclass(frozen=True)
class MessageStatusEvent:
    message_sid: str
    from_party: str
    to_party: str
    status: str
    occurred_at: datetime
    # Only inbound messages carry the text; status callbacks do not.
    body: str | None = None
    num_segments: int | None = None
    num_media: int = 0
    messaging_service_sid: str | None = None
    # The rep who sent an outbound message, from the status callback URL.
    rep_email: str | None = None


@dataclass(frozen=True)
class MessageResult:
    outcome: Outcome
    message_sid: str
    activity_id: int | None = None


async def apply_message_status(
    session: AsyncSession, event: MessageStatusEvent, default_region: str
) -> MessageResult:
    """Store an inbound message or a status callback of one."""
    inserted = await insert_ignore(
        session,
        MessageEvent.__table__,
        {"message_sid": event.message_sid, "status": event.status},
    )
    if not inserted:
        return MessageResult(Outcome.DUPLICATE, event.message_sid)
    result = await session.execute(
        select(Message).where(Message.message_sid == event.message_sid)
    )
    message = result.scalar_one_or_none()
    if message is None:
        message = await _create_message(session, event, default_region)
        return MessageResult(Outcome.CREATED, event.message_sid, message.activity_id)
    outcome = Outcome.STALE
    if STATUS_RANK[event.status] > STATUS_RANK[message.status]:
        message.status = event.status
        outcome = Outcome.UPDATED
    if event.body and not message.body:
        message.body = event.body
    if event.num_segments is not None:
        message.num_segments = event.num_segments
    return MessageResult(outcome, event.message_sid, message.activity_id)


async def _create_message(
    session: AsyncSession, event: MessageStatusEvent, default_region: str
) -> Message:
    sender = parse_party(event.from_party, default_region)
    recipient = parse_party(event.to_party, default_region)
    rep, other, direction = await resolve_legs(session, sender, recipient)
    if rep is None and event.rep_email:
        rep = await _rep_by_email(session, event.rep_email)
    customer = await customer_for_party(session, other, rep)
    if rep is None and customer is not None and customer.owner_id is not None:
        rep = await session.get(User, customer.owner_id)
    activity = await add_activity(
        session,
        external_key=f"sms:{event.message_sid}",
        channel="mms" if event.num_media else "sms",
        direction=direction,
        occurred_at=event.occurred_at,
        customer_id=customer.id if customer is not None else None,
        rep_id=rep.id if rep is not None else None,
    )
    message = Message(
        activity_id=activity.id,
        message_sid=event.message_sid,
        from_party=event.from_party,
        to_party=event.to_party,
        status=event.status,
        body=event.body or "",
        num_segments=event.num_segments,
        num_media=event.num_media,
        messaging_service_sid=event.messaging_service_sid,
    )
    session.add(message)
    await session.flush()
    log.info(
        "message created: message=%s activity=%s customer=%s rep=%s",
        event.message_sid,
        activity.id,
        activity.customer_id,
        activity.rep_id,
    )
    return message


async def _rep_by_email(session: AsyncSession, email: str) -> User | None:
    result = await session.execute(
        select(User).where(User.email == email.strip().lower(), User.active)
    )
    return result.scalar_one_or_none()
