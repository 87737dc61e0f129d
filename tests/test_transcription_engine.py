"""Transcription engine and model resolution, run on espeak-ng speech at 8 kHz."""

from __future__ import annotations

import os

# Set before faster-whisper imports huggingface_hub, which reads it at import.
os.environ["HF_HUB_OFFLINE"] = "1"

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from audio import (
    assemble_turns,
    convert_to_mulaw,
    low_noise,
    silence,
    synthesize_speech,
    turn_start_seconds,
    write_wav,
)
from faster_whisper.transcribe import Segment as WhisperSegment
from faster_whisper.transcribe import Word

from transcripts.engine import (
    Engine,
    FasterWhisperEngine,
    TranscriptResult,
    load_engine,
    to_segments,
)
from transcripts.whisper_models import (
    BASE_MODEL_SHA256,
    BASE_PART1_SHA256,
    BASE_SIDECAR_SHA256,
    ModelError,
    join_files,
    resolve_model,
    sha256_file,
    verify_sha256,
)

# espeak-ng at 140 words per minute, downsampled to 8 kHz, is recognised
# reliably by tiny.en for these words but not for every word of a sentence.
SELLER_SENTENCE = "We can lower the pricing if you sign the contract today."
SELLER_WORDS = {"pricing", "contract"}
BUYER_SENTENCE = "I will call you back on Thursday afternoon."
BUYER_WORDS = {"thursday", "afternoon"}


def words_of(text: str) -> set[str]:
    """Return the lower-case words of `text` without punctuation."""
    return set(re.findall(r"[a-z0-9']+", text.lower()))


def channel_words(result: TranscriptResult, channel: int) -> set[str]:
    text = " ".join(s.text for s in result.segments if s.channel == channel)
    return words_of(text)


@dataclass(frozen=True)
class Call:
    path: Path
    duration: float
    buyer_start: float  # seconds, when channel 2 starts speaking
    result: TranscriptResult


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="module")
def tiny_engine(data_dir: Path) -> Engine:
    return load_engine("faster-whisper", "tiny.en", data_dir)


@pytest.fixture(scope="module")
def seller_speech() -> np.ndarray:
    return synthesize_speech(SELLER_SENTENCE)


@pytest.fixture(scope="module")
def buyer_speech() -> np.ndarray:
    return synthesize_speech(BUYER_SENTENCE)


@pytest.fixture(scope="module")
def call(
    tmp_path_factory: pytest.TempPathFactory,
    tiny_engine: Engine,
    seller_speech: np.ndarray,
    buyer_speech: np.ndarray,
) -> Call:
    """Channel 1 speaks while channel 2 is silent, then channel 2 speaks."""
    turns = [(1, seller_speech), (2, buyer_speech)]
    track = assemble_turns(turns)
    path = write_wav(tmp_path_factory.mktemp("call") / "call.wav", track)
    buyer_start = turn_start_seconds(turns)[1]
    duration = len(track) / 8000
    return Call(path, duration, buyer_start, tiny_engine.transcribe(path))


def test_call_channel_one_words(call: Call) -> None:
    words = channel_words(call.result, 1)
    assert words >= SELLER_WORDS, f"channel 1 transcript words: {sorted(words)}"


def test_call_channel_two_words(call: Call) -> None:
    words = channel_words(call.result, 2)
    assert words >= BUYER_WORDS, f"channel 2 transcript words: {sorted(words)}"


def test_call_channel_labels(call: Call) -> None:
    channels = {segment.channel for segment in call.result.segments}
    assert channels == {1, 2}
    assert not SELLER_WORDS & channel_words(call.result, 2)
    assert not BUYER_WORDS & channel_words(call.result, 1)


def test_call_segment_times_within_duration(call: Call) -> None:
    assert call.result.duration == pytest.approx(call.duration, abs=0.01)
    for segment in call.result.segments:
        assert segment.start >= 0.0, segment
        assert segment.start <= segment.end, segment
        assert segment.end <= call.result.duration, segment


def test_call_second_speaker_after_first(call: Call) -> None:
    seller = [s for s in call.result.segments if s.channel == 1]
    buyer = [s for s in call.result.segments if s.channel == 2]
    assert seller
    assert buyer
    assert buyer[0].start > seller[0].start
    # VAD pads speech by up to 0.4 s, and timestamps have 20 ms resolution.
    assert buyer[0].start >= call.buyer_start - 0.5
    assert buyer[0].start >= seller[-1].end - 0.5


def test_call_segments_sorted_by_start(call: Call) -> None:
    starts = [segment.start for segment in call.result.segments]
    assert starts == sorted(starts)


def test_call_segment_fields(call: Call) -> None:
    assert call.result.language == "en"
    for segment in call.result.segments:
        assert segment.text == segment.text.strip()
        assert segment.text
        assert 0.0 < segment.confidence <= 1.0


def test_mono_recording_is_channel_one(
    tmp_path: Path, tiny_engine: Engine, buyer_speech: np.ndarray
) -> None:
    track = np.concatenate([silence(0.5), buyer_speech, silence(0.5)])
    result = tiny_engine.transcribe(write_wav(tmp_path / "mono.wav", track))
    assert {segment.channel for segment in result.segments} == {1}
    assert channel_words(result, 1) >= BUYER_WORDS


