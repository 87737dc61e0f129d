"""Calls with transcripts and SMS for the search, tracker and review tests.

Calls and SMS arrive through signed webhooks; the transcript rows are
written as the transcription job writes them, with lines chosen by the test.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from conftest import post_signed
from sqlalchemy import select, update
from test_access import add_call, add_recording
from twilio_params import inbound_sms, new_sid

from capture.accounts import create_token
from capture.db import Database, transaction
from capture.demo_data import ORGANISATION_NUMBER
from capture.models import Activity, Call, Recording, Transcript, TranscriptSegment
from capture.settings import Settings


@dataclass(frozen=True)
class Line:
    speaker: str
    start_ms: int
    end_ms: int
    text: str


async def add_transcribed_call(
    client: Any,
    database: Database,
    settings: Settings,
    rep_phone: str,
    customer_phone: str,
    lines: list[Line],
) -> str:
    """Add a completed call with a stored recording and a transcript of `lines`."""
    call_sid = await add_call(client, rep_phone, customer_phone)
    recording_sid = await add_recording(database, settings, call_sid)
    async with transaction(database.writes) as session:
        recording_id = await session.scalar(
            select(Recording.id).where(Recording.recording_sid == recording_sid)
        )
        assert recording_id is not None
        segments = [
            TranscriptSegment(
                channel=1 if line.speaker == "rep" else 2,
                speaker=line.speaker,
                start_ms=line.start_ms,
                end_ms=line.end_ms,
                text=line.text,
                confidence=0.9,
            )
            for line in lines
        ]
        session.add(
            Transcript(
                recording_id=recording_id,
                engine="test",
                model="test",
                language="en",
                duration_seconds=max((line.end_ms for line in lines), default=0) / 1000,
                text=" ".join(line.text for line in lines),
                segments=segments,
            )
        )
    return call_sid


async def add_sms(client: Any, customer_phone: str, body: str) -> str:
    sid = new_sid("SM")
    params = inbound_sms(sid, customer_phone, ORGANISATION_NUMBER, body)
    response = await post_signed(client, "/twilio/sms", params)
    assert response.status == 200, await response.text()
    return sid


async def move_call(database: Database, call_sid: str, moment: datetime) -> None:
    """Set the moment of a call's touch, for date filters."""
    async with transaction(database.writes) as session:
        activity_id = await session.scalar(
            select(Call.activity_id).where(Call.call_sid == call_sid)
        )
        await session.execute(
            update(Activity)
            .where(Activity.id == activity_id)
            .values(occurred_at=moment)
        )


async def bearer(database: Database, email: str) -> dict[str, str]:
    async with transaction(database.writes) as session:
        secret, _ = await create_token(session, email)
    return {"Authorization": f"Bearer {secret}"}
