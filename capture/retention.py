"""Retention: deleting recordings, transcripts and ledger rows past a set age.

`retention_days` (0 keeps everything) is an admin's setting that can be
changed while the service runs. A recording older than that loses its
audio file and its transcript. The call, its touch and its figures stay,
and the recording row is kept with the status `deleted`, so pages show
why there is nothing to play.

Rows of the webhook ledger older than that are deleted too.
NOTE: MMS media files are kept whatever their age.

The rows are changed and committed first, then the files are deleted. A
crash in between leaves files that nothing refers to, which the next run
cannot see but which do no harm; the reverse order could leave rows that
point at missing audio.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from capture import ledger, runtime
from capture.db import transaction
from capture.models import Recording, Transcript, utcnow
from capture.settings import Settings

log = logging.getLogger(__name__)

DELETED = "deleted"
# Recordings changed in one transaction at most, so that a long backlog
# does not lock the database for long.
BATCH = 200
# How often a running service applies retention.
INTERVAL_SECONDS = 3600


@dataclass(frozen=True)
class RetentionResult:
    recordings: int
    transcripts: int
    files: int
    webhook_requests: int = 0


async def apply_retention(
    sessions: async_sessionmaker[AsyncSession],
    *,
    days: int,
    recordings_dir: Path,
    now: datetime | None = None,
) -> RetentionResult:
    """Delete the audio and transcripts of recordings older than `days`."""
    if days <= 0:
        return RetentionResult(0, 0, 0)
    moment = now or utcnow()
    cutoff = moment - timedelta(days=days)
    async with transaction(sessions) as session:
        webhook_requests = await ledger.prune(session, days=days, now=moment)
    recordings = transcripts = files = 0
    while True:
        async with transaction(sessions) as session:
            batch = (
                await session.scalars(
                    select(Recording)
                    .where(Recording.created_at < cutoff, Recording.status != DELETED)
                    .order_by(Recording.id)
                    .limit(BATCH)
                )
            ).all()
            if not batch:
                break
            ids = [recording.id for recording in batch]
            paths = [r.file_path for r in batch if r.file_path]
            removed = await session.execute(
                delete(Transcript).where(Transcript.recording_id.in_(ids))
            )
            transcripts += int(getattr(removed, "rowcount", 0) or 0)
            for recording in batch:
                recording.status = DELETED
                recording.file_path = None
                recording.size_bytes = None
                recording.updated_at = utcnow()
        recordings += len(batch)
        files += sum(_remove(Path(path), recordings_dir) for path in paths)
    if recordings or webhook_requests:
        log.info(
            "retention: recordings=%s transcripts=%s files=%s webhook_requests=%s"
            " older than %s days",
            recordings,
            transcripts,
            files,
            webhook_requests,
            days,
        )
    return RetentionResult(recordings, transcripts, files, webhook_requests)


def _remove(path: Path, recordings_dir: Path) -> bool:
    """Delete a recording's file if it lies inside the recordings folder."""
    try:
        resolved = path.resolve()
        if not resolved.is_relative_to(recordings_dir.resolve()):
            log.warning("retention: %r is outside the recordings folder; kept", path)
            return False
        resolved.unlink()
    except FileNotFoundError:
        return False
    return True


async def retention_days(
    sessions: async_sessionmaker[AsyncSession], settings: Settings
) -> int:
    """Return the setting as it is now, with any change from the settings page."""
    async with sessions() as session:
        changed = await runtime.overrides(session)
    return int(changed.get("retention_days", settings.retention_days))


async def run_periodically(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    stop: asyncio.Event,
) -> None:
    """Apply retention every `INTERVAL_SECONDS` until `stop` is set."""
    while not stop.is_set():
        try:
            days = await retention_days(sessions, settings)
            await apply_retention(
                sessions, days=days, recordings_dir=settings.recordings_dir
            )
        except Exception:
            log.exception("retention failed; trying again in an hour")
        try:
            await asyncio.wait_for(stop.wait(), timeout=INTERVAL_SECONDS)
        except TimeoutError:
            continue