def test_mulaw_recording_is_transcribed(
    tmp_path: Path, tiny_engine: Engine, seller_speech: np.ndarray
) -> None:
    track = assemble_turns([(1, seller_speech)])
    pcm_path = write_wav(tmp_path / "pcm.wav", track)
    mulaw_path = convert_to_mulaw(pcm_path, tmp_path / "mulaw.wav")
    result = tiny_engine.transcribe(mulaw_path)
    assert channel_words(result, 1) >= SELLER_WORDS
    assert channel_words(result, 2) == set()


def test_digital_silence_has_no_segments(tmp_path: Path, tiny_engine: Engine) -> None:
    track = np.stack([silence(5.0), silence(5.0)], axis=1)
    result = tiny_engine.transcribe(write_wav(tmp_path / "zeros.wav", track))
    assert result.segments == []
    assert result.duration == pytest.approx(5.0)


def test_low_noise_has_no_segments(tmp_path: Path, tiny_engine: Engine) -> None:
    track = np.stack([low_noise(5.0, seed=1), low_noise(5.0, seed=2)], axis=1)
    result = tiny_engine.transcribe(write_wav(tmp_path / "noise.wav", track))
    assert result.segments == []


def test_empty_recording_has_no_segments(tmp_path: Path, tiny_engine: Engine) -> None:
    track = np.zeros((0, 2), dtype=np.int16)
    result = tiny_engine.transcribe(write_wav(tmp_path / "empty.wav", track))
    assert result.segments == []
    assert result.duration == 0.0


def test_three_channels_rejected(tmp_path: Path, tiny_engine: Engine) -> None:
    track = np.zeros((8000, 3), dtype=np.int16)
    path = write_wav(tmp_path / "three.wav", track)
    with pytest.raises(ValueError, match="3 channels"):
        tiny_engine.transcribe(path)


def test_undecodable_file_rejected(tmp_path: Path, tiny_engine: Engine) -> None:
    path = tmp_path / "notes.wav"
    path.write_text("not audio at all\n" * 20)
    with pytest.raises(ValueError, match=re.escape(str(path))):
        tiny_engine.transcribe(path)


def test_missing_file_raises_not_found(tmp_path: Path, tiny_engine: Engine) -> None:
    with pytest.raises(FileNotFoundError):
        tiny_engine.transcribe(tmp_path / "absent.wav")


def test_load_engine_reuses_loaded_engine(data_dir: Path, tiny_engine: Engine) -> None:
    again = load_engine("faster-whisper", "tiny.en", data_dir)
    assert again is tiny_engine
    assert isinstance(again, FasterWhisperEngine)
    assert again.name == "faster-whisper"
    assert again.model_name == "tiny.en"


def test_load_engine_unknown_engine(data_dir: Path) -> None:
    with pytest.raises(ValueError, match="'vosk'"):
        load_engine("vosk", "tiny.en", data_dir)


def test_resolve_tiny_en_package_files(data_dir: Path) -> None:
    model_dir = resolve_model("tiny.en", data_dir)
    for name in ("model.bin", "config.json", "tokenizer.json", "vocabulary.txt"):
        assert (model_dir / name).is_file(), name


def test_resolve_unknown_name(data_dir: Path) -> None:
    with pytest.raises(ModelError, match="Unknown model 'large-v9'"):
        resolve_model("large-v9", data_dir)


def test_resolve_directory_missing_model_bin(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelError, match=r"model\.bin"):
        resolve_model(str(tmp_path), tmp_path)


def test_resolve_directory_without_hash_check(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.bin").write_bytes(b"any bytes")
    assert resolve_model(str(tmp_path), tmp_path) == tmp_path


def test_join_rejects_corrupt_part(tmp_path: Path) -> None:
    corrupt_part = tmp_path / "model.bin.part1"
    corrupt_part.write_bytes(b"\x00" * 4096)
    target = tmp_path / "out" / "model.bin"
    with pytest.raises(ModelError, match="SHA-256 mismatch") as raised:
        join_files(
            [(corrupt_part, BASE_PART1_SHA256)], target, BASE_MODEL_SHA256, "base"
        )
    message = str(raised.value)
    assert f"expected {BASE_PART1_SHA256}" in message
    assert f"actual {sha256_file(corrupt_part)}" in message
    assert str(corrupt_part) in message
    assert list(target.parent.iterdir()) == [], "no partial or temporary file"


def test_join_rejects_wrong_total(tmp_path: Path) -> None:
    part = tmp_path / "part"
    part.write_bytes(b"joined bytes")
    target = tmp_path / "model.bin"
    target.write_bytes(b"previous model")
    with pytest.raises(ModelError, match=f"expected {BASE_MODEL_SHA256}"):
        join_files([(part, sha256_file(part))], target, BASE_MODEL_SHA256, "base")
    assert target.read_bytes() == b"previous model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.bin", "part"]


