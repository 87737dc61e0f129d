"""Property-based tests of the webhook and import parsers.

Every input either parses into an event whose fields respect the limits the
database relies on, or raises InvalidInput with a message and the name of
the field at fault. No other exception may escape, because the service would
return a 5xx, and Twilio retries a 5xx with the same bad request.

`HYPOTHESIS_PROFILE=fuzz` runs 20,000 examples per test instead of 300; run
it with `--timeout 0`, because it takes minutes.
"""

from __future__ import annotations

import os
import string
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from multidict import MultiDict, MultiDictProxy

from capture import imports
from capture.errors import InvalidInput
from telephony import forms
from telephony.signature import json_fields
from telephony.webhooks import (
    MAX_BODY,
    MAX_CALL_SECONDS,
    parse_call_status,
    parse_message,
    parse_recording_status,
)

# No per-example deadline: a loaded CI machine would fail examples that are
# merely slow, and slowness is measured by the benchmarks instead.
settings.register_profile(
    "default",
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "fuzz",
    max_examples=20_000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

SID_TEXT = st.builds(
    lambda prefix, digits: prefix + digits,
    st.sampled_from(["CA", "RE", "SM", "MM", "MG", "ca", "XX", ""]),
    st.text(alphabet="0123456789abcdefABCDEFxyz", min_size=0, max_size=34),
)
# Text that looks like what Twilio sends, and text that does not.
LOOSE = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=string.digits + "+-() ", max_size=20),
    st.sampled_from(
        [
            "",
            " ",
            "+14155550111",
            "client:ana",
            "sip:ana@example.com",
            "anonymous",
            "+266696687",
            "Mon, 02 Nov 2026 16:00:00 +0000",
            "Fri, 31 Dec 9999 23:59:59 +0000",
            "-1",
            "2147483648",
            "99999999999999999999",
            "completed",
            "in-progress",
            "received",
            "delivered",
            "\u2028",
            "\x00",
        ]
    ),
    SID_TEXT,
)
CALL_FIELDS = (
    "CallSid",
    "ParentCallSid",
    "From",
    "To",
    "CallStatus",
    "Direction",
    "SequenceNumber",
    "Timestamp",
    "CallDuration",
)
RECORDING_FIELDS = (
    "RecordingSid",
    "CallSid",
    "RecordingStatus",
    "RecordingUrl",
    "RecordingDuration",
    "RecordingChannels",
    "RecordingSource",
    "RecordingStartTime",
)
MESSAGE_FIELDS = (
    "MessageSid",
    "SmsSid",
    "From",
    "To",
    "SmsStatus",
    "MessageStatus",
    "Body",
    "NumSegments",
    "NumMedia",
    "MessagingServiceSid",
)


def form_of(names: tuple[str, ...]) -> st.SearchStrategy[list[tuple[str, str]]]:
    """Forms of known and unknown fields, some repeated, as Twilio posts them."""
    name = st.one_of(st.sampled_from(names), st.text(max_size=12))
    return st.lists(st.tuples(name, LOOSE), max_size=len(names) + 4)


def as_request_form(pairs: list[tuple[str, str]]) -> Mapping[str, str]:
    return forms.fields(MultiDictProxy(MultiDict(pairs)))


def parsed_or_named(
    parse: Callable[[Mapping[str, str]], Any], pairs: list[tuple[str, str]]
) -> Any:
    """Parse, or check that the rejection names a field of the form."""
    try:
        return parse(as_request_form(pairs))
    except InvalidInput as error:
        assert error.message
        assert error.field
        return None


def bounded(value: int | None, maximum: int) -> bool:
    return value is None or 0 <= value <= maximum


@given(form_of(CALL_FIELDS))
def test_call_status_parses_or_names_field(pairs: list[tuple[str, str]]) -> None:
    event = parsed_or_named(parse_call_status, pairs)
    if event is None:
        return
    assert event.call_sid.startswith("CA")
    assert len(event.call_sid) == 34
    assert event.from_party
    assert event.to_party
    assert bounded(event.call_duration, MAX_CALL_SECONDS)
    assert 0 <= event.sequence_number <= forms.MAX_INTEGER
    assert event.occurred_at.tzinfo is not None
    assert forms.EARLIEST_YEAR <= event.occurred_at.year <= forms.LATEST_YEAR


@given(form_of(RECORDING_FIELDS))
def test_recording_status_parses_or_names_field(
    pairs: list[tuple[str, str]],
) -> None:
    event = parsed_or_named(parse_recording_status, pairs)
    if event is None:
        return
    assert event.recording_sid.startswith("RE")
    assert event.call_sid.startswith("CA")
    assert event.channels in (1, 2)
    assert bounded(event.duration_seconds, MAX_CALL_SECONDS)
    if event.status == "completed":
        assert event.media_url


@pytest.mark.parametrize(
    ("status_field", "default_status"),
    [("SmsStatus", "received"), ("MessageStatus", None)],
)
@given(pairs=form_of(MESSAGE_FIELDS))
def test_message_parses_or_names_field(
    pairs: list[tuple[str, str]], status_field: str, default_status: str | None
) -> None:
    def parse(form: Mapping[str, str]) -> Any:
        return parse_message(
            form, status_field=status_field, default_status=default_status
        )

    event = parsed_or_named(parse, pairs)
    if event is None:
        return
    assert event.message_sid[:2] in ("SM", "MM")
    assert event.body is None or len(event.body) <= MAX_BODY
    assert event.num_media >= 0
    assert forms.CONTROL.search(event.body or "") is None


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=8,
)


@given(st.one_of(st.text(max_size=80), JSON_VALUES.map(repr)))
def test_json_body_parses_or_rejects_cleanly(text: str) -> None:
    try:
        fields = json_fields(text)
    except web.HTTPBadRequest as error:
        assert error.text
        assert '"field"' in error.text
        return
    assert all(isinstance(value, str) for value in fields.values())


CSV_CELL = st.one_of(
    st.text(max_size=15),
    st.sampled_from(
        [
            "2026-03-08 02:30",
            "2026-11-01T01:30:00",
            "2026-12-04T10:00:00Z",
            "call",
            "chat",
            "inbound",
            "outbound",
            "+14155550111",
            "ana@demo.touchline.test",
            '"',
            "a,b",
            "\n",
            "=1+2",
        ]
    ),
)


@st.composite
def csv_files(draw: st.DrawFn) -> str:
    header = draw(
        st.lists(
            st.one_of(st.sampled_from(imports.COLUMNS), st.text(max_size=8)),
            min_size=1,
            max_size=len(imports.COLUMNS) + 1,
        )
    )
    rows = draw(
        st.lists(st.lists(CSV_CELL, min_size=0, max_size=len(header) + 1), max_size=4)
    )
    lines = [",".join(header)] + [",".join(row) for row in rows]
    return "\r\n".join(lines) + draw(st.sampled_from(["", "\r\n", "\n"]))


@given(csv_files())
def test_import_csv_parses_or_names_column(text: str) -> None:
    try:
        rows = imports.read_csv(text, ZoneInfo("America/New_York"), "US")
    except InvalidInput as error:
        assert error.message
        assert error.field
        return
    for row in rows:
        assert row.channel in imports.CHANNELS
        assert row.occurred_at.tzinfo is not None
        assert row.occurred_at.astimezone(UTC) < datetime(3000, 1, 1, tzinfo=UTC)
        assert len(row.summary) <= imports.MAX_SUMMARY
