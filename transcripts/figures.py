"""Conversation figures of a dual-channel call, computed from its transcript segments.

Figures are computed on read from the stored segments, so they follow any
re-transcription without a stored copy to refresh. Only segments labelled
rep or customer count; a mono recording ("mixed") has no figures.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

SIDES = ("rep", "customer")
QUESTION_MARKS = ("?", "？")


class TimedLine(Protocol):
    speaker: str
    start_ms: int
    end_ms: int
    text: str


@dataclass(frozen=True)
class Monologue:
    speaker: str
    start_ms: int
    end_ms: int

    @property
    def duration_ms(self) -> int:
        return self.end_ms - self.start_ms


@dataclass(frozen=True)
class ConversationFigures:
    # Milliseconds of speech per side; overlapping lines of one side count once.
    talk_ms: dict[str, int]
    longest_monologue: Monologue | None
    # Question marks in each side's lines.
    questions: dict[str, int]
    # Lines of each side that start while the other side is speaking.
    interruptions: dict[str, int]

    def talk_ratio(self, side: str) -> float:
        """Return the share of all speech (0..1) spoken by `side`."""
        total = sum(self.talk_ms.values())
        return self.talk_ms[side] / total if total else 0.0


def conversation_figures(lines: Iterable[TimedLine]) -> ConversationFigures | None:
    """Compute the figures of one call, or None when no line has a side."""
    sided = sorted(
        (line for line in lines if line.speaker in SIDES),
        key=lambda line: (line.start_ms, line.end_ms),
    )
    if not sided:
        return None
    return ConversationFigures(
        talk_ms={side: _talk_ms(sided, side) for side in SIDES},
        longest_monologue=_longest_monologue(sided),
        questions={side: _questions(sided, side) for side in SIDES},
        interruptions={side: _interruptions(sided, side) for side in SIDES},
    )


def _talk_ms(lines: Sequence[TimedLine], side: str) -> int:
    total = 0
    covered_until = 0
    for line in lines:
        if line.speaker != side:
            continue
        start = max(line.start_ms, covered_until)
        if line.end_ms > start:
            total += line.end_ms - start
        covered_until = max(covered_until, line.end_ms)
    return total


def _longest_monologue(lines: Sequence[TimedLine]) -> Monologue | None:
    """Find the longest run of consecutive lines of one side.

    A run ends when a line of the other side starts, so a monologue spans
    from its first line's start to its last line's end, pauses included.
    """
    longest: Monologue | None = None
    current: Monologue | None = None
    for line in lines:
        if current is not None and current.speaker == line.speaker:
            end = max(current.end_ms, line.end_ms)
            current = Monologue(line.speaker, current.start_ms, end)
        else:
            current = Monologue(line.speaker, line.start_ms, line.end_ms)
        if longest is None or current.duration_ms > longest.duration_ms:
            longest = current
    return longest


def _questions(lines: Sequence[TimedLine], side: str) -> int:
    return sum(
        line.text.count(mark)
        for line in lines
        if line.speaker == side
        for mark in QUESTION_MARKS
    )


def _interruptions(lines: Sequence[TimedLine], side: str) -> int:
    others = [line for line in lines if line.speaker not in (side, "mixed")]
    return sum(
        1
        for line in lines
        if line.speaker == side
        and any(other.start_ms < line.start_ms < other.end_ms for other in others)
    )
