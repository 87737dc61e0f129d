"""Keyword trackers: phrases that managers count in call transcripts.

A Latin phrase matches case-insensitively on word boundaries, so "price"
does not match "priced", and the spaces inside it match any run of
whitespace. A phrase with a CJK character matches as a substring, because
Chinese text has no spaces between words.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from capture.errors import Conflict, InvalidInput, NotFound
from capture.models import Tracker, User
from transcripts.figures import TimedLine
from transcripts.search import CJK_CHARACTER

MAX_NAME_LENGTH = 100
MAX_PHRASES = 50
MAX_PHRASE_LENGTH = 100
_CJK = re.compile(CJK_CHARACTER)


def phrase_pattern(phrase: str) -> re.Pattern[str]:
    """Compile the pattern that finds `phrase` in transcript text."""
    words = phrase.split()
    if _CJK.search(phrase):
        return re.compile(r"\s*".join(re.escape(word) for word in words), re.I)
    body = r"\s+".join(re.escape(word) for word in words)
    return re.compile(rf"(?<!\w){body}(?!\w)", re.IGNORECASE)


@dataclass(frozen=True)
class CompiledTracker:
    id: int
    name: str
    phrases: tuple[str, ...]
    patterns: tuple[re.Pattern[str], ...] = field(repr=False)

    @classmethod
    def of(cls, tracker: Tracker) -> CompiledTracker:
        phrases = tuple(json.loads(tracker.phrases))
        return cls(
            tracker.id, tracker.name, phrases, tuple(map(phrase_pattern, phrases))
        )


@dataclass(frozen=True)
class TrackerHit:
    tracker_id: int
    tracker_name: str
    phrase: str
    speaker: str
    start_ms: int


def find_hits(
    trackers: Sequence[CompiledTracker], lines: Iterable[TimedLine]
) -> list[TrackerHit]:
    """Return every phrase occurrence in `lines`, in the order of the lines."""
    hits = []
    for line in lines:
        for tracker in trackers:
            for phrase, pattern in zip(tracker.phrases, tracker.patterns, strict=True):
                for _ in pattern.finditer(line.text):
                    hits.append(
                        TrackerHit(
                            tracker.id,
                            tracker.name,
                            phrase,
                            line.speaker,
                            line.start_ms,
                        )
                    )
    return hits


def count_by_tracker(hits: Iterable[TrackerHit]) -> dict[int, int]:
    counts: dict[int, int] = {}
    for hit in hits:
        counts[hit.tracker_id] = counts.get(hit.tracker_id, 0) + 1
    return counts


def parse_phrases(raw: str | list[object]) -> list[str]:
    """Read phrases from a list, or from text with one phrase per line or comma."""
    items = re.split(r"[\n,，、]", raw) if isinstance(raw, str) else raw
    phrases: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise InvalidInput("phrases must be strings", "phrases")
        phrase = " ".join(item.split())
        if len(phrase) > MAX_PHRASE_LENGTH:
            raise InvalidInput(
                f"phrase {phrase[:20]!r} is longer than {MAX_PHRASE_LENGTH} characters",
                "phrases",
            )
        if phrase and phrase.casefold() not in {p.casefold() for p in phrases}:
            phrases.append(phrase)
    if not phrases:
        raise InvalidInput("phrases is missing; give at least one phrase", "phrases")
    if len(phrases) > MAX_PHRASES:
        raise InvalidInput(f"phrases has more than {MAX_PHRASES} entries", "phrases")
    return phrases


def _name(raw: str) -> str:
    name = " ".join(raw.split())
    if not name:
        raise InvalidInput("name is missing", "name")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidInput(f"name is longer than {MAX_NAME_LENGTH} characters", "name")
    return name


async def list_trackers(session: AsyncSession) -> list[Tracker]:
    return list(await session.scalars(select(Tracker).order_by(Tracker.name)))


async def compiled_trackers(session: AsyncSession) -> list[CompiledTracker]:
    return [CompiledTracker.of(tracker) for tracker in await list_trackers(session)]


async def get_tracker(session: AsyncSession, tracker_id: int) -> Tracker:
    tracker = await session.get(Tracker, tracker_id)
    if tracker is None:
        raise NotFound(f"tracker {tracker_id} not found", "tracker")
    return tracker


async def delete_tracker(session: AsyncSession, tracker_id: int) -> Tracker:
    """Delete a tracker; its past hits disappear with it, since none are stored."""
    tracker = await get_tracker(session, tracker_id)
    await session.delete(tracker)
    await session.flush()
    return tracker


async def _reject_taken(session: AsyncSession, name: str, own_id: int | None) -> None:
    existing = await session.scalar(select(Tracker.id).where(Tracker.name == name))
    if existing is not None and existing != own_id:
        raise Conflict(f"a tracker named {name!r} already exists", "name")


async def save_tracker(
    session: AsyncSession,
    author: User,
    raw_name: str,
    raw_phrases: str | list[object],
    tracker_id: int | None = None,
) -> Tracker:
    """Create a tracker, or change the one with `tracker_id`."""
    name = _name(raw_name)
    phrases = parse_phrases(raw_phrases)
    await _reject_taken(session, name, tracker_id)
    if tracker_id is None:
        tracker = Tracker(created_by=author.id)
        session.add(tracker)
    else:
        tracker = await get_tracker(session, tracker_id)
    tracker.name = name
    tracker.phrases = json.dumps(phrases, ensure_ascii=False)
    await session.flush()
    return tracker
