"""Decode packed speech through faster-whisper, several windows at once.

Whisper's encoder always takes 30 s of audio. The packed speech is cut
into windows of at most WINDOW_SPEECH_SECONDS (SpeechPack.windows), at a
pause: between two pieces of speech where possible, so a window edge rarely
cuts a word. Each window is decoded on its own, as WhisperModel.transcribe
would decode it with the same options. Where Whisper stops before the
window's end, though, the speech left there is not decoded alone but in a
30 s window that runs on into the next window's speech. Windows run in parallel on the
model's CTranslate2 replicas (WhisperModel num_workers), each replica on
its own CPU threads. CTranslate2 releases the GIL while it computes, so
Python threads are enough to keep every replica busy.

The language is detected from the encoder output of the first window, and
that output is then decoded, so each window costs one encoder pass, or
three when Whisper stops early. WhisperModel.transcribe would encode the
first window twice.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import ctranslate2
import numpy as np
import numpy.typing as npt
from faster_whisper import WhisperModel
from faster_whisper.audio import pad_or_trim
from faster_whisper.tokenizer import Tokenizer
from faster_whisper.transcribe import Segment as WhisperSegment
from faster_whisper.transcribe import TranscriptionOptions, get_suppressed_tokens

# Whisper's window: 30 s of audio, 3000 feature frames of 10 ms.
WINDOW_FRAMES = 3000
# Speech put into one window, leaving at least 2 s of it silent. Whisper
# tends to leave speech that ends near the window's end for the next window,
# as if it were cut off there. On the benchmark call (docs/benchmarks.md),
# base stopped one sentence early in a window holding 29.2 s of speech, so
# that sentence took a fourth encoder pass. Limits of 24 to 29 s gave three
# passes, and 30 s gave four.
# Whisper can still stop a sentence before the end of a shorter window, and
# that rest is then decoded again with the speech after it (_decode_rest).
WINDOW_SPEECH_SECONDS = 28
# The final stretch of a window in which it is cut: at a piece boundary if
# there is one, else in the longest pause. Every window but the last contains
# at least 23 s of speech.
WINDOW_CUT_SEARCH_SECONDS = 5
# WhisperModel.transcribe's defaults in faster-whisper 1.2.1, used where
# the engine sets nothing of its own.
TEMPERATURES = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
PREPEND_PUNCTUATIONS = "\"'“¿([{-"
APPEND_PUNCTUATIONS = "\"'.。,，!！?？:：”)]}、"


@dataclass(frozen=True)
class DecodeSettings:
    """The decoding options the engine sets; the rest are faster-whisper's."""

    beam_size: int
    compression_ratio_threshold: float
    log_prob_threshold: float
    no_speech_threshold: float
    word_timestamps: bool


def transcription_options(
    tokenizer: Tokenizer, settings: DecodeSettings
) -> TranscriptionOptions:
    """Return the options WhisperModel.transcribe builds for these settings.

    Each window is decoded on its own, so nothing is conditioned on the text
    of the window before. tests/test_window_decoder.py compares the result
    with the options that faster-whisper builds itself.
    """
    return TranscriptionOptions(
        beam_size=settings.beam_size,
        best_of=5,
        patience=1,
        length_penalty=1,
        repetition_penalty=1,
        no_repeat_ngram_size=0,
        log_prob_threshold=settings.log_prob_threshold,
        no_speech_threshold=settings.no_speech_threshold,
        compression_ratio_threshold=settings.compression_ratio_threshold,
        # One misheard phrase cannot steer the next window into a loop.
        condition_on_previous_text=False,
        prompt_reset_on_temperature=0.5,
        temperatures=list(TEMPERATURES),
        initial_prompt=None,
        prefix=None,
        suppress_blank=True,
        suppress_tokens=get_suppressed_tokens(tokenizer, [-1]),
        without_timestamps=False,
        max_initial_timestamp=1.0,
        word_timestamps=settings.word_timestamps,
        prepend_punctuations=PREPEND_PUNCTUATIONS,
        append_punctuations=APPEND_PUNCTUATIONS,
        multilingual=False,
        max_new_tokens=None,
        # generate_segments turns this into a list of floats in place, so
        # each window gets options of its own.
        clip_timestamps="0",
        hallucination_silence_threshold=None,
        hotwords=None,
    )


