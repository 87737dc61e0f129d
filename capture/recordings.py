"""Recording status callbacks and the stored recording files."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, or_, select
from sqlalchemy.orm import Session

from capture.calls import Outcome
from capture.jobs import enqueue
from capture.models import Call, Recording, RecordingEvent, table_of, utcnow
from capture.sql import insert_ignore

log = logging.getLogger(__name__)

RECORDING_STATUSES = ("in-progress", "completed", "absent", "failed")
# A recording's status never moves back: in-progress, then one of the others,
# then stored once the file is saved here.
STATUS_RANK = {"in-progress": 0, "completed": 1, "absent": 1, "failed": 1, "stored": 2}
DOWNLOAD_JOB = "download_recording"
TRANSCRIBE_JOB = "transcribe_recording"


@dataclass(frozen=True)
class RecordingStatusEvent:
    recording_sid: str
    call_sid: str
    status: str
    media_url: str
    duration_seconds: int | None
    channels: int
    source: str
    started_at: datetime | None

    @property
    def lock_key(self) -> str:
        """The writer's lock, shared with the call's status events."""
        return "call:" + self.call_sid


@dataclass(frozen=True)
class RecordingResult:
    outcome: Outcome
    recording_sid: str
    download_queued: bool = False


def apply_recording_statuses(
    session: Session, events: list[RecordingStatusEvent]
) -> list[RecordingResult]:
    return [apply_recording_status(session, event) for event in events]


def apply_recording_status(
    session: Session, event: RecordingStatusEvent
) -> RecordingResult:
    """Store a recording callback; queue the download when it is completed."""
    inserted = insert_ignore(
        session,
        table_of(RecordingEvent),
        {"recording_sid": event.recording_sid, "status": event.status},
    )
    if not inserted:
        return RecordingResult(Outcome.DUPLICATE, event.recording_sid)
    recording = session.scalar(recording_query(event.recording_sid))
    outcome = Outcome.UPDATED
    if recording is None:
        recording = Recording(recording_sid=event.recording_sid, status=event.status)
        session.add(recording)
        outcome = Outcome.CREATED
    elif STATUS_RANK[event.status] <= STATUS_RANK[recording.status]:
        return RecordingResult(Outcome.STALE, event.recording_sid)
    _update(recording, event)
    session.flush()
    queued = False
    if event.status == "completed":
        queued = enqueue(
            session,
            DOWNLOAD_JOB,
            {"recording_sid": event.recording_sid},
            dedupe_key=f"{DOWNLOAD_JOB}:{event.recording_sid}",
        )
    return RecordingResult(outcome, event.recording_sid, queued)


def _update(recording: Recording, event: RecordingStatusEvent) -> None:
    recording.status = event.status
    recording.call_sid = event.call_sid
    recording.channels = event.channels
    recording.source = event.source
    recording.updated_at = utcnow()
    if event.media_url:
        recording.media_url = event.media_url
    if event.duration_seconds is not None:
        recording.duration_seconds = event.duration_seconds


def mark_stored(
    session: Session,
    recording_sid: str,
    file_path: str,
    size_bytes: int,
    sha256: str,
) -> None:
    """Record the saved file and queue its transcription."""
    recording = session.scalars(recording_query(recording_sid)).one()
    recording.status = "stored"
    recording.file_path = file_path
    recording.size_bytes = size_bytes
    recording.sha256 = sha256
    recording.error = None
    recording.updated_at = utcnow()
    enqueue(
        session,
        TRANSCRIBE_JOB,
        {"recording_sid": recording_sid},
        dedupe_key=f"{TRANSCRIBE_JOB}:{recording_sid}",
    )


def mark_failed(session: Session, recording_sid: str, error: str) -> None:
    recording = session.scalars(recording_query(recording_sid)).one()
    recording.error = error[:2000]
    recording.updated_at = utcnow()


def recording_query(recording_sid: str) -> Select[Recording]:
    return select(Recording).where(Recording.recording_sid == recording_sid)


def call_of_recording_query(recording: Recording) -> Select[Call]:
    """Build the query for the call a recording belongs to.

    Twilio reports a recording with the parent leg's CallSid, while the call
    stored for a `<Dial>` may be the child leg that carries the rep.
    """
    return (
        select(Call)
        .where(
            or_(
                Call.call_sid == recording.call_sid,
                Call.parent_call_sid == recording.call_sid,
            )
        )
        .order_by(Call.id)
        .limit(1)
    )


def recordings_of_call_query(call: Call) -> Select[Recording]:
    sids = [call.call_sid]
    if call.parent_call_sid:
        sids.append(call.parent_call_sid)
    return select(Recording).where(Recording.call_sid.in_(sids)).order_by(Recording.id)
