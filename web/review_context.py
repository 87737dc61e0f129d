"""Values of the call review page beside the call: figures, tracker hits, comments."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from capture.access import Viewer
from capture.comments import call_comments
from capture.next_step import PURPOSES
from capture.queries import CallDetail
from transcripts.figures import conversation_figures
from transcripts.review_queue import REVIEWER_ROLES, reviews_of_call
from transcripts.trackers import TrackerHit, compiled_trackers, find_hits


@dataclass(frozen=True)
class TimelineMark:
    """A tracker hit or comment on the timeline, at a share (0..100) of its length."""

    kind: str
    label: str
    start_ms: int
    percent: float


def recording_length_ms(detail: CallDetail) -> int:
    """Return the recording length in ms: the transcript's, else Twilio's."""
    if detail.transcript is not None and detail.transcript.duration_seconds:
        return round(detail.transcript.duration_seconds * 1000)
    for recording in detail.recordings:
        if recording.duration_seconds:
            return recording.duration_seconds * 1000
    return (detail.call.talk_seconds or 0) * 1000


def _mark(kind: str, label: str, start_ms: int, length_ms: int) -> TimelineMark:
    percent = min(100.0, 100.0 * start_ms / length_ms) if length_ms else 0.0
    return TimelineMark(kind, label, start_ms, round(percent, 2))


def timeline(
    hits: list[TrackerHit], comments: list[Any], length_ms: int
) -> list[TimelineMark]:
    marks = [
        _mark("tracker", f"{hit.tracker_name}: {hit.phrase}", hit.start_ms, length_ms)
        for hit in hits
    ]
    marks += [
        _mark("comment", thread.comment.body[:80], thread.comment.at_ms, length_ms)
        for thread in comments
    ]
    return sorted(marks, key=lambda mark: mark.start_ms)


async def review_context(
    session: AsyncSession, viewer: Viewer, detail: CallDetail
) -> dict[str, Any]:
    """Build the review page's extra values; none when media is hidden."""
    if detail.media_hidden:
        return {}
    segments = detail.transcript.segments if detail.transcript else []
    hits = find_hits(await compiled_trackers(session), segments)
    comments = await call_comments(session, detail.call.id)
    reviews = await reviews_of_call(session, detail.call.id)
    return {
        "figures": conversation_figures(segments),
        "tracker_hits": hits,
        "hit_starts": {hit.start_ms for hit in hits},
        "comments": comments,
        "timeline": timeline(hits, comments, recording_length_ms(detail)),
        "reviews": reviews,
        "my_review": next(
            (r for r in reviews if r.reviewer_id == viewer.user_id), None
        ),
        "can_review": viewer.role in REVIEWER_ROLES,
        "purposes": PURPOSES,
    }
