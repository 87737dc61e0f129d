"""Importing touches from other channels: chat exports, meetings, old call logs.

A CSV file with a header row, one touch a row; docs/imports.md lists the
columns.

Every row is checked before anything is written, and a file with a bad row
is rejected whole with the row and column named. A row whose `source` and
`external_id` were imported before is skipped, so a file can be imported
again after an error or with new rows appended. A phone number no customer
has makes a lead, as a call from it would. An unknown email address, or a
number several customers share, leaves the touch unmatched.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from capture import rollups
from capture.errors import InvalidInput
from capture.identity import Directory, PartyKind, RepRef, parse_party
from capture.models import Activity, ContactPoint, Customer, User, table_of, utcnow
from capture.sql import insert_rows
from capture.stream import PlanIndex

CHANNELS = ("chat", "meeting", "note", "call", "sms", "email")
DIRECTIONS = ("inbound", "outbound")
COLUMNS = (
    "external_id",
    "source",
    "occurred_at",
    "channel",
    "direction",
    "rep_email",
    "customer_id",
    "customer_phone",
    "customer_email",
    "summary",
)
REQUIRED = ("external_id", "occurred_at", "channel")
MAX_ROWS = 100_000
MAX_SUMMARY = 4000
SOURCE = re.compile(r"[a-z0-9][a-z0-9_.-]{0,31}")
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
ACTIVITIES = table_of(Activity)


@dataclass(frozen=True)
class ImportRow:
    line: int
    external_key: str
    occurred_at: datetime
    channel: str
    direction: str
    rep_email: str | None
    customer_id: int | None
    customer_phone: str | None
    customer_email: str | None
    summary: str


@dataclass(frozen=True)
class ImportResult:
    rows: int
    created: int
    skipped: int
    unmatched: int


def read_csv(text: str, zone: tzinfo, default_region: str) -> list[ImportRow]:
    """Parse and check every row; raise InvalidInput naming the line and column."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff"), newline=""), strict=True)
    try:
        header = reader.fieldnames or []
    except csv.Error as error:
        raise InvalidInput(f"line 1: {error}", "file") from None
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        message = f"column {repeated[0]!r} repeats in the header"
        raise InvalidInput(message, repeated[0] or "header")
    unknown = [name for name in header if name not in COLUMNS]
    if unknown:
        # A blank column name is named as the header itself.
        message = f"unknown column {unknown[0]!r} in the header"
        raise InvalidInput(message, unknown[0] or "header")
    for name in REQUIRED:
        if name not in header:
            raise InvalidInput(f"the header has no {name} column", name)
    rows: list[ImportRow] = []
    seen: dict[str, int] = {}
    for record in _records(reader):
        line = reader.line_num
        if len(rows) >= MAX_ROWS:
            raise InvalidInput(f"the file has more than {MAX_ROWS} rows", "file")
        if None in record:
            raise InvalidInput(f"line {line}: more cells than columns", "file")
        row = _row(record, line, zone, default_region)
        if row.external_key in seen:
            raise InvalidInput(
                f"line {line}: external_id repeats line {seen[row.external_key]}",
                "external_id",
            )
        seen[row.external_key] = line
        rows.append(row)
    return rows


def _records(reader: csv.DictReader[str]) -> Iterator[dict[str, str]]:
    """Yield the reader's rows, naming the line of a quoting error."""
    while True:
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            raise InvalidInput(f"line {reader.line_num}: {error}", "file") from None
        yield record


