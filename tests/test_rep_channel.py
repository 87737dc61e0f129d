"""Which recording channel is the rep, for REST-created and <Dial> recordings."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import make_settings

from capture.models import Call
from transcripts.jobs import speaker_labels


def call_of(direction: str) -> Call:
    return Call(call_sid="CA" + "1" * 32, twilio_direction=direction)


@pytest.mark.parametrize(
    ("source", "direction", "expected"),
    [
        # Click-to-call: recorded by the REST request; the rep is the parent.
        ("OutboundAPI", "outbound-api", "api"),
        # Inbound routing: recorded by <Dial record>; the rep was dialled.
        ("DialVerb", "inbound", "dial"),
        # The source wins over the call's direction.
        ("DialVerb", "outbound-api", "dial"),
        ("OutboundAPI", "inbound", "api"),
        # A placeholder call, whose parent leg sent nothing yet.
        ("DialVerb", "", "dial"),
        # No source: the call's direction decides.
        ("", "outbound-api", "api"),
        ("", "inbound", "dial"),
        ("RecordVerb", "inbound", "dial"),
    ],
)
@pytest.mark.parametrize(("api_channel", "dial_channel"), [(1, 2), (2, 1), (1, 1)])
def test_rep_channel_by_source(
    tmp_path: Path,
    source: str,
    direction: str,
    expected: str,
    api_channel: int,
    dial_channel: int,
) -> None:
    settings = make_settings(
        tmp_path,
        "sqlite:///unused.db",
        api_rep_channel=api_channel,
        dial_rep_channel=dial_channel,
    )
    rep = api_channel if expected == "api" else dial_channel
    customer = 2 if rep == 1 else 1

    labels = speaker_labels(call_of(direction), 2, settings, source=source)

    assert labels == {rep: "rep", customer: "customer"}


def test_rep_channel_single_channel_mixed(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, "sqlite:///unused.db")

    labels = speaker_labels(call_of("inbound"), 1, settings, source="DialVerb")

    assert labels == {1: "mixed"}


def test_rep_channel_without_call(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path, "sqlite:///unused.db", api_rep_channel=2, dial_rep_channel=1
    )

    assert speaker_labels(None, 2, settings, source="")[1] == "rep"
    assert speaker_labels(None, 2, settings, source="OutboundAPI")[2] == "rep"
