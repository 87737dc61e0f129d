"""The review queue: calls that managers pick by filters, and their review scores.

"Signing stage" means the customer's open next-step plan has the purpose
sign_and_collect, the stage at which a deal is being signed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import ColumnElement, exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from capture.access import Viewer, visible_recordings
from capture.call_list import recording_of_call
from capture.errors import Forbidden, InvalidInput
from capture.models import (
    Activity,
    Call,
    CallReview,
    Customer,
    Plan,
    Recording,
    Transcript,
    User,
    utcnow,
)
from transcripts.tracker_counts import transcript_lines_query
from transcripts.trackers import CompiledTracker, count_by_tracker, find_hits

REVIEWER_ROLES = frozenset({"manager", "admin"})
SCORES = range(1, 6)
MAX_NOTE_LENGTH = 4000
MAX_QUEUE = 200
REVIEWED_CHOICES = ("no", "yes", "all")


@dataclass(frozen=True)
class QueueFilters:
    min_talk_seconds: int | None = None
    tracker_id: int | None = None
    signing_stage: bool = False
    rep_id: int | None = None
    # no: not yet reviewed by the viewer; yes: reviewed by them; all.
    reviewed: str = "no"


@dataclass
class QueueRow:
    call: Call
    activity: Activity
    customer_name: str | None
    rep_name: str | None
    review: CallReview | None
    # Hits per tracker id in the call's transcript.
    tracker_counts: dict[int, int] = field(default_factory=dict)


def require_reviewer(viewer: Viewer) -> None:
    if viewer.role not in REVIEWER_ROLES:
        raise Forbidden("only managers and admins review calls")


def _signing_stage() -> ColumnElement[bool]:
    return exists(
        select(Plan.id).where(
            Plan.customer_id == Activity.customer_id,
            Plan.status == "open",
            Plan.purpose == "sign_and_collect",
        )
    )


def _conditions(filters: QueueFilters, viewer: Viewer) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = [visible_recordings(viewer)]
    if filters.min_talk_seconds is not None:
        conditions.append(Call.talk_seconds >= filters.min_talk_seconds)
    if filters.signing_stage:
        conditions.append(_signing_stage())
    if filters.rep_id is not None:
        conditions.append(Activity.rep_id == filters.rep_id)
    if filters.reviewed == "no":
        conditions.append(CallReview.id.is_(None))
    elif filters.reviewed == "yes":
        conditions.append(CallReview.id.is_not(None))
    return conditions


async def review_queue(
    session: AsyncSession,
    viewer: Viewer,
    filters: QueueFilters,
    trackers: list[CompiledTracker],
) -> list[QueueRow]:
    """Return transcribed calls that match `filters`, newest first."""
    require_reviewer(viewer)
    query = (
        select(Call, Activity, Customer.name, User.name, CallReview)
        .join(Activity, Call.activity_id == Activity.id)
        .join(Recording, recording_of_call())
        .join(Transcript, Transcript.recording_id == Recording.id)
        .outerjoin(Customer, Activity.customer_id == Customer.id)
        .outerjoin(User, Activity.rep_id == User.id)
        .outerjoin(
            CallReview,
            (CallReview.call_id == Call.id)
            & (CallReview.reviewer_id == viewer.user_id),
        )
        .where(*_conditions(filters, viewer))
        .order_by(Activity.occurred_at.desc(), Call.id.desc())
        .limit(MAX_QUEUE)
    )
    rows = [QueueRow(*row) for row in await session.execute(query)]
    await _count_trackers(session, viewer, rows, trackers)
    if filters.tracker_id is not None:
        rows = [row for row in rows if row.tracker_counts.get(filters.tracker_id)]
    return rows


async def _count_trackers(
    session: AsyncSession,
    viewer: Viewer,
    rows: list[QueueRow],
    trackers: list[CompiledTracker],
) -> None:
    by_sid = {row.call.call_sid: row for row in rows}
    if not by_sid or not trackers:
        return
    lines = await session.execute(
        transcript_lines_query(viewer).where(Call.call_sid.in_(list(by_sid)))
    )
    for segment, call in lines:
        counts = by_sid[call.call_sid].tracker_counts
        for tracker_id, count in count_by_tracker(
            find_hits(trackers, [segment])
        ).items():
            counts[tracker_id] = counts.get(tracker_id, 0) + count


def parse_score(raw: object) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int | str):
        raise InvalidInput("score must be a whole number from 1 to 5", "score")
    try:
        score = int(raw)
    except ValueError:
        raise InvalidInput(
            f"score {raw!r} is not a number from 1 to 5", "score"
        ) from None
    if score not in SCORES:
        raise InvalidInput(f"score {score} is outside 1 to 5", "score")
    return score


async def mark_reviewed(
    session: AsyncSession, viewer: Viewer, call: Call, score: int, note: str
) -> CallReview:
    """Store the viewer's score and note for `call`, replacing their earlier review."""
    require_reviewer(viewer)
    if score not in SCORES:
        raise InvalidInput(f"score {score} is outside 1 to 5", "score")
    note = note.strip()
    if len(note) > MAX_NOTE_LENGTH:
        raise InvalidInput(f"note is longer than {MAX_NOTE_LENGTH} characters", "note")
    review = await session.scalar(
        select(CallReview).where(
            CallReview.call_id == call.id, CallReview.reviewer_id == viewer.user_id
        )
    )
    if review is None:
        review = CallReview(call_id=call.id, reviewer_id=viewer.user_id)
        session.add(review)
    review.score = score
    review.note = note
    review.reviewed_at = utcnow()
    await session.flush()
    return review


async def reviews_of_call(session: AsyncSession, call_id: int) -> list[CallReview]:
    return list(
        await session.scalars(
            select(CallReview)
            .where(CallReview.call_id == call_id)
            .order_by(CallReview.reviewed_at)
        )
    )
