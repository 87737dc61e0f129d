"""Guards against text Whisper invents on silence, tones and music."""

from __future__ import annotations

import os

# Set before faster-whisper imports huggingface_hub, which reads it at import.
os.environ["HF_HUB_OFFLINE"] = "1"

import subprocess
from pathlib import Path

import numpy as np
import pytest
from audio import (
    TWILIO_SAMPLE_RATE_HZ,
    require_tool,
    silence,
    synthesize_speech,
    write_wav,
)
from faster_whisper import decode_audio

from transcripts import guards
from transcripts.engine import Engine, FasterWhisperEngine, load_engine
from transcripts.whisper_models import resolve_model

SENTENCE = "I will call you back on Thursday afternoon."
# Root position triads of C, A, F and G major, as hold music loops them.
CHORDS = (
    (261.6, 329.6, 392.0),
    (220.0, 277.2, 329.6),
    (174.6, 220.0, 261.6),
    (196.0, 246.9, 293.7),
)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="module")
def tiny_engine(data_dir: Path) -> Engine:
    return load_engine("faster-whisper", "tiny.en", data_dir)


def sox_synth(path: Path, seconds: float, *effects: str) -> Path:
    """Write 8 kHz mono 16-bit audio made by sox's synth effect to `path`."""
    command = [require_tool("sox"), "-n", "-r", str(TWILIO_SAMPLE_RATE_HZ)]
    command += ["-b", "16", "-c", "1", str(path), "synth", str(seconds), *effects]
    subprocess.run(command, check=True, capture_output=True)
    return path


def tone(directory: Path) -> Path:
    """Write 10 s of a 440 Hz sine at -6 dBFS, like a line test tone."""
    return sox_synth(directory / "tone.wav", 10, "sine", "440", "gain", "-6")


def hold_music(directory: Path) -> Path:
    """Write 18 s of looped triangle-wave chords with tremolo."""
    parts = []
    for number, chord in enumerate(CHORDS):
        voices = [item for pitch in chord for item in ("triangle", str(pitch))]
        effects = [*voices, "remix", "-", "gain", "-6", "tremolo", "5", "40"]
        parts.append(sox_synth(directory / f"chord{number}.wav", 1.5, *effects))
    target = directory / "music.wav"
    sox = require_tool("sox")
    subprocess.run([sox, *parts, *parts, *parts, target], check=True)
    return target


def as_whisper_input(path: Path) -> np.ndarray:
    return np.asarray(decode_audio(str(path), 16_000), dtype=np.float32)


@pytest.mark.parametrize(
    "text",
    [
        "Thanks for watching!",
        " Thank you for watching.",
        "Subtitles by the Amara.org community",
        "字幕",
        "字幕by索兰娅",
        "请不吝点赞 订阅 转发 打赏支持明镜与点点栏目",
    ],
)
def test_invented_phrase_detected(text: str) -> None:
    assert guards.is_invented_phrase(text) is True


@pytest.mark.parametrize(
    "text", ["Thank you.", "We can lower the pricing.", "Watch the demo first."]
)
def test_real_phrase_kept(text: str) -> None:
    assert guards.is_invented_phrase(text) is False


@pytest.mark.parametrize(
    "text",
    [
        "I'm sorry, I'm sorry, I'm sorry, I'm sorry, I'm sorry.",
        "the the the the",
        "好的好的好的好的",
        "So we " + "can do that and " * 6,
    ],
)
def test_repetition_detected(text: str) -> None:
    assert guards.is_repetitive(text) is True


@pytest.mark.parametrize(
    "text",
    [
        "We can lower the pricing if you sign the contract today.",
        "No, no, no, that is not what I meant.",
        "如果您今天签合同，我们可以降低价格。",
    ],
)
def test_ordinary_sentence_not_repetitive(text: str) -> None:
    assert guards.is_repetitive(text) is False


def test_tone_is_tonal(tmp_path: Path) -> None:
    assert guards.is_tonal(as_whisper_input(tone(tmp_path))) is True


def test_hold_music_is_tonal(tmp_path: Path) -> None:
    assert guards.is_tonal(as_whisper_input(hold_music(tmp_path))) is True


@pytest.mark.parametrize(
    ("voice", "words_per_minute"),
    [("en-us", 140), ("en-gb", 140), ("en+f3", 140), ("en-us", 90), ("cmn", 140)],
)
def test_speech_is_not_tonal(tmp_path: Path, voice: str, words_per_minute: int) -> None:
    samples = synthesize_speech(
        SENTENCE, voice=voice, words_per_minute=words_per_minute
    )
    path = write_wav(tmp_path / "speech.wav", samples)

    assert guards.is_tonal(as_whisper_input(path)) is False


@pytest.mark.speech
def test_tone_has_no_segments(tmp_path: Path, tiny_engine: Engine) -> None:
    result = tiny_engine.transcribe(tone(tmp_path))

    assert result.segments == []


@pytest.mark.speech
def test_hold_music_has_no_segments(tmp_path: Path, tiny_engine: Engine) -> None:
    result = tiny_engine.transcribe(hold_music(tmp_path))

    assert result.segments == []


@pytest.mark.speech
def test_silence_has_no_segments(tmp_path: Path, tiny_engine: Engine) -> None:
    path = write_wav(tmp_path / "silence.wav", silence(20.0))

    result = tiny_engine.transcribe(path)

    assert result.segments == []


@pytest.mark.speech
def test_late_speech_language_detected(tmp_path: Path, data_dir: Path) -> None:
    engine = FasterWhisperEngine(
        resolve_model("base", data_dir), "base", language=None, cpu_threads=0
    )
    track = np.concatenate([silence(20.0), synthesize_speech(SENTENCE), silence(1.0)])
    path = write_wav(tmp_path / "late.wav", track)

    result = engine.transcribe(path)

    assert result.language == "en"
    assert result.segments, "the speech after the silence was transcribed"
    assert result.segments[0].start >= 19.5
    assert "thursday" in result.segments[0].text.lower()
