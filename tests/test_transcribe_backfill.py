"""`touchline transcribe --backfill`, run as a separate process."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select, update
from test_cli import TOUCHLINE
from test_worker_processes import long_call, seed_recordings, worker_environment

from capture.db import Database, transaction
from capture.models import Recording, Transcript

pytestmark = [pytest.mark.speech, pytest.mark.timeout(300)]

# Noon UTC is the same day in the tests' America/Los_Angeles time zone.
OLD_DAY = datetime(2026, 3, 2, 12, tzinfo=UTC)
NEW_DAY = datetime(2026, 3, 9, 12, tzinfo=UTC)


def backfill(
    tmp_path: Path, database_url: str, *args: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TOUCHLINE, "transcribe", "--backfill", *args],
        env=worker_environment(tmp_path, database_url),
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


async def seed(database: Database, tmp_path: Path) -> list[str]:
    """Store two calls, one old and one new, and a corrupt new recording."""
    audio = long_call(tmp_path / "call.wav", turns=2)
    sids = seed_recordings(database, tmp_path / "data", audio, count=3)
    (tmp_path / "data" / "recordings" / f"{sids[2]}.wav").write_bytes(b"RIFFnot")
    async with transaction(database.writes) as session:
        for sid, day in zip(sids, (OLD_DAY, NEW_DAY, NEW_DAY), strict=True):
            await session.execute(
                update(Recording)
                .where(Recording.recording_sid == sid)
                .values(created_at=day)
            )
    return sids


async def transcript_ids(database: Database) -> dict[int, int]:
    """Return transcript id by recording id."""
    async with database.reads() as session:
        rows = await session.execute(select(Transcript.recording_id, Transcript.id))
    return {recording_id: transcript_id for recording_id, transcript_id in rows}


async def test_backfill_fills_missing_transcripts(
    tmp_path: Path, database_url: str, database: Database
) -> None:
    await seed(database, tmp_path)

    first = backfill(tmp_path, database_url)
    after_first = await transcript_ids(database)
    second = backfill(tmp_path, database_url)

    assert first.returncode == 1, first.stderr
    assert "backfill: 2 done, 1 failed, 0 skipped" in first.stderr
    assert "3/3" in first.stderr, "tqdm's progress bar reached the end"
    assert "s of audio in" in first.stderr
    assert len(after_first) == 2
    assert "backfill: 0 done, 1 failed, 2 skipped" in second.stderr
    assert await transcript_ids(database) == after_first


async def test_backfill_redo_replaces_in_range(
    tmp_path: Path, database_url: str, database: Database
) -> None:
    sids = await seed(database, tmp_path)
    backfill(tmp_path, database_url)
    async with database.reads() as session:
        old_id = await session.scalar(
            select(Recording.id).where(Recording.recording_sid == sids[0])
        )
    before = await transcript_ids(database)

    redone = backfill(
        tmp_path, database_url, "--redo", "--from", "2026-03-01", "--to", "2026-03-05"
    )

    after = await transcript_ids(database)
    assert redone.returncode == 0, redone.stderr
    assert "backfill: 1 done, 0 failed, 0 skipped" in redone.stderr
    assert set(after) == set(before)
    changed = {rid for rid in after if after[rid] != before[rid]}
    assert changed == {old_id}, "only the old recording was transcribed again"


async def test_backfill_bad_date_names_field(
    tmp_path: Path, database_url: str, database: Database
) -> None:
    result = backfill(tmp_path, database_url, "--from", "2026-13-01")

    assert result.returncode == 1
    assert "from '2026-13-01' is not an ISO date" in result.stderr


async def test_backfill_reversed_range_named(
    tmp_path: Path, database_url: str, database: Database
) -> None:
    result = backfill(
        tmp_path, database_url, "--from", "2026-03-09", "--to", "2026-03-01"
    )

    assert result.returncode == 1
    assert "to 2026-03-01 is before from 2026-03-09" in result.stderr
