"""Silero VAD with the engine's settings keeps real speech at telephone quality."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"

import pytest
from speech_coverage import VOICES, Voice, measure, speak, telephone_audio

from transcripts.engine import VAD_OPTIONS

# Share of each voice's speech frames that must fall inside a VAD span.
MIN_KEPT_FRACTION = 0.95


@pytest.mark.parametrize("voice", VOICES, ids=[voice.label for voice in VOICES])
def test_vad_keeps_speech_of_voice(voice: Voice) -> None:
    track = speak(voice)
    audio = telephone_audio(track.clean)

    coverage = measure(track, audio, VAD_OPTIONS)

    assert coverage.speech_seconds > 5.0, "the voice produced too little speech"
    assert coverage.kept_fraction >= MIN_KEPT_FRACTION, coverage
    assert coverage.utterances_missed == 0, coverage
