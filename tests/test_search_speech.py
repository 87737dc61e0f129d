"""Search finds a word spoken in a real recording at the second it was spoken."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from audio import assemble_turns, synthesize_speech, turn_start_seconds, write_wav
from conftest import ADMIN_EMAIL
from review_data import bearer
from test_transcription_job import speech_client, store_recording  # noqa: F401

from capture.db import Database

pytestmark = pytest.mark.speech
# Silence before each turn, long enough that the two turns start in
# different whole seconds.
GAP_SECONDS = 2.5


async def test_search_spoken_word_at_second(
    speech_client: Any,  # noqa: F811
    database: Database,
    tmp_path: Path,
) -> None:
    turns = [
        (1, synthesize_speech("Good morning, thanks for calling us.", voice="en-gb")),
        (2, synthesize_speech("I will send the contract on Thursday.", voice="en-us")),
    ]
    path = write_wav(tmp_path / "call.wav", assemble_turns(turns, GAP_SECONDS))
    spoken_at = turn_start_seconds(turns, GAP_SECONDS)[1]
    call_sid = await store_recording(speech_client, path.read_bytes())

    response = await speech_client.get(
        "/api/v1/search",
        params={"q": "contract"},
        headers=await bearer(database, ADMIN_EMAIL),
    )
    found = await response.json()

    assert response.status == 200
    [hit] = found["items"]
    assert hit["call_sid"] == call_sid
    # The speech client records the rep on channel 2.
    assert hit["speaker"] == "rep"
    # Whisper times a segment to its first word, give or take the voice
    # activity filter's padding, so the hit may start up to a second early.
    assert spoken_at - 1 <= hit["second"] <= spoken_at, (hit, spoken_at)
    assert hit["url"] == f"/calls/{call_sid}?t={hit['second']}#t={hit['second']}"
