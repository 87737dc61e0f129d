"""SMS and MMS: stored once per MessageSid, status moving only forward."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from capture import rollups
from capture.calls import Outcome
from capture.identity import Directory, RepRef, parse_party
from capture.mms import MediaRef, add_media
from capture.models import Activity, Message, MessageEvent, User, table_of
from capture.sql import insert_ignore
from capture.stream import plan_open_at

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
    # MediaUrl{N} and MediaContentType{N} of an inbound MMS.
    media: tuple[MediaRef, ...] = ()

    @property
    def lock_key(self) -> str:
        """The writer's lock: one message's events are written one batch at a time."""
        return "message:" + self.message_sid


@dataclass(frozen=True)
class MessageResult:
    outcome: Outcome
    message_sid: str
    activity_id: int | None = None
    # True when the message's media downloads were queued.
    media_queued: bool = False


def apply_message_statuses(
    session: Session, events: list[MessageStatusEvent], default_region: str
) -> list[MessageResult]:
    return [apply_message_status(session, event, default_region) for event in events]


def apply_message_status(
    session: Session, event: MessageStatusEvent, default_region: str
) -> MessageResult:
    """Store an inbound message or a status callback of one."""
    inserted = insert_ignore(
        session,
        table_of(MessageEvent),
        {"message_sid": event.message_sid, "status": event.status},
    )
    if not inserted:
        return MessageResult(Outcome.DUPLICATE, event.message_sid)
    result = session.execute(
        select(Message).where(Message.message_sid == event.message_sid)
    )
    message = result.scalar_one_or_none()
    if message is None:
        message = _create_message(session, event, default_region)
        queued = add_media(session, message, event.media) if event.media else False
        return MessageResult(
            Outcome.CREATED, event.message_sid, message.activity_id, queued
        )
    outcome = Outcome.STALE
    if STATUS_RANK[event.status] > STATUS_RANK[message.status]:
        message.status = event.status
        outcome = Outcome.UPDATED
    if event.body and not message.body:
        message.body = event.body
    if event.num_segments is not None:
        message.num_segments = event.num_segments
    return MessageResult(outcome, event.message_sid, message.activity_id)


def _create_message(
    session: Session, event: MessageStatusEvent, default_region: str
) -> Message:
    sender = parse_party(event.from_party, default_region)
    recipient = parse_party(event.to_party, default_region)

    directory = Directory.load(session, [sender, recipient])
    rep, other, direction = directory.resolve_legs(sender, recipient)
    if rep is None and event.rep_email:
        rep = _rep_by_email(session, event.rep_email)
    customer = directory.customer_for(session, other, rep)
    customer_id = customer.id if customer is not None else None

    # A message to the company number belongs to the customer's owner.
    rep_id = rep.id if rep is not None else None
    if rep_id is None and customer is not None:
        rep_id = customer.owner_id
    plan_id = None
    if customer_id is not None:
        plan_id = plan_open_at(session, customer_id, event.occurred_at)

    activity = Activity(
        external_key=f"sms:{event.message_sid}",
        channel="mms" if event.num_media or event.media else "sms",
        direction=direction,
        occurred_at=event.occurred_at,
        customer_id=customer_id,
        rep_id=rep_id,
        plan_id=plan_id,
        summary="",
    )
    message = Message(
        activity=activity,
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
    session.flush()
    rollups.mark_new(session, [activity.id])

    log.info(
        "message created: message=%s activity=%s customer=%s rep=%s",
        event.message_sid,
        activity.id,
        activity.customer_id,
        activity.rep_id,
    )
    return message


def _rep_by_email(session: Session, email: str) -> RepRef | None:
    result = session.execute(
        select(User.id, User.email).where(
            User.email == email.strip().lower(), User.active
        )
    ).first()
    return RepRef(result.id, result.email) if result is not None else None
