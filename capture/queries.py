"""Read queries behind the pages and the API."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from capture.access import (
    Viewer,
    visible_activities,
    visible_customers,
    visible_recordings,
)
from capture.errors import InvalidInput, NotFound
from capture.identity import normalize_phone
from capture.models import (
    Activity,
    Call,
    CallLeg,
    ContactPoint,
    Customer,
    CustomField,
    CustomFieldValue,
    Email,
    Job,
    Message,
    Recording,
    Transcript,
)
from capture.recordings import TRANSCRIBE_JOB, recordings_of_call_query

MAX_PAGE = 200
# The largest id an INTEGER primary key holds on PostgreSQL (32-bit);
# larger ids can match no row.
MAX_ID = 2**31 - 1


@dataclass(frozen=True)
class CallDetail:
    call: Call
    activity: Activity
    recordings: list[Recording]
    transcript: Transcript | None
    # The transcription job of a stored recording without a transcript.
    transcription_job: Job | None = None
    # True when the viewer's role may not play recordings or read
    # transcripts, so `recordings` and `transcript` were not loaded.
    media_hidden: bool = False


def page_size(raw: str | None, default: int = 50) -> int:
    if raw is None or raw == "":
        return default
    if not (raw.isascii() and raw.isdigit()):
        raise InvalidInput(f"limit {raw[:20]!r} is not an integer", "limit")
    # More than six digits is out of range whatever their value.
    size = int(raw) if len(raw) <= 6 else MAX_PAGE + 1
    if not 1 <= size <= MAX_PAGE:
        raise InvalidInput(f"limit {raw[:20]} is outside 1..{MAX_PAGE}", "limit")
    return size


def parse_id(raw: str) -> int | None:
    """Return `raw` as a row id, or None when it cannot be one.

    Only the canonical spelling is an id: "01" is not 1, so each row has one
    address.
    """
    if not raw.isascii() or not raw.isdigit() or len(raw) > len(str(MAX_ID)):
        return None
    if raw.startswith("0"):
        return None
    number = int(raw)
    return number if number <= MAX_ID else None


def json_id(value: Any, name: str) -> int:
    """Return a row id given in a JSON document as a number or as digits.

    Raises InvalidInput naming `name` for anything else, including numbers
    outside the range of row ids, which the database could not compare.
    """
    if isinstance(value, str):
        number = parse_id(value.strip())
    elif isinstance(value, int) and not isinstance(value, bool):
        number = value if 1 <= value <= MAX_ID else None
    else:
        number = None
    if number is None:
        raise InvalidInput(f"{name} {str(value)[:24]!r} is not an id", name)
    return number


def id_cursor(raw: str | None) -> int | None:
    if not raw:
        return None
    number = parse_id(raw)
    if number is None:
        raise InvalidInput(f"cursor {raw!r} is not valid", "cursor")
    return number


async def search_customers(
    session: AsyncSession,
    viewer: Viewer,
    *,
    phone: str | None,
    email: str | None,
    text: str | None,
    default_region: str,
    after_id: int | None,
    limit: int,
    field: tuple[str, str] | None = None,
) -> list[Customer]:
    """Visible customers matching every given filter, by id, `limit` + 1 of them.

    `text` matches names, contact points and custom field values; `field`
    is a custom field's key and the exact value it must have.
    """
    query = (
        select(Customer)
        .where(visible_customers(viewer))
        .options(selectinload(Customer.contact_points), selectinload(Customer.owner))
    )
    if phone:
        number = normalize_phone(phone, default_region)
        if number is None:
            raise InvalidInput(f"phone {phone!r} is not a valid number", "phone")
        query = query.where(_has_contact("phone", number))
    if email:
        query = query.where(_has_contact("email", email.strip().lower()))
    if text:
        pattern = f"%{_escape_like(text.strip())}%"
        query = query.where(
            or_(
                Customer.name.ilike(pattern, escape="\\"),
                _has_contact_like(pattern),
                _has_field_value_like(pattern),
            )
        )
    if field:
        query = query.where(_has_field_value(*field))
    if after_id is not None:
        query = query.where(Customer.id > after_id)
    result = await session.execute(query.order_by(Customer.id).limit(limit + 1))
    return list(result.scalars())


def _has_field_value_like(pattern: str) -> ColumnElement[bool]:
    return Customer.id.in_(
        select(CustomFieldValue.customer_id)
        .join(CustomField, CustomFieldValue.field_id == CustomField.id)
        .where(
            CustomField.active,
            CustomFieldValue.text_value.ilike(pattern, escape="\\"),
        )
    )


def _has_field_value(key: str, value: str) -> ColumnElement[bool]:
    return Customer.id.in_(
        select(CustomFieldValue.customer_id)
        .join(CustomField, CustomFieldValue.field_id == CustomField.id)
        .where(
            CustomField.key == key,
            CustomField.active,
            CustomFieldValue.text_value == value.strip(),
        )
    )


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _has_contact(kind: str, value: str) -> ColumnElement[bool]:
    return Customer.id.in_(
        select(ContactPoint.customer_id).where(
            ContactPoint.kind == kind, ContactPoint.value == value
        )
    )


def _has_contact_like(pattern: str) -> ColumnElement[bool]:
    return Customer.id.in_(
        select(ContactPoint.customer_id).where(
            ContactPoint.value.ilike(pattern, escape="\\")
        )
    )


async def get_customer(
    session: AsyncSession, viewer: Viewer, customer_id: int
) -> Customer:
    """Return the customer, or raise NotFound when it is missing or not visible."""
    customer = await session.scalar(
        select(Customer)
        .where(Customer.id == customer_id, visible_customers(viewer))
        .options(selectinload(Customer.contact_points), selectinload(Customer.owner))
    )
    if customer is None:
        raise NotFound(f"customer {customer_id} not found", "id")
    return customer


async def customer_stream(
    session: AsyncSession,
    viewer: Viewer,
    customer_id: int,
    *,
    before: tuple[datetime, int] | None,
    limit: int,
) -> list[Activity]:
    """Return a visible customer's touches, newest first, `limit` + 1 of them.

    Every touch of a visible customer shows, whichever rep made it.
    """
    visible = select(Customer.id).where(visible_customers(viewer))
    query = (
        select(Activity)
        .where(Activity.customer_id == customer_id, Activity.customer_id.in_(visible))
        .options(
            selectinload(Activity.call),
            selectinload(Activity.message).selectinload(Message.media),
            selectinload(Activity.rep),
            selectinload(Activity.email).selectinload(Email.attachments),
        )
        .order_by(Activity.occurred_at.desc(), Activity.id.desc())
        .limit(limit + 1)
    )
    if before is not None:
        moment, activity_id = before
        query = query.where(
            or_(
                Activity.occurred_at < moment,
                (Activity.occurred_at == moment) & (Activity.id < activity_id),
            )
        )
    return list((await session.execute(query)).scalars())


async def touch_position(
    session: AsyncSession, customer_id: int, activity_id: int
) -> tuple[datetime, int] | None:
    """Return the `before` of `customer_stream` whose page starts at a touch.

    None when the customer has no such touch.
    """
    occurred_at = await session.scalar(
        select(Activity.occurred_at).where(
            Activity.id == activity_id, Activity.customer_id == customer_id
        )
    )
    if occurred_at is None:
        return None
    return occurred_at, activity_id + 1


async def call_detail(
    session: AsyncSession, viewer: Viewer, call_sid: str
) -> CallDetail:
    """Return a visible call with its recordings and transcript, or raise NotFound."""
    result = await session.execute(
        select(Call, Activity)
        .join(Activity, Call.activity_id == Activity.id)
        .where(
            or_(
                Call.call_sid == call_sid,
                # A child leg's SID names the call it belongs to.
                Call.id.in_(
                    select(CallLeg.call_id).where(CallLeg.call_sid == call_sid)
                ),
            ),
            visible_activities(viewer),
        )
        .options(selectinload(Activity.rep), selectinload(Activity.customer))
    )
    row = result.first()
    if row is None:
        raise NotFound(f"call {call_sid!r} not found", "call_sid")
    call, activity = row[0], row[1]
    if not viewer.can_play_recordings:
        return CallDetail(call, activity, [], None, media_hidden=True)
    recordings = list((await session.scalars(recordings_of_call_query(call))).all())
    transcript = None
    job = None
    stored = [recording for recording in recordings if recording.status == "stored"]
    if stored:
        transcript = await session.scalar(
            select(Transcript)
            .where(Transcript.recording_id.in_([r.id for r in stored]))
            .options(selectinload(Transcript.segments))
            .order_by(Transcript.id)
            .limit(1)
        )
    if stored and transcript is None:
        keys = [f"{TRANSCRIBE_JOB}:{r.recording_sid}" for r in stored]
        job = await session.scalar(
            select(Job).where(Job.dedupe_key.in_(keys)).order_by(Job.id).limit(1)
        )
    return CallDetail(call, activity, recordings, transcript, job)


async def recording_file(
    session: AsyncSession, viewer: Viewer, recording_sid: str
) -> Recording:
    """Return a stored recording the viewer may play, or raise NotFound."""
    recording = await session.scalar(
        select(Recording).where(
            Recording.recording_sid == recording_sid, visible_recordings(viewer)
        )
    )
    if recording is None or recording.status != "stored" or not recording.file_path:
        raise NotFound(f"recording {recording_sid!r} not found", "recording_sid")
    return recording
