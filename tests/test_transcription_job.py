"""The transcription job on stored recordings, with the tiny.en model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from audio import assemble_turns, synthesize_speech, write_wav
from conftest import ADMIN_EMAIL, login, make_settings, post_signed, start_client
from media_host import MediaHost, media_host
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload
from test_recordings import start_call
from twilio_params import call_status, new_sid, recording_status

from capture.accounts import create_token
from capture.db import Database, transaction
from capture.demo_data import CUSTOMERS, ORGANISATION_NUMBER, REPS
from capture.models import Job, Recording, Transcript
from capture.recordings import TRANSCRIBE_JOB
from capture.worker import Worker
from web.app import create_app
from web.keys import SETTINGS, WORKER

pytestmark = pytest.mark.speech


@pytest.fixture
async def speech_client(
    aiohttp_client: Any, tmp_path: Path, database_url: str, demo: None, request: Any
) -> Any:
    rep_channel = getattr(request, "param", 2)
    settings = make_settings(
        tmp_path / "data",
        database_url,
        transcribe_engine="faster-whisper",
        dial_rep_channel=rep_channel,
        api_rep_channel=rep_channel,
    )
    client = await start_client(aiohttp_client, create_app(settings, run_worker=False))
    await login(client, ADMIN_EMAIL)
    return client


async def store_recording(client: Any, body: bytes) -> str:
    """Post a completed recording for a new call and run its jobs."""
    call_sid = await start_call(client)
    recording_sid = new_sid("RE")
    host = MediaHost(files={f"/R/{recording_sid}": body})
    worker: Worker = client.app[WORKER]
    async with media_host(host):
        url = f"{host.base_url}/R/{recording_sid}"
        params = recording_status(
            call_sid, recording_sid, "completed", url=url, duration=2
        )
        await post_signed(client, "/twilio/voice/recording", params)
        assert await worker.run_once()
    assert TRANSCRIBE_JOB in worker.handlers
    assert await worker.run_once()
    return call_sid


async def transcript_of(database: Database) -> Transcript:
    async with transaction(database.reads) as session:
        transcript = await session.scalar(
            select(Transcript).options(selectinload(Transcript.segments))
        )
    assert transcript is not None
    return transcript


async def test_transcribe_silence_gives_no_text(
    speech_client: Any, database: Database, tmp_path: Path
) -> None:
    path = write_wav(tmp_path / "silence.wav", np.zeros((8000 * 3, 2), dtype=np.int16))

    await store_recording(speech_client, path.read_bytes())

    transcript = await transcript_of(database)
    assert transcript.text == ""
    assert transcript.segments == []


@pytest.mark.parametrize("speech_client", [1, 2], indirect=True)
async def test_transcribe_labels_rep_channel(
    speech_client: Any, database: Database, tmp_path: Path
) -> None:
    rep_channel = speech_client.app[SETTINGS].api_rep_channel
    first = synthesize_speech("I will send the contract on Thursday.", voice="en-us")
    second = synthesize_speech("Please email the pricing to our office.", voice="en-gb")
    samples = assemble_turns([(1, first), (2, second)])
    path = write_wav(tmp_path / "call.wav", samples)

    call_sid = await store_recording(speech_client, path.read_bytes())

    detail = await (await speech_client.get(f"/calls/{call_sid}")).text()
    transcript = await transcript_of(database)
    by_speaker = {
        segment.speaker: segment.text.lower() for segment in transcript.segments
    }
    rep_words = "contract" if rep_channel == 1 else "pricing"
    customer_words = "pricing" if rep_channel == 1 else "contract"
    assert rep_words in by_speaker["rep"]
    assert customer_words in by_speaker["customer"]
    assert "contract" in detail


async def test_transcribe_corrupt_recording_is_dead(
    speech_client: Any, database: Database
) -> None:
    call_sid = await store_recording(
        speech_client, b"RIFF\x24\x00\x00\x00WAVEnot really audio"
    )
    page = await (await speech_client.get(f"/calls/{call_sid}")).text()

    async with database.reads() as session:
        job = await session.scalar(select(Job).where(Job.kind == TRANSCRIBE_JOB))
        transcripts = await session.scalar(select(func.count()).select_from(Transcript))
    assert job is not None
    assert job.status == "dead"
    assert "not transcribed" in (job.last_error or "")
    assert transcripts == 0
    assert "Transcription failed" in page


@pytest.fixture
async def split_channel_client(
    aiohttp_client: Any, tmp_path: Path, database_url: str, demo: None
) -> Any:
    """A server where REST recordings carry the rep on 2 and <Dial> ones on 1."""
    settings = make_settings(
        tmp_path / "data",
        database_url,
        transcribe_engine="faster-whisper",
        dial_rep_channel=1,
        api_rep_channel=2,
    )
    client = await start_client(aiohttp_client, create_app(settings, run_worker=False))
    await login(client, ADMIN_EMAIL)
    return client


async def record_call(
    client: Any, params: dict[str, str], source: str, body: bytes
) -> str:
    """Post one call status and a completed recording of `source`; run its jobs."""
    assert (await post_signed(client, "/twilio/voice/status", params)).status == 204
    recording_sid = new_sid("RE")
    host = MediaHost(files={f"/R/{recording_sid}": body})
    worker: Worker = client.app[WORKER]
    async with media_host(host):
        recording = recording_status(
            params["CallSid"],
            recording_sid,
            "completed",
            url=f"{host.base_url}/R/{recording_sid}",
            duration=2,
        )
        recording["RecordingSource"] = source
        await post_signed(client, "/twilio/voice/recording", recording)
        assert await worker.run_once()
    assert await worker.run_once()
    return recording_sid


async def test_transcribe_rep_channel_per_call_kind(
    split_channel_client: Any, database: Database, tmp_path: Path
) -> None:
    first = synthesize_speech("I will send the contract on Thursday.", voice="en-us")
    second = synthesize_speech("Please email the pricing to our office.", voice="en-gb")
    body = write_wav(
        tmp_path / "call.wav", assemble_turns([(1, first), (2, second)])
    ).read_bytes()
    click_to_call = call_status(
        new_sid("CA"),
        "completed",
        3,
        caller=ORGANISATION_NUMBER,
        called=REPS[0].phone,
        direction="outbound-api",
        duration=5,
    )
    inbound = call_status(
        new_sid("CA"),
        "completed",
        3,
        caller=CUSTOMERS[0].phone,
        called=ORGANISATION_NUMBER,
        direction="inbound",
        duration=5,
    )

    rest_sid = await record_call(
        split_channel_client, click_to_call, "OutboundAPI", body
    )
    dial_sid = await record_call(split_channel_client, inbound, "DialVerb", body)

    speakers = {}
    async with database.reads() as session:
        for recording_sid in (rest_sid, dial_sid):
            transcript = await session.scalar(
                select(Transcript)
                .join(Recording, Transcript.recording_id == Recording.id)
                .where(Recording.recording_sid == recording_sid)
                .options(selectinload(Transcript.segments))
            )
            assert transcript is not None
            speakers[recording_sid] = {
                segment.speaker: segment.text.lower() for segment in transcript.segments
            }
    assert "pricing" in speakers[rest_sid]["rep"], "REST recordings: rep on 2"
    assert "contract" in speakers[rest_sid]["customer"]
    assert "contract" in speakers[dial_sid]["rep"], "<Dial> recordings: rep on 1"
    assert "pricing" in speakers[dial_sid]["customer"]


CORRUPT_WAV = b"RIFF\x24\x00\x00\x00WAVEnot really audio"
MANAGER_EMAIL = "mia@demo.touchline.test"
REP_EMAIL = "ana@demo.touchline.test"


async def transcription_job(database: Database) -> Job:
    async with database.reads() as session:
        job = await session.scalar(select(Job).where(Job.kind == TRANSCRIBE_JOB))
    assert job is not None
    return job


async def test_retry_button_queues_dead_job(
    speech_client: Any, database: Database
) -> None:
    call_sid = await store_recording(speech_client, CORRUPT_WAV)
    csrf = await login(speech_client, MANAGER_EMAIL)
    page = await (await speech_client.get(f"/calls/{call_sid}")).text()
    retry_path = f"/calls/{call_sid}/transcription/retry"

    without_token = await speech_client.post(retry_path, allow_redirects=False)
    response = await speech_client.post(
        retry_path, data={"csrf_token": csrf}, allow_redirects=False
    )

    assert f'action="{retry_path}"' in page
    assert without_token.status == 403
    assert response.status == 303
    assert response.headers["Location"] == f"/calls/{call_sid}"
    job = await transcription_job(database)
    assert job.status == "queued"
    assert job.attempts == 0
    assert job.last_error is not None, "the last error stays until the next try"


async def test_retried_job_runs_again(speech_client: Any, database: Database) -> None:
    call_sid = await store_recording(speech_client, CORRUPT_WAV)
    csrf = await login(speech_client, ADMIN_EMAIL)
    await speech_client.post(
        f"/calls/{call_sid}/transcription/retry", data={"csrf_token": csrf}
    )
    worker: Worker = speech_client.app[WORKER]

    ran = await worker.run_once()

    job = await transcription_job(database)
    assert ran is True
    assert job.status == "dead"
    assert job.attempts == 1
    assert "not transcribed" in (job.last_error or "")


async def test_retry_rejected_for_rep(speech_client: Any, database: Database) -> None:
    call_sid = await store_recording(speech_client, CORRUPT_WAV)
    csrf = await login(speech_client, REP_EMAIL)
    page = await (await speech_client.get(f"/calls/{call_sid}")).text()

    response = await speech_client.post(
        f"/calls/{call_sid}/transcription/retry", data={"csrf_token": csrf}
    )

    assert "Transcription failed" in page
    assert "transcription/retry" not in page
    assert response.status == 403
    assert (await transcription_job(database)).status == "dead"


async def test_retry_api_queues_dead_job(
    speech_client: Any, database: Database
) -> None:
    call_sid = await store_recording(speech_client, CORRUPT_WAV)
    async with transaction(database.writes) as session:
        secret, _ = await create_token(session, MANAGER_EMAIL)
    path = f"/api/v1/calls/{call_sid}/transcription/retry"
    headers = {"Authorization": f"Bearer {secret}"}

    first = await speech_client.post(path, headers=headers)
    second = await speech_client.post(path, headers=headers)

    job = await transcription_job(database)
    assert first.status == 200
    assert await first.json() == {"job_id": job.id, "status": "queued"}
    assert second.status == 409
    assert (await second.json())["field"] == "call_sid"
    assert job.status == "queued"


async def test_retry_api_unknown_call(speech_client: Any, database: Database) -> None:
    async with transaction(database.writes) as session:
        secret, _ = await create_token(session, ADMIN_EMAIL)

    response = await speech_client.post(
        "/api/v1/calls/CA404/transcription/retry",
        headers={"Authorization": f"Bearer {secret}"},
    )

    assert response.status == 404
    assert (await response.json())["field"] == "call_sid"
