"""MMS media: one row per `MediaUrl{N}`, fetched later by a worker job."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from capture.access import Viewer, visible_activities
from capture.errors import NotFound
from capture.jobs import enqueue
from capture.models import Activity, Message, MessageMedia, utcnow

DOWNLOAD_MEDIA_JOB = "download_message_media"
STORED = "stored"
FAILED = "failed"


@dataclass(frozen=True)
class MediaRef:
    """A media item as an inbound MMS webhook names it."""

    url: str
    content_type: str


def add_media(session: Session, message: Message, media: tuple[MediaRef, ...]) -> bool:
    """Store a new message's media rows and queue a download for each.

    Returns True if a job was queued. Runs in the transaction that creates
    the message, so a retried webhook cannot add them twice.
    """
    rows = [
        MessageMedia(
            message_id=message.id,
            position=position,
            media_url=item.url,
            content_type=item.content_type,
            status="pending",
        )
        for position, item in enumerate(media)
    ]
    session.add_all(rows)
    session.flush()
    queued = False
    for row in rows:
        queued |= enqueue(
            session,
            DOWNLOAD_MEDIA_JOB,
            {"media_id": row.id},
            dedupe_key=f"{DOWNLOAD_MEDIA_JOB}:{row.id}",
        )
    return queued


def media_query(media_id: int) -> Select[MessageMedia]:
    return select(MessageMedia).where(MessageMedia.id == media_id)


def mark_stored(
    session: Session, media_id: int, file_path: str, size_bytes: int, sha256: str
) -> None:
    media = session.scalars(media_query(media_id)).one()
    media.status = STORED
    media.file_path = file_path
    media.size_bytes = size_bytes
    media.sha256 = sha256
    media.error = None
    media.updated_at = utcnow()


def mark_failed(session: Session, media_id: int, error: str, *, final: bool) -> None:
    """Record a download error; `final` when no retry will follow."""
    media = session.scalars(media_query(media_id)).one()
    media.error = error[:2000]
    if final:
        media.status = FAILED
    media.updated_at = utcnow()


async def visible_media(
    session: AsyncSession, viewer: Viewer, media_id: int
) -> tuple[MessageMedia, str]:
    """Return a stored media item the viewer may see and its message's SID.

    A media item is visible when the touch of its message is; any other
    item reads as missing.
    """
    row = (
        await session.execute(
            select(MessageMedia, Message.message_sid)
            .join(Message, MessageMedia.message_id == Message.id)
            .join(Activity, Message.activity_id == Activity.id)
            .where(MessageMedia.id == media_id, visible_activities(viewer))
        )
    ).first()
    if row is None or row[0].status != STORED or not row[0].file_path:
        raise NotFound(f"media {media_id} not found", "id")
    return row[0], row[1]
