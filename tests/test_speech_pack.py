"""Packing both channels' speech into one stream and mapping times back."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from faster_whisper.transcribe import Segment as WhisperSegment
from faster_whisper.transcribe import Word

from transcripts.speech_pack import Piece, SpeechPack

RATE = 16_000


def two_channel_pack() -> SpeechPack:
    """Channel 1 spoke at 1.0-3.0 s, channel 2 at 4.0-5.5 s of the call."""
    pieces = [
        Piece(channel=1, packed_start=0.0, packed_end=2.0, start=1.0, onset=0.4),
        Piece(channel=2, packed_start=2.0, packed_end=3.5, start=4.0, onset=2.4),
    ]
    return SpeechPack(np.zeros(int(3.5 * RATE), dtype=np.float32), pieces, RATE)


def segment(words: list[tuple[float, float, str]]) -> WhisperSegment:
    return WhisperSegment(
        id=0,
        seek=0,
        start=words[0][0],
        end=words[-1][1],
        text="".join(word for _, _, word in words),
        tokens=[],
        avg_logprob=-0.2,
        compression_ratio=1.1,
        no_speech_prob=0.0,
        words=[Word(start, end, word, 0.9) for start, end, word in words],
        temperature=0.0,
    )


def test_restore_splits_segment_by_channel() -> None:
    spanning = segment([(0.2, 0.6, " Call"), (0.7, 1.9, " me."), (2.3, 2.8, " Sure.")])

    restored = two_channel_pack().restore([spanning])

    assert sorted(restored) == [1, 2]
    assert [(s.start, s.end, s.text) for s in restored[1]] == [(1.2, 2.9, " Call me.")]
    assert [(s.start, s.end, s.text) for s in restored[2]] == [(4.3, 4.8, " Sure.")]
    assert restored[2][0].avg_logprob == -0.2


def test_restore_word_across_boundary_kept_in_piece() -> None:
    # Midpoint 1.95 s is in channel 1's piece, so the end is clamped to it.
    straddling = segment([(0.5, 1.5, " Is it"), (1.7, 2.2, " okay")])

    restored = two_channel_pack().restore([straddling])

    assert list(restored) == [1]
    # The first word also moves to the span's onset, 0.4 s in.
    assert [(w.start, w.end) for w in restored[1][0].words or []] == [
        (1.4, 2.5),
        (2.7, 3.0),
    ]


def test_restore_late_first_word_starts_at_onset() -> None:
    # Channel 2's speech begins at 2.4 s of the stream, 4.4 s of the call,
    # but its first word is aligned late, after "us." took the pause.
    late = segment([(0.5, 2.6, " us."), (2.9, 2.9, " I"), (2.9, 3.2, " will")])

    restored = two_channel_pack().restore([late])

    [spoken] = restored[2]
    assert spoken.start == 4.4
    assert [(w.start, w.end) for w in spoken.words or []] == [
        (4.4, 4.9),
        (4.9, 5.2),
    ]


def test_restore_segment_without_words() -> None:
    plain = WhisperSegment(
        id=0,
        seek=0,
        start=2.5,
        end=3.0,
        text=" Fine.",
        tokens=[],
        avg_logprob=-0.3,
        compression_ratio=1.0,
        no_speech_prob=0.0,
        words=None,
        temperature=0.0,
    )

    restored = two_channel_pack().restore([plain])

    assert [(s.start, s.end) for s in restored[2]] == [(4.5, 5.0)]


def test_piece_at_before_first_piece() -> None:
    pack = two_channel_pack()
    assert pack.piece_at(-0.5).channel == 1
    assert pack.piece_at(9.0).channel == 2


def pack_of_lengths(seconds: list[float]) -> SpeechPack:
    """Pieces of the given lengths, back to back, alternating channels."""
    pieces = []
    packed = 0.0
    for index, length in enumerate(seconds):
        start = 10.0 * index
        pieces.append(
            Piece(
                channel=index % 2 + 1,
                packed_start=packed,
                packed_end=packed + length,
                start=start,
                onset=packed,
            )
        )
        packed += length
    return SpeechPack(np.zeros(round(packed * RATE), dtype=np.float32), pieces, RATE)


def test_windows_cut_at_last_boundary() -> None:
    pack = pack_of_lengths([5.0, 5.0, 5.0, 4.0, 2.5, 6.0])

    windows = pack.windows(12.0, 4.0)

    # Boundaries at 5, 10, 15, 19 and 21.5 s: the last within 8-12 s is 10 s,
    # and the last within 18-22 s is 21.5 s.
    assert windows == [
        (0, 10 * RATE),
        (10 * RATE, round(21.5 * RATE)),
        (round(21.5 * RATE), round(27.5 * RATE)),
    ]


def test_windows_cut_long_piece_in_pause() -> None:
    pack = pack_of_lengths([3.0, 45.0, 2.0])
    pack.audio[:] = 0.1
    # Two pauses in the last 5 s of the first window: 40 ms at 24.5 s and,
    # longer, 200 ms at 26.0-26.2 s.
    pack.audio[round(24.5 * RATE) : round(24.54 * RATE)] = 0.0
    pack.audio[round(26.0 * RATE) : round(26.2 * RATE)] = 0.0

    windows = pack.windows(28.0, 5.0)

    assert windows[0] == (0, round(26.1 * RATE))
    assert windows[1][0] == windows[0][1]
    assert windows[-1][1] == len(pack.audio)


def test_windows_short_pack_one_window() -> None:
    pack = pack_of_lengths([3.0, 45.0, 2.0])

    assert pack.windows(60.0, 5.0) == [(0, 50 * RATE)]


def test_windows_cover_stream_without_gaps() -> None:
    pack = pack_of_lengths([4.3, 6.1, 2.2, 7.9, 5.5, 3.3, 9.7, 1.4])
    pack.audio[:] = np.random.default_rng(3).normal(0, 0.1, len(pack.audio))

    windows = pack.windows(12.0, 3.0)

    assert windows[0][0] == 0
    assert windows[-1][1] == len(pack.audio)
    for (_, end), (start, _) in itertools.pairwise(windows):
        assert end == start
    for start, end in windows[:-1]:
        assert 9 * RATE < end - start <= 12 * RATE


def test_windows_search_longer_than_window_rejected() -> None:
    pack = pack_of_lengths([3.0, 45.0, 2.0])

    with pytest.raises(ValueError, match="less than that"):
        pack.windows(5.0, 6.0)


def test_windows_of_empty_pack() -> None:
    assert pack_of_lengths([]).windows(28.0, 5.0) == []
