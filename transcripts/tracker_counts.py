"""Tracker hits counted per call and per rep over a period, within the viewer's scope.

Counts are computed on read: the transcript lines of the period's visible
calls are loaded and matched in Python, because word boundaries and CJK
substrings are matched the same way on both databases only there.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from capture.access import Viewer, visible_recordings
from capture.call_list import recording_of_call
from capture.models import (
    Activity,
    Call,
    Customer,
    Recording,
    Transcript,
    TranscriptSegment,
    User,
)
from transcripts.trackers import CompiledTracker, count_by_tracker, find_hits

# NOTE: every line of the period is read and matched per request. Past a
# few thousand calls a period, stored counts refreshed on write would be faster.
MAX_CALLS = 5000


@dataclass
class CallCounts:
    call_sid: str
    occurred_at: datetime
    rep_id: int | None
    rep_name: str | None
    customer_name: str | None
    # Hits per tracker id; trackers without hits are absent.
    counts: dict[int, int] = field(default_factory=dict)


@dataclass
class RepCounts:
    rep_id: int | None
    rep_name: str | None
    calls: int = 0
    # Calls with at least one hit, per tracker id.
    calls_with_hits: dict[int, int] = field(default_factory=dict)
    counts: dict[int, int] = field(default_factory=dict)


def transcript_lines_query(viewer: Viewer) -> Select[TranscriptSegment, Call]:
    """Build the query for visible transcript lines with the call they belong to."""
    return (
        select(TranscriptSegment, Call)
        .join(Transcript, TranscriptSegment.transcript_id == Transcript.id)
        .join(Recording, Transcript.recording_id == Recording.id)
        .join(Call, recording_of_call())
        .join(Activity, Call.activity_id == Activity.id)
        .where(visible_recordings(viewer))
    )


async def _calls_in_period(
    session: AsyncSession, viewer: Viewer, start: datetime, end: datetime
) -> dict[str, CallCounts]:
    query = (
        select(Call.call_sid, Activity.occurred_at, Activity.rep_id, User.name)
        .add_columns(Customer.name)
        .join(Activity, Call.activity_id == Activity.id)
        .join(Recording, recording_of_call())
        .join(Transcript, Transcript.recording_id == Recording.id)
        .outerjoin(User, Activity.rep_id == User.id)
        .outerjoin(Customer, Activity.customer_id == Customer.id)
        .where(
            visible_recordings(viewer),
            Activity.occurred_at >= start,
            Activity.occurred_at < end,
        )
        .order_by(Activity.occurred_at.desc(), Call.id.desc())
        .limit(MAX_CALLS)
    )
    calls = {}
    for sid, occurred_at, rep_id, rep_name, customer_name in await session.execute(
        query
    ):
        calls[sid] = CallCounts(sid, occurred_at, rep_id, rep_name, customer_name)
    return calls


async def tracker_counts(
    session: AsyncSession,
    viewer: Viewer,
    trackers: Sequence[CompiledTracker],
    start: datetime,
    end: datetime,
) -> tuple[list[CallCounts], list[RepCounts]]:
    """Count tracker hits in the visible calls that took place in [start, end)."""
    calls = await _calls_in_period(session, viewer, start, end)
    lines = await session.execute(
        transcript_lines_query(viewer).where(Call.call_sid.in_(list(calls)))
    )
    for segment, call in lines:
        hits = find_hits(trackers, [segment])
        for tracker_id, count in count_by_tracker(hits).items():
            counts = calls[call.call_sid].counts
            counts[tracker_id] = counts.get(tracker_id, 0) + count
    return list(calls.values()), _per_rep(calls.values())


def _per_rep(calls: Iterable[CallCounts]) -> list[RepCounts]:
    reps: dict[int | None, RepCounts] = {}
    for call in calls:
        rep = reps.setdefault(call.rep_id, RepCounts(call.rep_id, call.rep_name))
        rep.calls += 1
        for tracker_id, count in call.counts.items():
            rep.counts[tracker_id] = rep.counts.get(tracker_id, 0) + count
            rep.calls_with_hits[tracker_id] = rep.calls_with_hits.get(tracker_id, 0) + 1
    return sorted(reps.values(), key=lambda rep: (rep.rep_name or "", rep.rep_id or 0))
