"""Full-text search over call transcripts, SMS and email, within the viewer's scope.

SQLite searches an FTS5 table with the trigram tokenizer, which matches any
substring of three characters or more in any script. Shorter terms (a
two-character Chinese word such as 合同) fall back to a scan of that
table's text. PostgreSQL searches the 'simple' text search vector, in which
each CJK character is a word of its own, so a Chinese word is found as a
phrase of its characters. Migration 0009 builds both indexes for transcripts
and SMS, and migration 0011 for email (subject, text body and the text of an
HTML-only body).

A Latin term matches a substring on SQLite and a whole word on PostgreSQL:
"contract" finds "contracts" only on SQLite.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    String,
    and_,
    cast,
    column,
    func,
    literal,
    literal_column,
    null,
    select,
    table,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession

from capture.access import (
    Viewer,
    visible_activities,
    visible_customers,
    visible_recordings,
)
from capture.call_list import recording_of_call
from capture.errors import InvalidInput
from capture.models import (
    Activity,
    Call,
    Customer,
    Email,
    Message,
    Recording,
    Transcript,
    TranscriptSegment,
    User,
)

CALL = "call"
SMS = "sms"
EMAIL = "email"
SOURCES = (CALL, SMS, EMAIL)
MAX_QUERY_LENGTH = 200
MAX_TERMS = 8
# Hiragana, katakana, CJK ideographs (extension A and unified) and
# compatibility ideographs. The migration's index uses the same class.
CJK_CHARACTER = r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]"
_CJK_GROUP = "(" + CJK_CHARACTER + ")"
# FTS5's trigram tokenizer indexes runs of three characters.
TRIGRAM = 3
# Characters of an email hit's text around its first matching term.
EXCERPT_CHARACTERS = 240
_TERM = re.compile(r'"([^"]*)"|(\S+)')
_FTS = table("search_fts", column("rowid", Integer), column("body", String))


@dataclass(frozen=True)
class SearchFilters:
    rep_id: int | None = None
    customer_id: int | None = None
    # UTC bounds: start inclusive, end exclusive.
    start: datetime | None = None
    end: datetime | None = None
    sources: tuple[str, ...] = SOURCES


@dataclass(frozen=True)
class SearchHit:
    source: str
    item_id: int
    activity_id: int
    occurred_at: datetime
    text: str
    customer_id: int | None
    customer_name: str | None
    rep_id: int | None
    rep_name: str | None
    # Transcript hits only: the call, the side that spoke, and where.
    call_sid: str | None
    speaker: str | None
    offset_ms: int | None
    # Email hits only. Their `text` is an excerpt of the body.
    subject: str | None
    # Whether the viewer may open the customer's stream. A rep also finds
    # their own touches with another rep's customer, whose stream is hidden.
    on_stream: bool

    @property
    def second(self) -> int | None:
        """The whole second of the recording where the hit's line starts."""
        return None if self.offset_ms is None else self.offset_ms // 1000


def parse_terms(query: str) -> list[str]:
    """Split a query into terms: words, or "quoted phrases"; all must match."""
    if len(query) > MAX_QUERY_LENGTH:
        raise InvalidInput(f"q is longer than {MAX_QUERY_LENGTH} characters", "q")
    terms = []
    for quoted, word in _TERM.findall(query):
        term = " ".join((quoted or word).split())
        if term:
            terms.append(term)
    if not terms:
        raise InvalidInput("q is missing; give a word or phrase to search for", "q")
    if len(terms) > MAX_TERMS:
        raise InvalidInput(f"q has more than {MAX_TERMS} terms", "q")
    return terms


def _fts_phrase(term: str) -> str:
    return '"' + term.replace('"', '""') + '"'