def test_verify_rechecks_changed_file(tmp_path: Path) -> None:
    path = tmp_path / "model.bin"
    path.write_bytes(b"original")
    verify_sha256(path, sha256_file(path), "custom")
    expected = sha256_file(path)
    path.write_bytes(b"tampered, longer")
    with pytest.raises(ModelError, match="SHA-256 mismatch"):
        verify_sha256(path, expected, "custom")


@pytest.fixture(scope="module")
def base_model_dir(data_dir: Path) -> Path:
    """The base model joined from its two packages; copies about 145 MB."""
    return resolve_model("base", data_dir)


def test_resolve_base_joined_hash(base_model_dir: Path, data_dir: Path) -> None:
    assert base_model_dir == data_dir / "models" / "whisper-base"
    assert sha256_file(base_model_dir / "model.bin") == BASE_MODEL_SHA256
    for name, expected in BASE_SIDECAR_SHA256.items():
        assert sha256_file(base_model_dir / name) == expected, name
    leftovers = [p.name for p in base_model_dir.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


def test_resolve_base_joins_once(base_model_dir: Path, data_dir: Path) -> None:
    before = (base_model_dir / "model.bin").stat()
    assert resolve_model("base", data_dir) == base_model_dir
    after = (base_model_dir / "model.bin").stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_resolve_base_rebuilds_corrupt_join(tmp_path: Path) -> None:
    model_dir = resolve_model("base", tmp_path)
    (model_dir / "model.bin").write_bytes(b"truncated")
    (model_dir / "tokenizer.json").unlink()
    assert resolve_model("base", tmp_path) == model_dir
    assert sha256_file(model_dir / "model.bin") == BASE_MODEL_SHA256
    tokenizer_sha256 = BASE_SIDECAR_SHA256["tokenizer.json"]
    assert sha256_file(model_dir / "tokenizer.json") == tokenizer_sha256


@pytest.mark.speech
def test_base_model_transcribes_english(
    tmp_path: Path, base_model_dir: Path, buyer_speech: np.ndarray
) -> None:
    engine = FasterWhisperEngine(base_model_dir, "base", language=None, cpu_threads=0)
    track = np.concatenate([silence(0.5), buyer_speech, silence(0.5)])
    result = engine.transcribe(write_wav(tmp_path / "buyer.wav", track))
    assert result.language == "en", "language detected by the multilingual model"
    assert channel_words(result, 1) >= BUYER_WORDS


def test_turn_starts_match_speech(
    tmp_path: Path,
    tiny_engine: Engine,
    seller_speech: np.ndarray,
    buyer_speech: np.ndarray,
) -> None:
    # Four turns, so each channel has a second utterance after a silence in
    # which the other side spoke.
    turns = [
        (1, seller_speech),
        (2, buyer_speech),
        (1, seller_speech),
        (2, buyer_speech),
    ]
    # Short pauses, as in a brisk call, are where segment times went wrong.
    path = write_wav(tmp_path / "four.wav", assemble_turns(turns, gap_seconds=0.4))
    expected = turn_start_seconds(turns, gap_seconds=0.4)

    result = tiny_engine.transcribe(path)

    starts = sorted(segment.start for segment in result.segments)
    assert len(starts) == len(expected), result.segments
    for start, turn_start in zip(starts, expected, strict=True):
        # Whisper's word times are accurate to a few hundred milliseconds.
        assert start == pytest.approx(turn_start, abs=0.5), result.segments
    channels = [s.channel for s in sorted(result.segments, key=lambda s: s.start)]
    assert channels == [1, 2, 1, 2]


def whisper_segment(words: list[tuple[float, float, str]]) -> WhisperSegment:
    return WhisperSegment(
        id=0,
        seek=0,
        start=words[0][0],
        end=words[-1][1],
        text="".join(word for _, _, word in words),
        tokens=[],
        avg_logprob=-0.1,
        compression_ratio=1.2,
        no_speech_prob=0.0,
        words=[Word(start, end, word, 0.9) for start, end, word in words],
        temperature=0.0,
    )


def test_segment_split_at_long_word_gap() -> None:
    joined = whisper_segment(
        [
            (4.6, 5.0, " I"),
            (5.2, 7.1, " will call."),
            (12.9, 13.4, " I"),
            (13.5, 15.3, " agree."),
        ]
    )

    noise = np.random.default_rng(7).normal(0, 0.1, 20 * 16_000).astype(np.float32)

    segments = to_segments([joined], channel=2, duration=20.0, samples=noise)

    assert [(s.start, s.end, s.text) for s in segments] == [
        (4.6, 7.1, "I will call."),
        (12.9, 15.3, "I agree."),
    ]
    assert {s.channel for s in segments} == {2}


def test_segment_kept_whole_across_short_pause() -> None:
    spoken = whisper_segment([(1.0, 1.4, " Hello,"), (2.2, 2.9, " Ana.")])

    noise = np.random.default_rng(7).normal(0, 0.1, 5 * 16_000).astype(np.float32)

    segments = to_segments([spoken], channel=1, duration=5.0, samples=noise)

    assert [(s.start, s.end, s.text) for s in segments] == [(1.0, 2.9, "Hello, Ana.")]