class WindowDecoder:
    """Decode windows of 16 kHz speech with `decoders` windows at a time.

    `model` must have been loaded with num_workers of at least `decoders`,
    or the extra windows wait for a free replica.
    """

    def __init__(
        self, model: WhisperModel, settings: DecodeSettings, decoders: int
    ) -> None:
        self._model = model
        self._settings = settings
        self._decoders = decoders

    def decode(
        self,
        audio: npt.NDArray[np.float32],
        windows: list[tuple[int, int]],
        language: str | None,
    ) -> tuple[list[WhisperSegment], str]:
        """Return the segments of all windows, in stream times, and the language.

        `windows` are (start, end) sample ranges of `audio`, in order.
        `language` None means detect it from the first window.
        """
        if not windows:
            raise ValueError("No windows to decode: the speech pack is empty.")
        known: Future[str] = Future()
        if language is not None or not self._model.model.is_multilingual:
            known.set_result(language or "en")
        with ThreadPoolExecutor(
            max_workers=self._decoders, thread_name_prefix="whisper-window"
        ) as pool:
            # Submitted in order, so the first window, which sets the language
            # the others wait for, is always the first to start.
            jobs = [
                pool.submit(
                    self._decode_window,
                    audio,
                    (start, end),
                    known,
                    index == 0 and not known.done(),
                )
                for index, (start, end) in enumerate(windows)
            ]
            segments = [segment for job in jobs for segment in job.result()]
        return segments, known.result()

    def _decode_window(
        self,
        audio: npt.NDArray[np.float32],
        window: tuple[int, int],
        language: Future[str],
        detect: bool,
    ) -> list[WhisperSegment]:
        """Decode audio[start:end] of `window`, in stream times.

        With `detect`, this window sets `language` for the others.
        """
        start, end = window
        decoded: list[WhisperSegment] = []
        # NOTE: generate_segments decodes the rest alone before it yields the
        # first segment that shows Whisper stopped early, so that pass is
        # wasted. With the 30 s decode of _decode_rest, a window that stops
        # early costs two more encoder passes instead of one.
        for segment in self._generate(audio[start:end], language, detect):
            if segment.seek > 0 and end < len(audio):
                # Segments of the first encoder pass have seek 0, so Whisper
                # stopped before the end of a window that more speech follows.
                rest = start + segment.seek * self._model.feature_extractor.hop_length
                return decoded + self._decode_rest(audio, rest, end, language)
            decoded.append(_shift(segment, start / self._sample_rate))
        return decoded

    def _decode_rest(
        self,
        audio: npt.NDArray[np.float32],
        rest: int,
        end: int,
        language: Future[str],
    ) -> list[WhisperSegment]:
        """Decode audio[rest:end] together with the speech after it.

        Whisper sometimes ends its output with the start time of a segment and
        no text, leaving a sentence or more before the window's end. Decoded
        alone, padded with silence, that sentence loses words. It is decoded
        here in a full 30 s window from `rest`, as WhisperModel.transcribe
        would go on over the joined stream, and the segments up to `end` are
        kept. The speech after `end` is left to the next window.
        """
        stop = rest + WINDOW_FRAMES * self._model.feature_extractor.hop_length
        decoded: list[WhisperSegment] = []
        for segment in self._generate(audio[rest:stop], language, False):
            cut = _before(
                _shift(segment, rest / self._sample_rate), end / self._sample_rate
            )
            if cut is None:
                # Segments come in order: the ones left are the next window's.
                break
            decoded.append(cut)
        return decoded

    def _generate(
        self, audio: npt.NDArray[np.float32], language: Future[str], detect: bool
    ) -> Iterable[WhisperSegment]:
        """Return generate_segments over `audio`, in times from its start."""
        try:
            features = self._model.feature_extractor(audio)
            encoded = self._encode_first_window(features)
            if detect:
                language.set_result(self._detect_language(encoded))
        except BaseException as error:
            # The windows waiting for the language fail too, and do not hang.
            if detect:
                language.set_exception(error)
            raise
        tokenizer = Tokenizer(
            self._model.hf_tokenizer,
            self._model.model.is_multilingual,
            task="transcribe",
            language=language.result(),
        )
        options = transcription_options(tokenizer, self._settings)
        return self._model.generate_segments(
            features, tokenizer, options, log_progress=False, encoder_output=encoded
        )

    @property
    def _sample_rate(self) -> int:
        return int(self._model.feature_extractor.sampling_rate)

    def _encode_first_window(
        self, features: npt.NDArray[np.float32]
    ) -> ctranslate2.StorageView:
        """Encode the frames generate_segments decodes first, padded to 30 s.

        The feature extractor returns one frame more than the audio fills,
        and generate_segments leaves that frame out.
        """
        frames = min(WINDOW_FRAMES, features.shape[-1] - 1)
        return self._model.encode(pad_or_trim(features[:, :frames]))

    def _detect_language(self, encoded: ctranslate2.StorageView) -> str:
        """Return the most likely language code, as detect_language does."""
        token, _probability = self._model.model.detect_language(encoded)[0][0]
        return str(token[2:-2])


def _before(segment: WhisperSegment, end: float) -> WhisperSegment | None:
    """Return the part of `segment` before `end`, or None if nothing is.

    A word is before `end` when its midpoint is. A segment without words is
    kept or dropped by its own midpoint.
    """
    if not segment.words:
        return segment if (segment.start + segment.end) / 2 < end else None
    words = [word for word in segment.words if (word.start + word.end) / 2 < end]
    if not words:
        return None
    if len(words) == len(segment.words):
        return segment
    return dataclasses.replace(
        segment,
        start=words[0].start,
        end=words[-1].end,
        text="".join(word.word for word in words),
        words=words,
    )


def _shift(segment: WhisperSegment, offset: float) -> WhisperSegment:
    """Move a segment and its words from window times to stream times."""
    words = [
        dataclasses.replace(word, start=word.start + offset, end=word.end + offset)
        for word in segment.words or []
    ]
    return dataclasses.replace(
        segment,
        start=segment.start + offset,
        end=segment.end + offset,
        words=words or segment.words,
    )