def _sqlite_match(
    key: ColumnElement[int], code: int, terms: list[str]
) -> ColumnElement[bool]:
    """Match rows whose FTS5 entry (rowid = id * 8 + code) contains every term."""
    conditions: list[ColumnElement[bool]] = [_FTS.c.rowid % 8 == code]
    long_terms = [term for term in terms if len(term) >= TRIGRAM]
    if long_terms:
        phrases = " AND ".join(_fts_phrase(term) for term in long_terms)
        conditions.append(literal_column("search_fts").op("MATCH")(phrases))
    for term in terms:
        if len(term) < TRIGRAM:
            # NOTE: a trigram table cannot use its index for fewer than three
            # characters, and SQLite 3.40's LIKE on such a table misses
            # two-character CJK patterns, so short terms scan the text.
            conditions.append(func.instr(func.lower(_FTS.c.body), term.lower()) > 0)
    entries = select(_FTS.c.rowid // 8).where(and_(*conditions))
    return key.in_(entries)


def _vector(column_sql: str) -> ColumnElement[str]:
    # The literal text must equal the index expression of migration 0009,
    # or PostgreSQL cannot use the GIN index.
    return literal_column(
        f"to_tsvector('simple', regexp_replace({column_sql}, '{_CJK_GROUP}', "
        "' \\1 ', 'g'))"
    )


def _spaced(term: str) -> str:
    return re.sub(_CJK_GROUP, r" \1 ", term)


def _postgresql_match(column_sql: str, terms: list[str]) -> ColumnElement[bool]:
    query: ColumnElement[Any] = func.phraseto_tsquery("simple", _spaced(terms[0]))
    for term in terms[1:]:
        query = query.op("&&")(func.phraseto_tsquery("simple", _spaced(term)))
    return _vector(column_sql).op("@@")(query)


@dataclass(frozen=True)
class _Source:
    """A kind of searchable text: its index entries and its query for hit rows."""

    name: str
    # The FTS5 rowid code of the triggers of migration 0009 or 0011.
    code: int
    # The indexed text as PostgreSQL's index expression computes it.
    column_sql: str
    key: Callable[[], Any]
    rows: Callable[[Viewer], Select[Any]]


def _transcript_rows(viewer: Viewer) -> Select[Any]:
    return (
        select(
            literal(CALL).label("source"),
            TranscriptSegment.id.label("item_id"),
            TranscriptSegment.text.label("text"),
            Call.call_sid.label("call_sid"),
            TranscriptSegment.speaker.label("speaker"),
            TranscriptSegment.start_ms.label("offset_ms"),
            cast(null(), String).label("subject"),
            *_activity_columns(viewer),
        )
        .join(Transcript, TranscriptSegment.transcript_id == Transcript.id)
        .join(Recording, Transcript.recording_id == Recording.id)
        .join(Call, recording_of_call())
        .join(Activity, Call.activity_id == Activity.id)
        .outerjoin(Customer, Activity.customer_id == Customer.id)
        .outerjoin(User, Activity.rep_id == User.id)
        .where(visible_recordings(viewer))
    )


def _message_rows(viewer: Viewer) -> Select[Any]:
    return (
        select(
            literal(SMS).label("source"),
            Message.id.label("item_id"),
            Message.body.label("text"),
            cast(null(), String).label("call_sid"),
            cast(null(), String).label("speaker"),
            cast(null(), Integer).label("offset_ms"),
            cast(null(), String).label("subject"),
            *_activity_columns(viewer),
        )
        .join(Activity, Message.activity_id == Activity.id)
        .outerjoin(Customer, Activity.customer_id == Customer.id)
        .outerjoin(User, Activity.rep_id == User.id)
        .where(visible_activities(viewer))
    )


def _email_rows(viewer: Viewer) -> Select[Any]:
    return (
        select(
            literal(EMAIL).label("source"),
            Email.id.label("item_id"),
            # `html_text` is empty whenever the text body is not.
            (Email.text_body + Email.html_text).label("text"),
            cast(null(), String).label("call_sid"),
            cast(null(), String).label("speaker"),
            cast(null(), Integer).label("offset_ms"),
            Email.subject.label("subject"),
            *_activity_columns(viewer),
        )
        .join(Activity, Email.activity_id == Activity.id)
        .outerjoin(Customer, Activity.customer_id == Customer.id)
        .outerjoin(User, Activity.rep_id == User.id)
        .where(visible_activities(viewer))
    )


def _activity_columns(viewer: Viewer) -> list[ColumnElement[Any]]:
    visible = select(Customer.id).where(visible_customers(viewer))
    return [
        Activity.id.label("activity_id"),
        Activity.occurred_at.label("occurred_at"),
        Activity.customer_id.label("customer_id"),
        Customer.name.label("customer_name"),
        Activity.rep_id.label("rep_id"),
        User.name.label("rep_name"),
        Activity.customer_id.in_(visible).label("on_stream"),
    ]


# A new searchable text is one more entry here, plus its FTS5 triggers and
# GIN index in a migration, with a rowid code of its own.
_SOURCES = {
    CALL: _Source(
        CALL,
        0,
        "transcript_segments.text",
        lambda: TranscriptSegment.id,
        _transcript_rows,
    ),
    SMS: _Source(SMS, 1, "messages.body", lambda: Message.id, _message_rows),
    EMAIL: _Source(
        EMAIL,
        2,
        # Migration 0011's index expression, with the table name.
        "emails.subject || ' ' || emails.text_body || ' ' || emails.html_text",
        lambda: Email.id,
        _email_rows,
    ),
}


def _filter_conditions(filters: SearchFilters) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if filters.rep_id is not None:
        conditions.append(Activity.rep_id == filters.rep_id)
    if filters.customer_id is not None:
        conditions.append(Activity.customer_id == filters.customer_id)
    if filters.start is not None:
        conditions.append(Activity.occurred_at >= filters.start)
    if filters.end is not None:
        conditions.append(Activity.occurred_at < filters.end)
    return conditions


async def search(
    session: AsyncSession,
    viewer: Viewer,
    query: str,
    filters: SearchFilters,
    *,
    offset: int = 0,
    limit: int = 50,
) -> list[SearchHit]:
    """Return up to `limit` + 1 hits, newest touch first, then by moment in the call.

    The extra hit shows the caller that another page follows.
    """
    terms = parse_terms(query)
    sqlite = session.get_bind().dialect.name == "sqlite"
    selects = []
    for name in filters.sources:
        source = _SOURCES[name]
        if sqlite:
            match = _sqlite_match(source.key(), source.code, terms)
        else:
            match = _postgresql_match(source.column_sql, terms)
        selects.append(source.rows(viewer).where(match, *_filter_conditions(filters)))
    combined = union_all(*selects).subquery()
    ordered = (
        select(combined)
        .order_by(
            combined.c.occurred_at.desc(),
            combined.c.activity_id.desc(),
            combined.c.offset_ms,
            combined.c.item_id,
        )
        .offset(offset)
        .limit(limit + 1)
    )
    rows = (await session.execute(ordered)).mappings().all()
    hits = []
    for row in rows:
        # SQLite returns the IN test as 0 or 1, and NULL without a customer.
        hit = SearchHit(**{**row, "on_stream": bool(row["on_stream"])})
        if hit.source == EMAIL:
            hit = replace(hit, text=excerpt(hit.text, terms))
        hits.append(hit)
    return hits


def excerpt(text: str, terms: list[str]) -> str:
    """Return about `EXCERPT_CHARACTERS` of `text` around its first matching term.

    White space is collapsed, and an ellipsis marks text cut at either end.
    A hit whose terms are all in the subject starts at the beginning.
    """
    flat = " ".join(text.split())
    folded = flat.lower()
    found = [folded.find(term.lower()) for term in terms]
    first = min((position for position in found if position >= 0), default=0)
    start = max(0, first - EXCERPT_CHARACTERS // 3)
    end = start + EXCERPT_CHARACTERS
    if end > len(flat):
        end = len(flat)
        start = max(0, end - EXCERPT_CHARACTERS)
    cut = flat[start:end]
    if start > 0:
        cut = "…" + cut
    if end < len(flat):
        cut = cut + "…"
    return cut
