"""Storing an email as a touch: once per message, threaded, matched.

An email is stored once per `message_key`, so the same message captured
by SMTP and by a webhook, or retried, makes one touch. Its thread is that
of the first known message it replies to (In-Reply-To, then References),
else the first message of its References, else the latest email of the
same customer with the same subject in the last `SUBJECT_THREAD_DAYS`
days, else a new thread. Automatic mail is stored with `automatic` set, so
that it never counts as a rep's touch.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from capture import rollups
from capture.calls import Outcome
from capture.email_files import SavedAttachment
from capture.email_headers import subject_key
from capture.email_match import EmailParties, addresses_text, resolve_parties
from capture.email_parse import ParsedEmail, message_key_of, now_or
from capture.email_text import html_text_of
from capture.models import Activity, Email, EmailAttachment
from capture.stream import plan_open_at

log = logging.getLogger(__name__)

SUBJECT_THREAD_DAYS = 90
SUMMARY_CHARACTERS = 500


@dataclass(frozen=True)
class IncomingEmail:
    parsed: ParsedEmail
    files: tuple[SavedAttachment, ...]
    # smtp, sendgrid, mailgun, postmark or mime.
    source: str


@dataclass(frozen=True)
class EmailResult:
    outcome: Outcome
    email_id: int
    activity_id: int
    customer_id: int | None
    automatic: bool


def store_email(
    session: Session, incoming: IncomingEmail, capture_domains: tuple[str, ...]
) -> EmailResult:
    """Store an email and its touch, unless a message with its key exists."""
    parsed = incoming.parsed
    existing = session.scalar(
        select(Email).where(Email.message_key == parsed.message_key)
    )
    if existing is not None:
        activity = existing.activity
        return EmailResult(
            Outcome.DUPLICATE,
            existing.id,
            existing.activity_id,
            activity.customer_id,
            activity.automatic,
        )

    parties = resolve_parties(session, parsed, capture_domains)
    occurred_at = now_or(parties.occurred_at)
    email = _new_email(incoming, parties, occurred_at)
    if parties.customer_id is not None:
        email.activity.plan_id = plan_open_at(session, parties.customer_id, occurred_at)
    email.thread_key = thread_key_for(session, parsed, parties.customer_id, occurred_at)
    session.add(email)
    session.flush()
    rollups.mark_new(session, [email.activity_id])

    log.info(
        "email stored: email=%s activity=%s customer=%s rep=%s direction=%s "
        "automatic=%s source=%s attachments=%s",
        email.id,
        email.activity_id,
        parties.customer_id,
        parties.rep_id,
        parties.direction,
        parsed.automatic_reason or "no",
        incoming.source,
        len(incoming.files),
    )
    return EmailResult(
        Outcome.CREATED,
        email.id,
        email.activity_id,
        parties.customer_id,
        parsed.automatic_reason is not None,
    )


def _new_email(
    incoming: IncomingEmail, parties: EmailParties, occurred_at: datetime
) -> Email:
    parsed = incoming.parsed
    activity = Activity(
        external_key=f"email:{parsed.message_key}",
        channel="email",
        direction=parties.direction,
        occurred_at=occurred_at,
        customer_id=parties.customer_id,
        rep_id=parties.rep_id,
        summary=parsed.subject[:SUMMARY_CHARACTERS],
        automatic=parsed.automatic_reason is not None,
    )
    email = Email(
        activity=activity,
        message_key=parsed.message_key,
        message_id=parsed.message_id,
        subject_key=subject_key(parsed.subject),
        subject=parsed.subject,
        from_address=parties.sender.address,
        from_name=parties.sender.name,
        to_addresses=addresses_text(parties.to),
        cc_addresses=addresses_text(parties.cc),
        text_body=parsed.text,
        html_body=parsed.html,
        html_text=html_text_of(parsed.text, parsed.html),
        automatic_reason=parsed.automatic_reason,
        forwarded_by=parties.forwarded_by,
        source=incoming.source,
    )
    email.attachments = [
        EmailAttachment(
            position=position,
            filename=saved.filename,
            content_type=saved.content_type,
            size_bytes=saved.size_bytes,
            sha256=saved.sha256,
            file_path=saved.file_path,
        )
        for position, saved in enumerate(incoming.files)
    ]
    return email


def thread_key_for(
    session: Session,
    parsed: ParsedEmail,
    customer_id: int | None,
    occurred_at: datetime,
) -> str:
    """Return the thread of an email; see the module's description."""
    if parsed.replied_ids:
        keys = [message_key_of(message_id) for message_id in parsed.replied_ids]
        rows = session.execute(
            select(Email.message_key, Email.thread_key).where(
                Email.message_key.in_(keys)
            )
        )
        known = {key: thread for key, thread in rows}
        for key in keys:
            if key in known:
                return known[key]
    if parsed.thread_root_id:
        return message_key_of(parsed.thread_root_id)
    key = subject_key(parsed.subject)
    if key and customer_id is not None:
        since = occurred_at - timedelta(days=SUBJECT_THREAD_DAYS)
        thread = session.scalar(
            select(Email.thread_key)
            .join(Activity, Email.activity_id == Activity.id)
            .where(
                Activity.customer_id == customer_id,
                Email.subject_key == key,
                Activity.occurred_at >= since,
            )
            .order_by(Activity.occurred_at.desc(), Activity.id.desc())
            .limit(1)
        )
        if thread is not None:
            return thread
    return parsed.message_key
