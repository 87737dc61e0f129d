"""Retention of recordings and transcripts, on both databases."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select

from capture.db import Database, transaction
from capture.models import Recording, Transcript, TranscriptSegment
from capture.retention import apply_retention, retention_days
from capture.runtime import set_value
from capture.settings import Settings

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def write_audio(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"RIFF....WAVE")


async def add_recording(
    database: Database, sid: str, age_days: int, path: Path | None
) -> None:
    if path is not None:
        write_audio(path)
    async with transaction(database.writes) as session:
        recording = Recording(
            recording_sid=sid,
            call_sid="CA" + sid[2:],
            status="stored",
            file_path=str(path) if path else None,
            size_bytes=12,
            created_at=NOW - timedelta(days=age_days),
            updated_at=NOW - timedelta(days=age_days),
        )
        session.add(recording)
        await session.flush()
        transcript = Transcript(recording_id=recording.id, engine="e", model="m")
        session.add(transcript)
        await session.flush()
        session.add(
            TranscriptSegment(
                transcript_id=transcript.id,
                channel=1,
                speaker="rep",
                start_ms=0,
                end_ms=900,
                text="hello",
                confidence=0.9,
            )
        )


async def statuses(database: Database) -> dict[str, str]:
    async with database.reads() as session:
        rows = await session.execute(select(Recording.recording_sid, Recording.status))
        return {sid: status for sid, status in rows}


async def count(database: Database, model: type) -> int:
    async with database.reads() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_retention_deletes_old_audio_and_transcripts(
    database: Database, settings: Settings
) -> None:
    folder = settings.recordings_dir
    old_file = folder / "RE1.wav"
    new_file = folder / "RE2.wav"
    outside = settings.data_dir / "elsewhere.wav"
    await add_recording(database, "RE" + "1" * 32, 45, old_file)
    await add_recording(database, "RE" + "2" * 32, 5, new_file)
    await add_recording(database, "RE" + "3" * 32, 60, outside)

    result = await apply_retention(
        database.writes, days=30, recordings_dir=folder, now=NOW
    )
    again = await apply_retention(
        database.writes, days=30, recordings_dir=folder, now=NOW
    )

    assert (result.recordings, result.transcripts, result.files) == (2, 2, 1)
    assert again.recordings == 0
    assert await statuses(database) == {
        "RE" + "1" * 32: "deleted",
        "RE" + "2" * 32: "stored",
        "RE" + "3" * 32: "deleted",
    }
    assert not old_file.exists()
    assert new_file.exists()
    # A path outside the recordings folder is never deleted.
    assert outside.exists()
    assert await count(database, Transcript) == 1
    assert await count(database, TranscriptSegment) == 1


async def test_retention_zero_keeps_everything(
    database: Database, settings: Settings
) -> None:
    path = settings.recordings_dir / "RE4.wav"
    await add_recording(database, "RE" + "4" * 32, 4000, path)

    result = await apply_retention(
        database.writes, days=0, recordings_dir=settings.recordings_dir, now=NOW
    )

    assert result.recordings == 0
    assert path.exists()


async def test_retention_days_follows_settings_page(
    database: Database, settings: Settings
) -> None:
    before = await retention_days(database.writes, settings)
    async with transaction(database.writes) as session:
        await set_value(session, "retention_days", "90", user_id=None)

    assert before == 0
    assert await retention_days(database.writes, settings) == 90


def test_retention_command(settings: Settings, database_url: str) -> None:
    env = {
        "TOUCHLINE_DATABASE_URL": database_url,
        "TOUCHLINE_DATA_DIR": str(settings.data_dir),
        "TOUCHLINE_TWILIO_AUTH_TOKEN": "x",
        "TOUCHLINE_SECRET_KEY": "k" * 40,
        "TOUCHLINE_RETENTION_DAYS": "30",
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
    }
    touchline = str(Path(sys.executable).with_name("touchline"))

    result = subprocess.run(
        [touchline, "retention"], env=env, capture_output=True, text=True, timeout=120
    )

    assert result.returncode == 0, result.stderr
    assert "0 recordings past retention" in result.stderr
