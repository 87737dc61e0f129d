"""Transcribing stored recordings in bulk, outside the job queue.

`touchline transcribe --backfill` fills the transcripts that are missing,
for example after the engine was switched on, and with `--redo` replaces
existing ones, for example after a model change. Recordings are chosen by
the day they were stored, in the organisation's time zone.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, and_, exists, select, true
from sqlalchemy.ext.asyncio import AsyncSession
from tqdm import tqdm

from capture.db import Database
from capture.errors import InvalidInput
from capture.models import Recording, Transcript
from capture.settings import Settings
from capture.worker import PermanentFailure
from capture.writer import BatchWriter
from transcripts.engine import InvalidAudio
from transcripts.jobs import Transcriber

log = logging.getLogger(__name__)


@dataclass
class BackfillSummary:
    done: int = 0
    failed: int = 0
    # Stored recordings in the range that already had a transcript.
    skipped: int = 0
    audio_seconds: float = 0.0
    wall_seconds: float = 0.0

    def line(self) -> str:
        return (
            f"backfill: {self.done} done, {self.failed} failed, "
            f"{self.skipped} skipped, {self.audio_seconds:.1f} s of audio "
            f"in {self.wall_seconds:.1f} s"
        )


def day_bounds(
    first: date | None, last: date | None, zone: ZoneInfo
) -> ColumnElement[bool]:
    """Return a filter on Recording.created_at for the days first..last."""
    if first is not None and last is not None and last < first:
        raise InvalidInput(f"to {last} is before from {first}", "to")
    condition: ColumnElement[bool] = true()
    if first is not None:
        start = datetime.combine(first, datetime.min.time(), zone)
        condition = and_(condition, Recording.created_at >= start)
    if last is not None:
        end = datetime.combine(last + timedelta(days=1), datetime.min.time(), zone)
        condition = and_(condition, Recording.created_at < end)
    return condition


async def recordings_to_transcribe(
    session: AsyncSession, in_range: ColumnElement[bool], redo: bool
) -> tuple[list[str], int]:
    """Return the recording sids to transcribe and how many are skipped."""
    transcribed = exists().where(Transcript.recording_id == Recording.id)
    query = (
        select(Recording.recording_sid, transcribed)
        .where(Recording.status == "stored", Recording.file_path.is_not(None))
        .where(in_range)
        .order_by(Recording.created_at, Recording.id)
    )
    rows = (await session.execute(query)).all()
    chosen = [sid for sid, has_transcript in rows if redo or not has_transcript]
    return chosen, len(rows) - len(chosen)


async def backfill(
    settings: Settings,
    first: date | None,
    last: date | None,
    *,
    redo: bool = False,
) -> BackfillSummary:
    """Transcribe the stored recordings of first..last, with a progress bar."""
    if settings.transcribe_engine == "none":
        raise InvalidInput(
            "transcribe_engine is none; set it to faster-whisper to transcribe",
            "transcribe_engine",
        )
    in_range = day_bounds(first, last, settings.zone)
    started = time.monotonic()
    database = Database(settings.database_url)
    writer = BatchWriter(database.batch_sessions)
    transcriber = Transcriber(settings, database, writer)
    await writer.start()
    try:
        async with database.reads() as session:
            sids, skipped = await recordings_to_transcribe(session, in_range, redo)
        summary = BackfillSummary(skipped=skipped)
        with tqdm(total=len(sids), unit="recording", file=sys.stderr) as progress:
            for sid in sids:
                await _transcribe_one(transcriber, sid, redo, summary)
                progress.update()
    finally:
        transcriber.close()
        await writer.stop()
        await database.dispose()
    summary.wall_seconds = time.monotonic() - started
    log.info("%s", summary.line())
    return summary


async def _transcribe_one(
    transcriber: Transcriber, sid: str, redo: bool, summary: BackfillSummary
) -> None:
    try:
        seconds = await transcriber.transcribe(sid, replace=redo)
    except (PermanentFailure, InvalidAudio, OSError) as error:
        log.warning("recording %s not transcribed: %s", sid, error)
        summary.failed += 1
        return
    if seconds is None:
        # A worker transcribed it after the list was read.
        summary.skipped += 1
        return
    summary.done += 1
    summary.audio_seconds += seconds
