"""The transcription job: a stored recording in, timed segments out.

The model is loaded once per process and each recording is transcribed in a
one-thread executor, off the event loop. The engine decodes up to
`transcribe_decoders` windows of the recording at once on threads of its
own. Each segment comes back with its channel, which is labelled rep or
customer here.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from capture.db import Database
from capture.models import Call, Transcript, TranscriptSegment
from capture.recordings import call_of_recording_query, recording_query
from capture.settings import Settings
from capture.worker import PermanentFailure
from capture.writer import BatchWriter
from transcripts.engine import Engine, InvalidAudio, TranscriptResult, load_engine

log = logging.getLogger(__name__)


class Transcriber:
    def __init__(
        self, settings: Settings, database: Database, writer: BatchWriter
    ) -> None:
        self.settings = settings
        self.database = database
        self.writer = writer
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stt")

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)

    async def __call__(self, payload: dict[str, Any]) -> None:
        await self.transcribe(str(payload["recording_sid"]))

    async def transcribe(
        self, recording_sid: str, *, replace: bool = False
    ) -> float | None:
        """Transcribe a stored recording and store its transcript.

        Returns the seconds of audio transcribed, or None when the recording
        already has a transcript and `replace` is false. With `replace`, the
        old transcript is deleted in the transaction that adds the new one.
        Raises PermanentFailure for a recording without a readable file.
        """
        async with self.database.reads() as session:
            recording = (await session.scalars(recording_query(recording_sid))).one()
            done = await session.scalar(
                select(Transcript.id).where(Transcript.recording_id == recording.id)
            )
            call = await session.scalar(call_of_recording_query(recording))
        if done is not None and not replace:
            log.info("recording %s already transcribed", recording_sid)
            return None
        if recording.status != "stored" or not recording.file_path:
            raise PermanentFailure(f"recording {recording_sid} has no stored file")
        path = self.settings.data_dir / recording.file_path
        started = time.monotonic()
        engine, result = await self._transcribe(path)
        speakers = speaker_labels(
            call, recording.channels, self.settings, source=recording.source
        )
        transcript = _transcript(recording.id, engine, result, speakers)

        def store(session: Session) -> None:
            if replace:
                _delete_transcript(session, recording.id)
            session.add(transcript)

        await self.writer.run(store)
        log.info(
            "recording %s transcribed: segments=%s audio=%.1fs elapsed=%.1fs",
            recording_sid,
            len(result.segments),
            result.duration,
            time.monotonic() - started,
        )
        return result.duration

    async def _transcribe(self, path: Path) -> tuple[Engine, TranscriptResult]:
        loop = asyncio.get_running_loop()
        engine = await loop.run_in_executor(self.executor, self._engine)
        try:
            result = await loop.run_in_executor(self.executor, engine.transcribe, path)
        except (InvalidAudio, FileNotFoundError) as error:
            # Another try reads the same bytes, so it cannot succeed.
            raise PermanentFailure(f"recording not transcribed: {error}") from error
        return engine, result

    def _engine(self) -> Engine:
        return load_engine(
            self.settings.transcribe_engine,
            self.settings.whisper_model,
            self.settings.data_dir,
            cpu_threads=self.settings.transcribe_threads,
            decoders=self.settings.transcribe_decoders,
        )


# Twilio's RecordingSource of a recording started by `calls.create(record=True)`
# and of one started by `<Dial record=...>`.
REST_SOURCE = "OutboundAPI"
DIAL_SOURCE = "DialVerb"


def rep_channel(call: Call | None, source: str, settings: Settings) -> int:
    """Return the recording channel that carries the rep.

    The recording's source says how it was started. Touchline records
    click-to-call calls through the REST request, where the parent leg, the
    rep, is channel 1 (`api_rep_channel`), and inbound calls with `<Dial
    record>`, where the rep is the dialled party (`dial_rep_channel`). A
    recording of another source goes by the call's own direction.
    """
    if source == DIAL_SOURCE:
        return settings.dial_rep_channel
    if source == REST_SOURCE:
        return settings.api_rep_channel
    if call is not None and call.twilio_direction == "outbound-api":
        return settings.api_rep_channel
    return settings.dial_rep_channel


def speaker_labels(
    call: Call | None, channels: int, settings: Settings, source: str = ""
) -> dict[int, str]:
    """Map recording channels to rep and customer for this kind of recording."""
    if channels < 2:
        return {1: "mixed"}
    rep = rep_channel(call, source, settings)
    customer = 2 if rep == 1 else 1
    return {rep: "rep", customer: "customer"}


def _transcript(
    recording_id: int,
    engine: Engine,
    result: TranscriptResult,
    speakers: dict[int, str],
) -> Transcript:
    segments = [
        TranscriptSegment(
            channel=segment.channel,
            speaker=speakers.get(segment.channel, "mixed"),
            start_ms=round(segment.start * 1000),
            end_ms=round(segment.end * 1000),
            text=segment.text,
            confidence=segment.confidence,
        )
        for segment in result.segments
    ]
    return Transcript(
        recording_id=recording_id,
        engine=engine.name,
        model=engine.model_name,
        language=result.language,
        duration_seconds=result.duration,
        text=" ".join(segment.text for segment in result.segments),
        segments=segments,
    )


def _delete_transcript(session: Session, recording_id: int) -> None:
    """Delete the recording's transcript and its segments, if it has one."""
    old = select(Transcript.id).where(Transcript.recording_id == recording_id)
    session.execute(
        delete(TranscriptSegment).where(TranscriptSegment.transcript_id.in_(old))
    )
    session.execute(delete(Transcript).where(Transcript.recording_id == recording_id))
