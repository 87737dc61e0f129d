"""Checks that drop text Whisper invents instead of hearing.

Whisper was trained on subtitled video, so on silence, tones or music it can
emit closing credits ("Thanks for watching!"), loop on one phrase, or decode
a steady tone as words. The checks here run on each decoded segment after
faster-whisper's own thresholds.
"""

from __future__ import annotations

import re
import unicodedata
import zlib

import numpy as np
import numpy.typing as npt

# Phrases Whisper is known to produce on silence and music, compared after
# normalise(). A segment is dropped when its whole text is one of these.
# "Thank you." is also invented on silence but is common in real calls, so
# it is left to the VAD and faster-whisper's no-speech check.
INVENTED_PHRASES = frozenset(
    {
        "thanks for watching",
        "thank you for watching",
        "thank you so much for watching",
        "thanks for watching and see you next time",
        "please subscribe",
        "like and subscribe",
        "please like and subscribe",
        "谢谢观看",
        "请不吝点赞 订阅 转发 打赏支持明镜与点点栏目",
    }
)
# Prefixes of credit lines that continue with a name, such as
# "Subtitles by the Amara.org community".
INVENTED_PREFIXES = (
    "subtitles by",
    "subtitled by",
    "transcribed by",
    "translated by",
    "captions by",
    "字幕",
    "请不吝点赞",
)
# A segment whose text zlib-compresses better than this repeats itself.
# 2.4 is the default threshold of openai-whisper and of faster-whisper 1.2.1
# for a whole decoding window.
MAX_COMPRESSION_RATIO = 2.4
# A word or phrase of up to MAX_REPEATED_GRAM tokens that repeats this many
# times in a row is a decoding loop, not speech.
MIN_LOOP_REPEATS = 4
MAX_REPEATED_GRAM = 4
# The 32 ms spectra of a tone or a held chord 128 ms apart are nearly
# identical, while speech has moved to another sound by then. Measured on
# six espeak-ng voices (90 to 220 words per minute, English and Mandarin) at
# 8 kHz: speech had a median similarity of 0.41 to 0.59, a sox sine tone 1.0
# and sox triangle-wave chords with tremolo 0.97.
TONAL_SIMILARITY = 0.9
_FRAME = 512
_HOP = 256
_LAG = 8  # frames compared, in hops: 8 x 16 ms = 128 ms
# Frames quieter than this share of the loudest frame are pauses, whose
# line hiss looks alike from frame to frame, so they are left out.
_LOUD_SHARE = 0.05
_CJK = re.compile(r"[\u3000-\u9fff\uf900-\ufaff]")


def normalise(text: str) -> str:
    """Lower-case `text`, drop punctuation and collapse spaces."""
    folded = unicodedata.normalize("NFKC", text).lower()
    spaced = "".join(
        char if not unicodedata.category(char).startswith("P") else " "
        for char in folded
    )
    return " ".join(spaced.split())


def is_invented_phrase(text: str) -> bool:
    """True if `text` is a credit or sign-off line Whisper emits on silence."""
    plain = normalise(text)
    return plain in INVENTED_PHRASES or plain.startswith(INVENTED_PREFIXES)


def compression_ratio(text: str) -> float:
    """Return the UTF-8 length of `text` over its zlib-compressed length."""
    data = text.encode("utf-8")
    if not data:
        return 0.0
    return len(data) / len(zlib.compress(data))


def _tokens(text: str) -> list[str]:
    """Split into words, and Chinese or Japanese text into characters."""
    plain = normalise(text)
    if _CJK.search(plain):
        return [char for char in plain if not char.isspace()]
    return plain.split()


def longest_loop(text: str) -> int:
    """Return how many times in a row the most repeated short phrase occurs."""
    tokens = _tokens(text)
    longest = 1
    for size in range(1, MAX_REPEATED_GRAM + 1):
        for start in range(len(tokens) - size):
            gram = tokens[start : start + size]
            repeats = 1
            position = start + size
            while tokens[position : position + size] == gram:
                repeats += 1
                position += size
            longest = max(longest, repeats)
    return longest


def is_repetitive(text: str) -> bool:
    """True if `text` loops on one phrase or compresses like a repeated one."""
    return (
        compression_ratio(text) > MAX_COMPRESSION_RATIO
        or longest_loop(text) >= MIN_LOOP_REPEATS
    )


def spectral_similarity(samples: npt.NDArray[np.float32]) -> float:
    """Return the median cosine similarity of magnitude spectra 128 ms apart.

    `samples` is mono audio at 16 kHz. Returns 0.0 for audio too short to
    compare, which is then never taken for a tone.
    """
    count = 1 + (len(samples) - _FRAME) // _HOP if len(samples) >= _FRAME else 0
    if count <= _LAG:
        return 0.0
    window = np.hanning(_FRAME).astype(np.float32)
    frames = np.stack(
        [samples[i * _HOP : i * _HOP + _FRAME] * window for i in range(count)]
    )
    spectra = np.abs(np.fft.rfft(frames, axis=1))
    norms = np.linalg.norm(spectra, axis=1)
    loud = norms > _LOUD_SHARE * float(norms.max())
    if not loud.any() or float(norms.max()) == 0.0:
        return 0.0
    unit = spectra / np.maximum(norms, 1e-12)[:, np.newaxis]
    both_loud = loud[_LAG:] & loud[:-_LAG]
    if not both_loud.any():
        return 0.0
    similarity = np.sum(unit[_LAG:] * unit[:-_LAG], axis=1)[both_loud]
    return float(np.median(similarity))


def is_tonal(samples: npt.NDArray[np.float32]) -> bool:
    """True if `samples` hold a steady tone or chord rather than speech."""
    return spectral_similarity(samples) >= TONAL_SIMILARITY
