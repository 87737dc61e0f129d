"""The whole path: simulated Twilio traffic to stream, transcript, report and export.

The simulator sends signed webhooks with real espeak-ng speech to a real
server with its in-process worker, which downloads each recording from the
simulator's loopback media host and transcribes it with the tiny.en model.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from conftest import ACCOUNT_SID, AUTH_TOKEN, free_port, make_settings
from sqlalchemy import func, select

from capture.accounts import create_token
from capture.db import Database, transaction
from capture.models import Job
from capture.settings import Settings
from telephony.simulate import SimulationOptions, SimulationReport, run_simulation
from telephony.simulate.report import CallRecord
from web.app import create_app

pytestmark = pytest.mark.speech

# Words of five letters or more; short words are too often misheard at 8 kHz.
WORD = re.compile(r"[a-z]{5,}")


async def wait_for_jobs(database: Database, limit_seconds: float = 120) -> None:
    async def pending() -> int:
        async with database.reads() as session:
            query = select(func.count()).where(Job.status.in_(("queued", "running")))
            return int(await session.scalar(query) or 0)

    # The worker runs in the server; the queue table is the only shared state.
    async with asyncio.timeout(limit_seconds):
        while await pending():  # noqa: ASYNC110
            await asyncio.sleep(0.2)


@pytest.fixture
async def live_server(tmp_path: Path, database_url: str, demo: None) -> Any:
    port = free_port()
    settings = make_settings(
        tmp_path / "data",
        database_url,
        public_url=f"http://127.0.0.1:{port}",
        transcribe_engine="faster-whisper",
    )
    runner = web.AppRunner(create_app(settings))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield settings
    await runner.cleanup()


async def simulate(settings: Settings, tmp_path: Path) -> SimulationReport:
    options = SimulationOptions(
        url=settings.public_url,
        auth_token=AUTH_TOKEN,
        account_sid=ACCOUNT_SID,
        work_dir=tmp_path / "audio",
        calls=6,
        sms=4,
        rate=0,
        seed=7,
        unknown_callers=1,
        withheld_callers=1,
    )
    return await run_simulation(options)


async def api_get(settings: Settings, token: str, path: str) -> Any:
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        aiohttp.ClientSession(headers=headers) as session,
        session.get(settings.public_url + path) as response,
    ):
        assert response.status == 200, await response.text()
        return await response.json()


async def test_pipeline_simulated_calls_reach_report(
    live_server: Settings, database: Database, tmp_path: Path
) -> None:
    settings = live_server
    report = await simulate(settings, tmp_path)
    await wait_for_jobs(database)
    async with transaction(database.writes) as session:
        token, _ = await create_token(session, "ada@demo.touchline.test")

    assert report.errors == []
    assert report.recordings_not_fetched == []
    summary = await api_get(
        settings, token, "/api/v1/reports/reps?from=2026-01-01&to=2027-12-31"
    )
    by_rep = {item["email"]: item for item in summary["items"]}
    for email, sent in report.per_rep.items():
        assert by_rep[email]["calls"] == sent.calls, email
        assert by_rep[email]["answered_calls"] == sent.answered_calls, email
        assert by_rep[email]["talk_seconds"] == sent.talk_seconds, email
        assert by_rep[email]["sms"] == sent.sms, email

    for call in report.calls:
        check_routing(call)
        detail = await api_get(settings, token, f"/api/v1/calls/{call.call_sid}")
        assert detail["status"] == call.final_status
        assert detail["talk_seconds"] == call.talk_seconds
        if call.recording_status != "completed":
            assert detail["transcript"] is None
            continue
        transcript = detail["transcript"]
        assert transcript is not None
        check_speakers(call.sentences, transcript["segments"])


def check_routing(call: CallRecord) -> None:
    """Check what the server's TwiML did for one simulated call."""
    if call.direction == "outbound":
        assert call.routing == [f"dial {call.customer_phone}"], call.routing
        return
    if call.caller_kind == "customer":
        assert call.routing[0].startswith("dial +1"), call.routing
    if call.answered:
        assert call.routing[-1] in ("hangup", "voicemail"), call.routing
    else:
        assert call.routing[-1] == "voicemail", call.routing


def words(text: str) -> set[str]:
    return set(WORD.findall(text.lower()))


def check_speakers(sentences: dict[str, list[str]], segments: list[Any]) -> None:
    """Check that each side's transcript contains its own words, not the other side's.

    tiny.en mishears synthetic 8 kHz speech now and then (about 81% word
    recall in bench/transcribe_rtf.py), so a third of the words must appear.
    """
    spoken = {speaker: words(" ".join(lines)) for speaker, lines in sentences.items()}
    for speaker, expected in spoken.items():
        lines = [s["text"] for s in segments if s["speaker"] == speaker]
        transcribed = words(" ".join(lines))
        other = next(said for side, said in spoken.items() if side != speaker)
        own_hits = len(expected & transcribed)
        other_hits = len((other - expected) & transcribed)
        assert own_hits >= max(2, len(expected) // 3), (speaker, expected, transcribed)
        assert own_hits > other_hits, (speaker, expected, transcribed)