def _row(
    record: dict[str, str], line: int, zone: tzinfo, default_region: str
) -> ImportRow:
    def cell(name: str, max_length: int = 320) -> str:
        value = (record.get(name) or "").strip()
        if CONTROL.search(value):
            raise InvalidInput(f"line {line}: {name} contains control characters", name)
        if len(value) > max_length:
            raise InvalidInput(
                f"line {line}: {name} is longer than {max_length} characters", name
            )
        return value

    def fail(name: str, problem: str) -> InvalidInput:
        return InvalidInput(f"line {line}: {name} {problem}", name)

    external_id = cell("external_id", 200)
    if not external_id:
        raise fail("external_id", "is missing")
    source = cell("source", 32).lower() or "import"
    if not SOURCE.fullmatch(source):
        raise fail("source", f"{source!r} is not letters, digits, '.', '_' or '-'")
    channel = cell("channel", 16).lower()
    if channel not in CHANNELS:
        raise fail("channel", f"{channel!r} is not one of {', '.join(CHANNELS)}")
    direction = cell("direction", 16).lower() or "outbound"
    if direction not in DIRECTIONS:
        raise fail("direction", f"{direction!r} is not inbound or outbound")
    customer_id = None
    if raw_id := cell("customer_id", 12):
        if not raw_id.isdigit() or not 0 < int(raw_id) <= 2**31 - 1:
            raise fail("customer_id", f"{raw_id!r} is not a customer id")
        customer_id = int(raw_id)
    phone = None
    if raw_phone := cell("customer_phone", 40):
        party = parse_party(raw_phone, default_region)
        if party.kind is not PartyKind.NUMBER:
            raise fail("customer_phone", f"{raw_phone!r} is not a phone number")
        phone = party.value
    email = cell("customer_email").lower() or None
    if email is not None and "@" not in email:
        raise fail("customer_email", f"{email!r} is not an email address")
    return ImportRow(
        line=line,
        external_key=f"{source}:{external_id}",
        occurred_at=_moment(cell("occurred_at", 40), zone, line),
        channel=channel,
        direction=direction,
        rep_email=cell("rep_email").lower() or None,
        customer_id=customer_id,
        customer_phone=phone,
        customer_email=email,
        summary=cell("summary", MAX_SUMMARY),
    )


def _moment(raw: str, zone: tzinfo, line: int) -> datetime:
    if not raw:
        raise InvalidInput(f"line {line}: occurred_at is missing", "occurred_at")
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise InvalidInput(
            f"line {line}: occurred_at {raw!r} is not ISO 8601", "occurred_at"
        ) from None
    if moment.tzinfo is None:
        moment = _local(moment, zone, raw, line)
    if not 1900 <= moment.year <= 2999:
        raise InvalidInput(
            f"line {line}: occurred_at {raw!r} is outside 1900..2999", "occurred_at"
        )
    return moment


def _local(wall: datetime, zone: tzinfo, raw: str, line: int) -> datetime:
    """Attach `zone`, rejecting a wall time that a clock change skips or repeats."""
    earlier = wall.replace(tzinfo=zone, fold=0)
    later = wall.replace(tzinfo=zone, fold=1)
    if earlier.utcoffset() == later.utcoffset():
        return earlier
    round_trip = earlier.astimezone(UTC).astimezone(zone).replace(tzinfo=None)
    problem = "does not exist" if round_trip != wall else "happens twice"
    raise InvalidInput(
        f"line {line}: occurred_at {raw!r} {problem} in {zone} because the clocks "
        "change then; give the UTC offset, as in 2026-11-01T01:30:00-04:00",
        "occurred_at",
    )


def import_rows(session: Session, rows: list[ImportRow]) -> ImportResult:
    """Store the rows not imported before, in one transaction (the caller's)."""
    keys = [f"import:{row.external_key}" for row in rows]
    known = _known_keys(session, keys)
    new = [row for row in rows if f"import:{row.external_key}" not in known]
    reps = _reps(session, new)
    customers = _customers(session, new, reps)
    earliest = min((row.occurred_at for row in new), default=utcnow())
    plans = PlanIndex.load(session, {c for c in customers.values() if c}, earliest)
    now = utcnow()
    records = []
    for row in new:
        customer_id = customers[row.line]
        rep = reps.get(row.rep_email) if row.rep_email else None
        records.append(
            {
                "external_key": f"import:{row.external_key}",
                "channel": row.channel,
                "direction": row.direction,
                "occurred_at": row.occurred_at,
                "customer_id": customer_id,
                "rep_id": rep.id if rep else None,
                "plan_id": plans.open_at(customer_id, row.occurred_at),
                "summary": row.summary,
                "automatic": False,
                "created_at": now,
            }
        )
    created = insert_rows(
        session, ACTIVITIES, records, returning=("id",), ignore_conflicts=True
    )
    rollups.mark_new(session, [activity_id for (activity_id,) in created])
    return ImportResult(
        rows=len(rows),
        created=len(created),
        skipped=len(rows) - len(created),
        unmatched=sum(1 for row in new if customers[row.line] is None),
    )


