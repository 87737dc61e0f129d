"""Speech-to-text engines that turn a call recording into timed segments.

Engines are CPU-bound and synchronous, so async callers should run
`Engine.transcribe` in an executor.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import av
import numpy as np
import numpy.typing as npt
from faster_whisper import WhisperModel, decode_audio
from faster_whisper.transcribe import Segment as WhisperSegment
from faster_whisper.transcribe import Word
from faster_whisper.vad import VadOptions

from transcripts import guards
from transcripts.speech_pack import SpeechPack, pack_speech
from transcripts.whisper_models import resolve_model
from transcripts.window_decoder import (
    WINDOW_CUT_SEARCH_SECONDS,
    WINDOW_SPEECH_SECONDS,
    DecodeSettings,
    WindowDecoder,
)

logger = logging.getLogger(__name__)

FASTER_WHISPER = "faster-whisper"
OPENAI_WHISPER = "openai-whisper"
ENGINES = (FASTER_WHISPER, OPENAI_WHISPER)
# faster-whisper resamples all input to the rate Whisper was trained on.
SAMPLE_RATE_HZ = 16_000
# 5 beams is the default of faster-whisper 1.2 and of the openai-whisper
# command line. On a 2-core Xeon, bench/transcribe_rtf.py measured base at a
# real-time factor of 0.10 and 88% word recall with 5 beams, against 0.07 and
# 86% with greedy decoding (1 beam).
DEFAULT_BEAM_SIZE = 5
# ISO 639-2 code for "undetermined", used when no channel contains speech.
UNDETERMINED_LANGUAGE = "und"
# Silero VAD settings, chosen with bench/vad_recall.py on six espeak-ng
# voices at 8 kHz mu-law (table in docs/benchmarks.md). Without padding, the
# default threshold of 0.5 detected 95 to 99% of each voice's speech frames
# and 0.35 detected 97 to 99%. With faster-whisper's padding of 400 ms both
# keep all of it, so the lower threshold is a margin for quieter lines.
# test_low_noise_has_no_segments checks that line hiss still yields no text.
VAD_THRESHOLD = 0.35
VAD_OPTIONS = VadOptions(
    threshold=VAD_THRESHOLD,
    min_silence_duration_ms=2000,
    speech_pad_ms=400,
)
# Decoding thresholds of openai-whisper, passed explicitly so that an upgrade
# of faster-whisper cannot change them. A window that compresses better than
# 2.4 or averages a log-probability under -1.0 is decoded again at a higher
# temperature. A window with a no-speech probability over 0.6 and a low
# log-probability is skipped.
COMPRESSION_RATIO_THRESHOLD = 2.4
# A pause between words of at least this many seconds starts a new segment.
UTTERANCE_GAP_SECONDS = 1.0
LOG_PROB_THRESHOLD = -1.0
NO_SPEECH_THRESHOLD = 0.6


class InvalidAudio(ValueError):
    """A recording that cannot be decoded, or has more than two channels."""


@dataclass(frozen=True)
class Segment:
    """A stretch of speech on one channel of a recording."""

    channel: int  # 1-based channel of the recording
    start: float  # seconds from the start of the recording
    end: float  # seconds from the start of the recording
    text: str
    # exp(avg_logprob) of the decoded tokens, clamped to 0..1.
    confidence: float


@dataclass(frozen=True)
class TranscriptResult:
    """The transcript of one recording, with segments sorted by start time."""

    language: str
    duration: float  # seconds
    segments: list[Segment]


class Engine(Protocol):
    """A loaded speech-to-text model that transcribes recordings."""

    name: str
    model_name: str

    def transcribe(self, path: Path) -> TranscriptResult: ...


class ChannelEngine:
    """An engine that labels each segment with the channel it was spoken on.

    The speech of all channels is packed into one stream (see
    transcripts/speech_pack.py), decoded in one pass and mapped back, so a
    dual-channel call recording gives segments labelled by speaker side.
    Subclasses decode the packed 16 kHz samples.
    """

    name: str
    model_name: str
    language: str | None

    def transcribe(self, path: Path) -> TranscriptResult:
        """Transcribe each channel of the audio file at `path`.

        Accepts any format FFmpeg decodes with one or two channels, including
        8 kHz 16-bit PCM and 8-bit mu-law WAV. Raises ValueError for files
        that cannot be decoded or have more than two channels.
        """
        started = time.monotonic()
        channels = _decode_channels(path)
        duration = len(channels[0]) / SAMPLE_RATE_HZ
        pack = pack_speech(channels, VAD_OPTIONS, SAMPLE_RATE_HZ)
        segments: list[Segment] = []
        language = self._default_language()
        if pack.pieces:
            # NOTE: one language is detected for the joined speech, so a call
            # whose two sides speak different languages is decoded in one.
            whisper_segments, language = self._decode(pack)
            for channel, channel_segments in pack.restore(whisper_segments).items():
                samples = channels[channel - 1]
                segments.extend(
                    to_segments(channel_segments, channel, duration, samples)
                )
        segments.sort(key=lambda segment: (segment.start, segment.channel))
        result = TranscriptResult(
            language=self.language or language, duration=duration, segments=segments
        )
        logger.info(
            "Transcribed %s (%.1f s audio, %.1f s speech, %d channels) with %s %s "
            "into %d segments in %.1f s",
            path,
            duration,
            pack.speech_seconds,
            len(channels),
            self.name,
            self.model_name,
            len(segments),
            time.monotonic() - started,
        )
        return result

    @property
    def is_multilingual(self) -> bool:
        raise NotImplementedError

    def _decode(self, pack: SpeechPack) -> tuple[Iterable[WhisperSegment], str]:
        """Return the segments of the packed speech, in its times, and language."""
        raise NotImplementedError

    def _default_language(self) -> str:
        """Return the language of a recording without speech."""
        if self.language is not None:
            return self.language
        return "en" if not self.is_multilingual else UNDETERMINED_LANGUAGE


class FasterWhisperEngine(ChannelEngine):
    """Whisper on CPU through faster-whisper (CTranslate2).

    The packed speech is decoded in windows of at most 28 s, `decoders`
    windows at a time, each on `cpu_threads` threads (transcripts/window_decoder.py).
    """

    name = FASTER_WHISPER

    def __init__(
        self,
        model_dir: Path,
        model_name: str,
        language: str | None,
        cpu_threads: int,
        compute_type: str = "int8",
        beam_size: int = DEFAULT_BEAM_SIZE,
        decoders: int = 1,
    ) -> None:
        """Load the model from `model_dir`, once per decoder.

        `language` None means detect it per recording. `cpu_threads` is per
        decoder; 0 lets CTranslate2 choose (4, or OMP_NUM_THREADS when set).
        """
        self.model_name = model_name
        self.language = language
        self.beam_size = beam_size
        started = time.monotonic()
        self._model = WhisperModel(
            str(model_dir),
            device="cpu",
            compute_type=compute_type,
            cpu_threads=cpu_threads,
            num_workers=decoders,
        )
        settings = DecodeSettings(
            beam_size=beam_size,
            compression_ratio_threshold=COMPRESSION_RATIO_THRESHOLD,
            log_prob_threshold=LOG_PROB_THRESHOLD,
            no_speech_threshold=NO_SPEECH_THRESHOLD,
            # Word times map each word back to its channel and to where it
            # was spoken, and a pause between words starts a new segment.
            word_timestamps=True,
        )
        self._decoder = WindowDecoder(self._model, settings, decoders)
        logger.info(
            "Loaded Whisper model %s from %s in %.2f s (%d decoders, %d threads each)",
            model_name,
            model_dir,
            time.monotonic() - started,
            decoders,
            cpu_threads,
        )

    @property
    def is_multilingual(self) -> bool:
        return bool(self._model.model.is_multilingual)

    def _decode(self, pack: SpeechPack) -> tuple[Iterable[WhisperSegment], str]:
        """Return the segments of the packed speech, in its times, and language."""
        windows = pack.windows(WINDOW_SPEECH_SECONDS, WINDOW_CUT_SEARCH_SECONDS)
        return self._decoder.decode(pack.audio, windows, self.language)


def to_segments(
    whisper_segments: Iterable[WhisperSegment],
    channel: int,
    duration: float,
    samples: npt.NDArray[np.float32],
) -> list[Segment]:
    """Convert faster-whisper segments, dropping empty and invented text.

    Times are clamped to the recording because Whisper's timestamps are
    predicted tokens and can overshoot the end of the audio slightly.
    """
    segments = []
    for whisper_segment in whisper_segments:
        confidence = min(max(math.exp(whisper_segment.avg_logprob), 0.0), 1.0)
        for text, start, end in _utterances(whisper_segment):
            start = min(max(start, 0.0), duration)
            end = min(max(end, start), duration)
            audio = samples[round(start * SAMPLE_RATE_HZ) : round(end * SAMPLE_RATE_HZ)]
            reason = _rejection(text, audio)
            if reason is not None:
                logger.info(
                    "Dropped segment %.1f-%.1f s of channel %d (%s): %r",
                    start,
                    end,
                    channel,
                    reason,
                    text,
                )
                continue
            segments.append(Segment(channel, start, end, text, confidence))
    return segments


def _utterances(segment: WhisperSegment) -> list[tuple[str, float, float]]:
    """Split a segment at pauses between its words into (text, start, end).

    The VAD removes silence before decoding, so Whisper can decode two
    utterances that were seconds apart as one segment. With word times,
    each pause of UTTERANCE_GAP_SECONDS or more starts a new line, and each
    line starts at its first word, where a click on it should seek.
    """
    if not segment.words:
        text = segment.text.strip()
        return [(text, float(segment.start), float(segment.end))] if text else []
    groups: list[list[Word]] = [[segment.words[0]]]
    for word in segment.words[1:]:
        if word.start - groups[-1][-1].end >= UTTERANCE_GAP_SECONDS:
            groups.append([])
        groups[-1].append(word)
    utterances = []
    for words in groups:
        text = "".join(word.word for word in words).strip()
        if text:
            utterances.append((text, float(words[0].start), float(words[-1].end)))
    return utterances


def _rejection(text: str, audio: npt.NDArray[np.float32]) -> str | None:
    """Return why a decoded segment is not speech, or None to keep it."""
    if guards.is_invented_phrase(text):
        return "invented phrase"
    if guards.is_repetitive(text):
        return "repetition"
    if guards.is_tonal(audio):
        return "tone or music"
    return None


def _decode_channels(path: Path) -> list[npt.NDArray[np.float32]]:
    """Decode the file at `path` to one 16 kHz float32 array per channel.

    NOTE: the whole recording is held in memory, 64 kB per second per channel
    (about 230 MB per channel-hour) plus decoding buffers.
    """
    channel_count = _count_channels(path)
    if channel_count > 2:
        raise InvalidAudio(
            f"Audio file {path} has {channel_count} channels. "
            "Only mono and two-channel recordings are supported."
        )
    try:
        if channel_count == 1:
            return [_as_float32(decode_audio(str(path), SAMPLE_RATE_HZ))]
        left, right = decode_audio(str(path), SAMPLE_RATE_HZ, split_stereo=True)
    except av.error.FFmpegError as error:
        raise InvalidAudio(f"Failed to decode audio file {path}: {error}") from error
    return [_as_float32(left), _as_float32(right)]


def _count_channels(path: Path) -> int:
    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            if not container.streams.audio:
                raise InvalidAudio(f"Audio file {path} contains no audio stream.")
            return int(container.streams.audio[0].channels)
    except av.error.FileNotFoundError:
        raise
    except av.error.FFmpegError as error:
        raise InvalidAudio(f"Failed to open audio file {path}: {error}") from error


def _as_float32(samples: npt.NDArray[np.generic]) -> npt.NDArray[np.float32]:
    # decode_audio returns float64 for a file with no samples.
    return np.asarray(samples, dtype=np.float32)


# Defaults of the `transcribe_decoders` and `transcribe_threads` settings:
# two single-thread decoders (docs/transcription.md gives the measurements).
DEFAULT_DECODERS = 2
DEFAULT_CPU_THREADS = 1

_engines: dict[tuple[str, str, Path, str | None, int, int], Engine] = {}
_engines_lock = threading.Lock()


def load_engine(
    engine: str,
    model: str,
    data_dir: Path,
    language: str | None = None,
    cpu_threads: int = DEFAULT_CPU_THREADS,
    decoders: int = DEFAULT_DECODERS,
) -> Engine:
    """Return a loaded engine, reusing one already loaded with the same arguments.

    `engine` is "faster-whisper" or "openai-whisper". `model` is passed to
    resolve_model, or for openai-whisper to resolve_checkpoint, both of
    which raise ModelError for a missing or corrupt model. faster-whisper
    decodes `decoders` windows at once with `cpu_threads` threads each.
    openai-whisper decodes the stream in one call, with both numbers'
    product as its thread count. Raises ValueError for an unknown engine.
    """
    if engine not in ENGINES:
        raise ValueError(
            f"Unknown transcription engine {engine!r}. "
            f"Supported engines: {', '.join(map(repr, ENGINES))}."
        )
    key = (engine, model, data_dir.absolute(), language, cpu_threads, decoders)
    # The lock is held while loading so concurrent jobs load a model only once.
    with _engines_lock:
        loaded = _engines.get(key)
        if loaded is None:
            loaded = _load(*key)
            _engines[key] = loaded
        return loaded


def _load(
    engine: str,
    model: str,
    data_dir: Path,
    language: str | None,
    cpu_threads: int,
    decoders: int,
) -> Engine:
    if engine == OPENAI_WHISPER:
        # Imported here because openai-whisper and PyTorch are an optional extra.
        from transcripts.openai_checkpoint import resolve_checkpoint
        from transcripts.openai_engine import OpenAIWhisperEngine

        checkpoint = resolve_checkpoint(model, data_dir)
        return OpenAIWhisperEngine(checkpoint, model, language, cpu_threads * decoders)
    model_dir = resolve_model(model, data_dir)
    return FasterWhisperEngine(
        model_dir, model, language, cpu_threads, decoders=decoders
    )
