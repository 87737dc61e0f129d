"""Pack the speech of both channels into one stream for a single decoding pass.

In a dual-channel call each side is silent while the other talks. Silero VAD
finds each channel's speech, and the spans of channel 1 followed by those of
channel 2 are joined into one array. Whisper encodes 30 s windows however
little speech they hold, so one joined stream needs fewer windows than two
half-full ones, and a multilingual model detects the language once, on
speech, instead of once per channel.

Word times of the decoded stream are mapped back to their channel and to
the time in the recording where the word was spoken.
"""

from __future__ import annotations

import bisect
import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from faster_whisper.transcribe import Segment as WhisperSegment
from faster_whisper.transcribe import Word
from faster_whisper.vad import VadOptions, get_speech_timestamps


@dataclass(frozen=True)
class Piece:
    """One span of speech: where it sits in the packed stream and the call."""

    channel: int  # 1-based channel of the recording
    packed_start: float  # seconds from the start of the packed stream
    packed_end: float  # seconds from the start of the packed stream
    start: float  # seconds from the start of the recording
    # Seconds from the start of the packed stream where the VAD heard speech
    # begin, after the padding it adds before each span.
    onset: float


@dataclass(frozen=True)
class SpeechPack:
    """The joined speech of all channels and the map back to the recording."""

    audio: npt.NDArray[np.float32]
    pieces: list[Piece]
    sample_rate: int

    @property
    def speech_seconds(self) -> float:
        return len(self.audio) / self.sample_rate

    def piece_at(self, packed_time: float) -> Piece:
        """Return the piece that contains `packed_time`, or the nearest one."""
        starts = [piece.packed_start for piece in self.pieces]
        index = bisect.bisect_right(starts, packed_time) - 1
        return self.pieces[min(max(index, 0), len(self.pieces) - 1)]

    def windows(
        self, max_seconds: float, search_seconds: float
    ) -> list[tuple[int, int]]:
        """Cut the packed audio into windows of at most `max_seconds`.

        Returns (start, end) sample ranges that cover the audio in order. Each
        cut is at the last piece boundary within the final `search_seconds` of
        the window, where the VAD's padding leaves a pause on both sides. With
        no boundary there, the cut is in the middle of the longest pause in
        that stretch. Raises ValueError unless `search_seconds` is at least
        20 ms and less than `max_seconds`.
        """
        if not 0.02 <= search_seconds < max_seconds:
            raise ValueError(
                f"Invalid window cut search of {search_seconds} s for windows of "
                f"{max_seconds} s: it must be at least 0.02 s and less than that."
            )
        total = len(self.audio)
        limit = round(max_seconds * self.sample_rate)
        search = round(search_seconds * self.sample_rate)
        boundaries = [
            round(piece.packed_start * self.sample_rate) for piece in self.pieces[1:]
        ]
        windows: list[tuple[int, int]] = []
        start = 0
        while total - start > limit:
            end = start + limit
            last = bisect.bisect_right(boundaries, end) - 1
            if last >= 0 and boundaries[last] > end - search:
                cut = boundaries[last]
            else:
                cut = self._pause_point(end - search, end)
            windows.append((start, cut))
            start = cut
        if start < total:
            windows.append((start, total))
        return windows

    def _pause_point(self, start: int, end: int) -> int:
        """Return the middle sample of the longest pause in audio[start:end].

        A pause is a run of 20 ms frames within 6 dB of the quietest frame's
        energy. Of equally long runs the last is taken.
        """
        frame = self.sample_rate // 50
        frames = (end - start) // frame
        stretch = self.audio[start : start + frames * frame].reshape(frames, frame)
        energy = np.square(stretch, dtype=np.float64).mean(axis=1)
        quiet = energy <= 4 * energy.min() + 1e-12
        best_first, best_length = 0, 0
        run_first = 0
        for index in range(frames):
            if not quiet[index]:
                run_first = index + 1
            elif index + 1 - run_first >= best_length:
                best_first, best_length = run_first, index + 1 - run_first
        return start + (best_first * frame) + (best_length * frame) // 2

    def restore(
        self, segments: Iterable[WhisperSegment]
    ) -> dict[int, list[WhisperSegment]]:
        """Split decoded segments by channel, with times in the recording.

        A segment whose words come from two channels becomes one segment per
        channel. Each word goes to the piece that contains its midpoint, so a
        word is never stretched across the gap between two pieces.
        """
        by_channel: dict[int, list[WhisperSegment]] = {}
        previous: list[Piece | None] = [None]
        for segment in segments:
            for channel, restored in self._restore_segment(segment, previous):
                by_channel.setdefault(channel, []).append(restored)
        return by_channel

    def _restore_segment(
        self, segment: WhisperSegment, previous: list[Piece | None]
    ) -> list[tuple[int, WhisperSegment]]:
        """Map one segment. `previous` contains the piece of the last word mapped."""
        if not segment.words:
            piece = self.piece_at((segment.start + segment.end) / 2)
            previous[0] = piece
            restored = dataclasses.replace(
                segment,
                start=_to_recording(piece, segment.start),
                end=_to_recording(piece, segment.end),
            )
            return [(piece.channel, restored)]
        groups: list[tuple[int, list[Word]]] = []
        for word in segment.words:
            piece = self.piece_at((word.start + word.end) / 2)
            start = word.start
            if piece != previous[0]:
                # Whisper's alignment tends to stretch the word before a pause
                # over it and start the next word late. The first word heard
                # in a span starts no later than the speech the VAD found.
                start = min(start, piece.onset)
            previous[0] = piece
            moved = dataclasses.replace(
                word,
                start=_to_recording(piece, start),
                end=_to_recording(piece, max(word.end, start)),
            )
            if not groups or groups[-1][0] != piece.channel:
                groups.append((piece.channel, []))
            groups[-1][1].append(moved)
        return [
            (
                channel,
                dataclasses.replace(
                    segment,
                    start=words[0].start,
                    end=words[-1].end,
                    text="".join(word.word for word in words),
                    words=words,
                ),
            )
            for channel, words in groups
        ]


def _to_recording(piece: Piece, packed_time: float) -> float:
    """Map a time of the packed stream to the recording, within `piece`."""
    clamped = min(max(packed_time, piece.packed_start), piece.packed_end)
    return round(piece.start + clamped - piece.packed_start, 3)


def pack_speech(
    channels: list[npt.NDArray[np.float32]],
    options: VadOptions,
    sample_rate: int,
) -> SpeechPack:
    """Find each channel's speech with Silero VAD and join it into one array."""
    arrays: list[npt.NDArray[np.float32]] = []
    pieces: list[Piece] = []
    packed_samples = 0
    pad_seconds = options.speech_pad_ms / 1000
    for channel, samples in enumerate(channels, start=1):
        if samples.size == 0:
            continue
        for span in get_speech_timestamps(samples, options, sampling_rate=sample_rate):
            start, end = int(span["start"]), int(span["end"])
            arrays.append(samples[start:end])
            packed_start = packed_samples / sample_rate
            duration = (end - start) / sample_rate
            # The VAD pads by up to speech_pad_ms, less at the recording's
            # start or between two spans close together.
            pad = min(pad_seconds, start / sample_rate, duration / 2)
            pieces.append(
                Piece(
                    channel=channel,
                    packed_start=packed_start,
                    packed_end=packed_start + duration,
                    start=start / sample_rate,
                    onset=packed_start + pad,
                )
            )
            packed_samples += end - start
    audio = np.concatenate(arrays) if arrays else np.zeros(0, dtype=np.float32)
    return SpeechPack(audio.astype(np.float32, copy=False), pieces, sample_rate)