def check_references(session: Session, rows: list[ImportRow]) -> None:
    """Raise InvalidInput for a rep or customer id that does not exist.

    The command line imports in several transactions, so it checks every
    row's references before the first one commits.
    """
    _reps(session, rows)
    _check_customer_ids(session, rows)


def _known_keys(session: Session, keys: list[str]) -> set[str]:
    known: set[str] = set()
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        found = session.scalars(
            select(Activity.external_key).where(Activity.external_key.in_(chunk))
        )
        known.update(found)
    return known


def _reps(session: Session, rows: list[ImportRow]) -> dict[str, RepRef]:
    emails = {row.rep_email for row in rows if row.rep_email}
    if not emails:
        return {}
    found = session.execute(
        select(User.id, User.email).where(func.lower(User.email).in_(emails))
    )
    reps = {email.lower(): RepRef(user_id, email) for user_id, email in found}
    for row in rows:
        if row.rep_email and row.rep_email not in reps:
            raise InvalidInput(
                f"line {row.line}: rep_email {row.rep_email!r} is no user", "rep_email"
            )
    return reps


def _customers(
    session: Session, rows: Iterable[ImportRow], reps: dict[str, RepRef]
) -> dict[int, int | None]:
    """Find the customer of each row, by line: by id, then phone, then email."""
    rows = list(rows)
    _check_customer_ids(session, rows)
    phones = [
        parse_party(row.customer_phone, "US")
        for row in rows
        if row.customer_id is None and row.customer_phone
    ]
    directory = Directory.load(session, phones)
    emails = _customers_by_email(
        session, {row.customer_email for row in rows if row.customer_email}
    )
    found: dict[int, int | None] = {}
    for row in rows:
        if row.customer_id is not None:
            found[row.line] = row.customer_id
        elif row.customer_phone:
            rep = reps.get(row.rep_email) if row.rep_email else None
            party = parse_party(row.customer_phone, "US")
            customer = directory.customer_for(session, party, rep)
            found[row.line] = customer.id if customer else None
        elif row.customer_email:
            found[row.line] = emails.get(row.customer_email)
        else:
            found[row.line] = None
    return found


def _check_customer_ids(session: Session, rows: list[ImportRow]) -> None:
    ids = {row.customer_id for row in rows if row.customer_id is not None}
    existing = set(session.scalars(select(Customer.id).where(Customer.id.in_(ids))))
    for row in rows:
        if row.customer_id is not None and row.customer_id not in existing:
            raise InvalidInput(
                f"line {row.line}: customer_id {row.customer_id} not found",
                "customer_id",
            )


def _customers_by_email(session: Session, emails: set[str]) -> dict[str, int | None]:
    if not emails:
        return {}
    rows = session.execute(
        select(ContactPoint.value, ContactPoint.customer_id).where(
            ContactPoint.kind == "email", ContactPoint.value.in_(emails)
        )
    )
    owners: dict[str, set[int]] = {}
    for value, customer_id in rows:
        owners.setdefault(value, set()).add(customer_id)
    # An address two customers share matches neither, as with phone numbers.
    return {
        value: ids.pop() if len(ids) == 1 else None for value, ids in owners.items()
    }
