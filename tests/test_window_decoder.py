"""Decoding packed speech window by window, on espeak-ng speech at 8 kHz."""

from __future__ import annotations

import os

# Set before faster-whisper imports huggingface_hub, which reads it at import.
os.environ["HF_HUB_OFFLINE"] = "1"

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from audio import TWILIO_SAMPLE_RATE_HZ, assemble_turns, synthesize_speech, write_wav
from faster_whisper import WhisperModel
from faster_whisper.tokenizer import Tokenizer
from faster_whisper.transcribe import Segment as WhisperSegment

from transcripts.engine import (
    COMPRESSION_RATIO_THRESHOLD,
    LOG_PROB_THRESHOLD,
    NO_SPEECH_THRESHOLD,
    SAMPLE_RATE_HZ,
    VAD_OPTIONS,
    _decode_channels,
)
from transcripts.speech_pack import SpeechPack, pack_speech
from transcripts.whisper_models import resolve_model
from transcripts.window_decoder import (
    DecodeSettings,
    WindowDecoder,
    transcription_options,
)

SETTINGS = DecodeSettings(
    beam_size=5,
    compression_ratio_threshold=COMPRESSION_RATIO_THRESHOLD,
    log_prob_threshold=LOG_PROB_THRESHOLD,
    no_speech_threshold=NO_SPEECH_THRESHOLD,
    word_timestamps=True,
)
SENTENCES = [
    (1, "We can lower the pricing if you sign the contract today."),
    (2, "I will call you back on Thursday afternoon."),
    (1, "Great, I will send the revised quote by email."),
]


def load_model(model_dir: Path) -> WhisperModel:
    return WhisperModel(
        str(model_dir), device="cpu", compute_type="int8", cpu_threads=1, num_workers=2
    )


@pytest.fixture(scope="module")
def tiny_model() -> WhisperModel:
    return load_model(resolve_model("tiny.en", Path("unused")))


@pytest.fixture(scope="module")
def base_model(tmp_path_factory: pytest.TempPathFactory) -> WhisperModel:
    """The multilingual base model; joining it copies about 145 MB."""
    return load_model(resolve_model("base", tmp_path_factory.mktemp("data")))


@pytest.fixture(scope="module")
def pack(tmp_path_factory: pytest.TempPathFactory) -> SpeechPack:
    """Three turns of a two-channel call, packed as the engine packs them."""
    turns = [(channel, synthesize_speech(text)) for channel, text in SENTENCES]
    path = tmp_path_factory.mktemp("call") / "call.wav"
    write_wav(path, assemble_turns(turns))
    return pack_speech(_decode_channels(path), VAD_OPTIONS, SAMPLE_RATE_HZ)


def timed_text(segments: list[WhisperSegment]) -> list[tuple[float, float, str]]:
    return [(segment.start, segment.end, segment.text) for segment in segments]


def test_options_match_faster_whisper(tiny_model: WhisperModel) -> None:
    _, info = tiny_model.transcribe(
        np.zeros(SAMPLE_RATE_HZ, dtype=np.float32),
        language="en",
        beam_size=SETTINGS.beam_size,
        condition_on_previous_text=False,
        vad_filter=False,
        compression_ratio_threshold=COMPRESSION_RATIO_THRESHOLD,
        log_prob_threshold=LOG_PROB_THRESHOLD,
        no_speech_threshold=NO_SPEECH_THRESHOLD,
        word_timestamps=True,
    )
    tokenizer = Tokenizer(
        tiny_model.hf_tokenizer, False, task="transcribe", language="en"
    )

    options = transcription_options(tokenizer, SETTINGS)

    assert options == info.transcription_options


def test_parallel_windows_match_one_by_one(
    tiny_model: WhisperModel, pack: SpeechPack
) -> None:
    # One window per sentence, so two windows run at once.
    windows = pack.windows(6.0, 3.0)
    assert len(windows) == len(SENTENCES)

    parallel, language = WindowDecoder(tiny_model, SETTINGS, 2).decode(
        pack.audio, windows, None
    )
    serial, _ = WindowDecoder(tiny_model, SETTINGS, 1).decode(pack.audio, windows, None)

    assert language == "en"
    assert timed_text(parallel) == timed_text(serial)


def test_window_times_in_stream(tiny_model: WhisperModel, pack: SpeechPack) -> None:
    samples = pack.windows(6.0, 3.0)
    windows = [(start / SAMPLE_RATE_HZ, end / SAMPLE_RATE_HZ) for start, end in samples]

    segments, _ = WindowDecoder(tiny_model, SETTINGS, 2).decode(
        pack.audio, samples, None
    )

    # Each window's text lies within that window's span of the stream, with
    # 0.1 s for rounding of Whisper's 20 ms timestamps.
    spans = [
        next(span for span in windows if span[0] - 0.1 <= segment.start < span[1])
        for segment in segments
    ]
    assert sorted(set(spans)) == windows
    for segment, (start, end) in zip(segments, spans, strict=True):
        assert segment.end <= end + 0.1, segment
        for word in segment.words or []:
            assert start - 0.1 <= word.start <= word.end <= end + 0.1, word


def test_decode_without_windows_rejected(tiny_model: WhisperModel) -> None:
    decoder = WindowDecoder(tiny_model, SETTINGS, 2)

    with pytest.raises(ValueError, match="No windows"):
        decoder.decode(np.zeros(0, dtype=np.float32), [], None)


