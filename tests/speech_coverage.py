"""Measure how much real speech Silero VAD keeps on telephone-quality audio.

Each voice speaks a few sentences with pauses between them, over low line
hiss, at 8 kHz. The track is then encoded as 8-bit mu-law, the way Twilio
stores recordings. Speech present is every 20 ms frame of the clean
synthesis louder than -40 dB below its peak. Speech kept is the part of
those frames that falls inside a span the VAD returns.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from audio import (
    TWILIO_SAMPLE_RATE_HZ,
    Samples,
    convert_to_mulaw,
    low_noise,
    silence,
    synthesize_speech,
    write_wav,
)
from faster_whisper import decode_audio
from faster_whisper.vad import VadOptions, get_speech_timestamps

WHISPER_RATE_HZ = 16_000
FRAME_SECONDS = 0.02
# A frame is speech when its RMS is within this many dB of the loudest frame.
SPEECH_RANGE_DB = 40.0
PAUSE_SECONDS = 1.5

ENGLISH_SENTENCES = (
    "Hello, this is Dana from Northwind, do you have a minute?",
    "We can lower the pricing if you sign the contract today.",
    "I will call you back on Thursday afternoon.",
    "Yes.",
    "Could you send me the proposal by email?",
)
CHINESE_SENTENCES = (
    "你好，我是北风公司的销售代表。",
    "如果您今天签合同，我们可以降低价格。",
    "好的。",
    "请把报价单发到我的邮箱。",
)


@dataclass(frozen=True)
class Voice:
    label: str
    voice: str
    words_per_minute: int
    sentences: Sequence[str]


VOICES = (
    Voice("en-us, 140 wpm", "en-us", 140, ENGLISH_SENTENCES),
    Voice("en-gb, 140 wpm", "en-gb", 140, ENGLISH_SENTENCES),
    Voice("en+f3 (female), 140 wpm", "en+f3", 140, ENGLISH_SENTENCES),
    Voice("en-us slow, 90 wpm", "en-us", 90, ENGLISH_SENTENCES),
    Voice("en-us fast, 220 wpm", "en-us", 220, ENGLISH_SENTENCES),
    Voice("zh (Mandarin), 140 wpm", "cmn", 140, CHINESE_SENTENCES),
)


@dataclass(frozen=True)
class Coverage:
    speech_seconds: float
    kept_seconds: float
    utterances: int
    utterances_missed: int  # utterances with less than half their speech kept

    @property
    def kept_fraction(self) -> float:
        return self.kept_seconds / self.speech_seconds


@dataclass(frozen=True)
class Track:
    clean: Samples
    utterances: list[tuple[int, int]]  # (first, last) sample of each sentence


def speak(voice: Voice) -> Track:
    """Speak `voice.sentences` with pauses, as one mono track at 8 kHz."""
    parts = [silence(PAUSE_SECONDS)]
    utterances = []
    position = len(parts[0])
    for sentence in voice.sentences:
        spoken = synthesize_speech(
            sentence, voice=voice.voice, words_per_minute=voice.words_per_minute
        )
        parts += [spoken, silence(PAUSE_SECONDS)]
        utterances.append((position, position + len(spoken)))
        position += len(spoken) + round(PAUSE_SECONDS * TWILIO_SAMPLE_RATE_HZ)
    return Track(np.concatenate(parts), utterances)


def speech_frames(clean: Samples) -> np.ndarray:
    """Return a boolean per 20 ms frame: True where the clean track has speech."""
    size = round(FRAME_SECONDS * TWILIO_SAMPLE_RATE_HZ)
    count = len(clean) // size
    frames = clean[: count * size].astype(np.float64).reshape(count, size)
    rms = np.sqrt(np.mean(frames**2, axis=1))
    floor = rms.max() * 10 ** (-SPEECH_RANGE_DB / 20)
    return np.asarray(rms > floor)


def telephone_audio(clean: Samples) -> np.ndarray:
    """Add line hiss, encode as 8 kHz mu-law and decode as Whisper's input."""
    noisy = np.clip(
        clean.astype(np.int32) + low_noise(len(clean) / TWILIO_SAMPLE_RATE_HZ),
        -32768,
        32767,
    ).astype(np.int16)
    with tempfile.TemporaryDirectory() as directory:
        pcm = write_wav(Path(directory) / "pcm.wav", noisy)
        mulaw = convert_to_mulaw(pcm, Path(directory) / "mulaw.wav")
        return np.asarray(decode_audio(str(mulaw), WHISPER_RATE_HZ), np.float32)


def vad_mask(audio: np.ndarray, options: VadOptions, frames: int) -> np.ndarray:
    """Return a boolean per 20 ms frame: True where a VAD span covers it."""
    mask = np.zeros(frames, dtype=bool)
    for span in get_speech_timestamps(audio, options, WHISPER_RATE_HZ):
        first = int(span["start"] / WHISPER_RATE_HZ / FRAME_SECONDS)
        last = int(np.ceil(span["end"] / WHISPER_RATE_HZ / FRAME_SECONDS))
        mask[first:last] = True
    return mask


def measure(track: Track, audio: np.ndarray, options: VadOptions) -> Coverage:
    """Compare the speech frames of `track` with what the VAD keeps of `audio`."""
    present = speech_frames(track.clean)
    kept = present & vad_mask(audio, options, len(present))
    size = round(FRAME_SECONDS * TWILIO_SAMPLE_RATE_HZ)
    missed = 0
    for first, last in track.utterances:
        span = slice(first // size, last // size)
        if kept[span].sum() < 0.5 * present[span].sum():
            missed += 1
    return Coverage(
        speech_seconds=float(present.sum()) * FRAME_SECONDS,
        kept_seconds=float(kept.sum()) * FRAME_SECONDS,
        utterances=len(track.utterances),
        utterances_missed=missed,
    )
