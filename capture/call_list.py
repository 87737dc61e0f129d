"""The calls list: visible calls filtered by rep, period, direction and outcome.

Pages go newest first by keyset, on (`Activity.occurred_at`, `Activity.id`),
so a page stays stable while webhooks add newer calls.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import ColumnElement, and_, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from capture.access import Viewer, visible_calls, visible_users
from capture.errors import InvalidInput
from capture.models import Activity, Call, Recording, Transcript, User

DIRECTIONS = ("inbound", "outbound")
# Users offered in the rep filter: the roles that make and take calls.
CALLING_ROLES = ("rep", "manager")


@dataclass(frozen=True)
class CallFilters:
    """Filters of the calls list; None leaves a filter out."""

    rep_id: int | None = None
    # UTC bounds: `start` inclusive, `end` exclusive.
    start: datetime | None = None
    end: datetime | None = None
    direction: str | None = None
    # Answered: talk time above zero.
    answered: bool | None = None
    transcribed: bool | None = None


@dataclass(frozen=True)
class CallCursor:
    """The position after the last call of a page."""

    occurred_at: datetime
    activity_id: int

    def encode(self) -> str:
        micros = round(self.occurred_at.timestamp() * 1_000_000)
        return f"{micros}-{self.activity_id}"

    @classmethod
    def decode(cls, raw: str) -> CallCursor:
        micros, _, activity_id = raw.partition("-")
        if not (_is_number(micros) and _is_number(activity_id)):
            raise InvalidInput(f"cursor {raw[:40]!r} is not valid", "cursor")
        try:
            moment = datetime.fromtimestamp(int(micros) / 1_000_000, UTC)
        except (OverflowError, ValueError, OSError):
            raise InvalidInput(f"cursor {raw[:40]!r} is not valid", "cursor") from None
        return cls(moment, int(activity_id))


def _is_number(text: str) -> bool:
    return text.isascii() and text.isdigit() and len(text) <= 18


@dataclass(frozen=True)
class CallRow:
    call: Call
    activity: Activity
    # A stored recording the viewer may play; None for ops and unrecorded calls.
    recording_sid: str | None
    transcribed: bool


async def calling_users(session: AsyncSession, viewer: Viewer) -> list[User]:
    """Return the users the viewer may filter calls by, ordered by name."""
    query = (
        select(User)
        .where(visible_users(viewer), User.role.in_(CALLING_ROLES))
        .order_by(User.name, User.id)
    )
    return list((await session.scalars(query)).all())


def recording_of_call() -> ColumnElement[bool]:
    # A recording names the parent leg, so it belongs to that call and its children.
    return or_(
        Recording.call_sid == Call.call_sid,
        and_(
            Call.parent_call_sid.is_not(None),
            Recording.call_sid == Call.parent_call_sid,
        ),
    )


def _has_transcript() -> ColumnElement[bool]:
    return exists(
        select(Transcript.id)
        .join(Recording, Transcript.recording_id == Recording.id)
        .where(recording_of_call())
    )


def _filter_conditions(filters: CallFilters) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if filters.rep_id is not None:
        conditions.append(Activity.rep_id == filters.rep_id)
    if filters.start is not None:
        conditions.append(Activity.occurred_at >= filters.start)
    if filters.end is not None:
        conditions.append(Activity.occurred_at < filters.end)
    if filters.direction is not None:
        conditions.append(Activity.direction == filters.direction)
    if filters.answered is True:
        conditions.append(Call.talk_seconds > 0)
    elif filters.answered is False:
        conditions.append(func.coalesce(Call.talk_seconds, 0) == 0)
    if filters.transcribed is True:
        conditions.append(_has_transcript())
    elif filters.transcribed is False:
        conditions.append(~_has_transcript())
    return conditions


async def list_calls(
    session: AsyncSession,
    viewer: Viewer,
    filters: CallFilters,
    *,
    after: CallCursor | None,
    limit: int,
) -> list[CallRow]:
    """Return visible calls matching `filters`, newest first, `limit` + 1 of them.

    Transcript filters and markers need a role that may read transcripts;
    for other roles the caller must not pass `transcribed`.
    """
    if filters.transcribed is not None and not viewer.can_play_recordings:
        raise InvalidInput(
            f"the transcript filter is not available to the {viewer.role} role",
            "transcript",
        )
    query = (
        select(Call, Activity)
        .join(Activity, Call.activity_id == Activity.id)
        .where(visible_calls(viewer), *_filter_conditions(filters))
        .options(
            selectinload(Activity.rep),
            selectinload(Activity.customer),
            # The unmatched party of a touch is read from its call or message.
            selectinload(Activity.call),
            selectinload(Activity.message),
        )
        .order_by(Activity.occurred_at.desc(), Activity.id.desc())
        .limit(limit + 1)
    )
    if after is not None:
        query = query.where(
            or_(
                Activity.occurred_at < after.occurred_at,
                and_(
                    Activity.occurred_at == after.occurred_at,
                    Activity.id < after.activity_id,
                ),
            )
        )
    pairs = [(row[0], row[1]) for row in (await session.execute(query)).all()]
    media = await call_media(session, viewer, [call for call, _ in pairs])
    return [
        CallRow(call, activity, *media.get(call.call_sid, (None, False)))
        for call, activity in pairs
    ]


async def call_media(
    session: AsyncSession, viewer: Viewer, calls: Iterable[Call]
) -> dict[str, tuple[str | None, bool]]:
    """Map each call's SID to (stored recording SID, has a transcript).

    The calls must be visible to `viewer` already. Roles that may not play
    recordings get an empty map.
    """
    calls = list(calls)
    if not calls or not viewer.can_play_recordings:
        return {}
    legs: dict[str, list[str]] = {}
    for call in calls:
        for sid in (call.call_sid, call.parent_call_sid):
            if sid:
                legs.setdefault(sid, []).append(call.call_sid)
    query = (
        select(Recording.call_sid, Recording.recording_sid, Transcript.id)
        .outerjoin(Transcript, Transcript.recording_id == Recording.id)
        .where(Recording.call_sid.in_(list(legs)), Recording.status == "stored")
        .order_by(Recording.id)
    )
    media: dict[str, tuple[str | None, bool]] = {}
    for recorded_sid, recording_sid, transcript_id in await session.execute(query):
        for call_sid in legs[recorded_sid]:
            first, transcribed = media.get(call_sid, (None, False))
            media[call_sid] = (
                first or recording_sid,
                transcribed or transcript_id is not None,
            )
    return media