@pytest.mark.speech
def test_language_detected_from_first_window(
    base_model: WhisperModel, pack: SpeechPack
) -> None:
    decoder = WindowDecoder(base_model, SETTINGS, 2)
    windows = pack.windows(6.0, 3.0)

    detected, language = decoder.decode(pack.audio, windows, None)
    with_language, _ = decoder.decode(pack.audio, windows, "en")

    assert language == "en"
    assert timed_text(detected) == timed_text(with_language)


# Six sentences of the benchmark call (bench/transcribe_rtf.py) in two long
# turns of one channel, 0.6 s apart within a turn: base stops decoding the
# first 28 s window at the start of its last sentence.
LONG_TURN_SENTENCES = [
    [
        "Hello, this is Maria from Northwind. Thanks for taking my call.",
        "I wanted to follow up on the proposal we sent last week.",
        "I understand. We can offer a discount on an annual contract.",
    ],
    [
        "For two years we can take fifteen percent off the list price.",
        "Of course. Should I send a revised quote by email today?",
        "Will do. Can we schedule a follow up call on Thursday?",
    ],
]


@pytest.fixture(scope="module")
def long_turn_pack(tmp_path_factory: pytest.TempPathFactory) -> SpeechPack:
    gap = np.zeros(round(0.6 * TWILIO_SAMPLE_RATE_HZ), dtype=np.int16)
    turns = []
    for sentences in LONG_TURN_SENTENCES:
        parts = [part for text in sentences for part in (synthesize_speech(text), gap)]
        turns.append((1, np.concatenate(parts[:-1])))
    path = tmp_path_factory.mktemp("long") / "call.wav"
    write_wav(path, assemble_turns(turns))
    return pack_speech(_decode_channels(path), VAD_OPTIONS, SAMPLE_RATE_HZ)


def decode_alone(
    model: WhisperModel, audio: npt.NDArray[np.float32]
) -> list[WhisperSegment]:
    """Decode `audio` in English as one window, without the decoder's rest step.

    Times are from the start of `audio`. `model` must be multilingual.
    """
    tokenizer = Tokenizer(model.hf_tokenizer, True, task="transcribe", language="en")
    options = transcription_options(tokenizer, SETTINGS)
    features = model.feature_extractor(audio)
    return list(model.generate_segments(features, tokenizer, options, False))


# Window ends inside speech, in seconds, tried when the service's own cut
# at a pause gives no rest that decodes differently with what follows.
# Where Whisper stops depends on the CPU's arithmetic: on an Intel Xeon
# base stopped before the last sentence of the 28 s window, and on an AMD
# EPYC it decoded that window to its end.
CUTS_IN_SPEECH = (28.0, 25.0, 26.0, 18.5, 24.5, 23.5)


@dataclass(frozen=True)
class WindowRest:
    windows: list[tuple[int, int]]
    # The first sample of the speech Whisper left undecoded in window one.
    rest: int
    alone: list[str]
    # What decoding from `rest` with the following speech gives up to the
    # window's end.
    with_following: list[str]


def window_rest(model: WhisperModel, pack: SpeechPack) -> WindowRest:
    """Return two windows where Whisper leaves the end of the first
    undecoded, and that rest decodes differently alone and with the speech
    that follows."""
    windows = pack.windows(28.0, 5.0)
    assert len(windows) == 2
    candidates = [windows] + [
        [(0, cut), (cut, len(pack.audio))]
        for cut in (round(seconds * SAMPLE_RATE_HZ) for seconds in CUTS_IN_SPEECH)
    ]
    hop = model.feature_extractor.hop_length
    for candidate in candidates:
        (start, end), _ = candidate
        first = decode_alone(model, pack.audio[start:end])
        alone = [segment for segment in first if segment.seek > 0]
        if not alone:
            continue
        rest = start + alone[0].seek * hop
        following = decode_alone(model, pack.audio[rest : rest + 30 * SAMPLE_RATE_HZ])
        with_following = [
            s.text for s in following if rest + s.end * SAMPLE_RATE_HZ <= end
        ]
        texts = [s.text for s in alone]
        if with_following and with_following != texts:
            return WindowRest(candidate, rest, texts, with_following)
    raise AssertionError("base left no rest that decodes differently in any window")


@pytest.mark.speech
def test_rest_of_window_decoded_with_following_speech(
    base_model: WhisperModel, long_turn_pack: SpeechPack
) -> None:
    """Speech that Whisper leaves at a window's end is decoded with what follows.

    The window decoder decodes it in a 30 s window from where Whisper stopped,
    as WhisperModel.transcribe would; decoded alone it comes out different.
    """
    found = window_rest(base_model, long_turn_pack)
    (_, end), _ = found.windows

    segments, _ = WindowDecoder(base_model, SETTINGS, 2).decode(
        long_turn_pack.audio, found.windows, "en"
    )

    # Segments inside the rest, counted as `with_following` counts them: a
    # cut inside speech leaves a segment across it, which belongs to neither.
    in_rest = [
        segment.text
        for segment in segments
        if found.rest <= segment.start * SAMPLE_RATE_HZ
        and segment.end * SAMPLE_RATE_HZ <= end
    ]
    assert in_rest == found.with_following
    assert in_rest != found.alone
