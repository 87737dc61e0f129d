"""Conversation figures of dual-channel calls, from constructed transcript lines."""

from __future__ import annotations

from typing import Any

from review_data import Line, add_transcribed_call, bearer

from capture.db import Database
from capture.demo_data import CUSTOMERS, REPS
from capture.settings import Settings
from transcripts.figures import conversation_figures

LINES = [
    Line("rep", 0, 4000, "Hello, is this a good time?"),
    Line("rep", 4500, 9000, "I wanted to walk you through the offer."),
    Line("customer", 8000, 10_000, "Sorry, can I ask something? Who else buys it?"),
    Line("rep", 10_000, 12_000, "Sure."),
    Line("customer", 12_500, 20_000, "We compared three vendors last month."),
    Line("rep", 15_000, 16_000, "Right."),
]


def test_figures_from_constructed_lines() -> None:
    figures = conversation_figures(LINES)

    assert figures is not None
    assert figures.talk_ms == {"rep": 11_500, "customer": 9_500}
    assert round(figures.talk_ratio("rep"), 4) == round(11_500 / 21_000, 4)
    assert figures.questions == {"rep": 1, "customer": 2}
    # The customer starts at 8.0 s inside the rep's 4.5-9.0 s line, and the
    # rep's "Right." starts inside the customer's 12.5-20 s line.
    assert figures.interruptions == {"rep": 1, "customer": 1}
    monologue = figures.longest_monologue
    assert monologue is not None
    assert (monologue.speaker, monologue.start_ms, monologue.end_ms) == ("rep", 0, 9000)


def test_figures_overlapping_lines_count_once() -> None:
    lines = [Line("rep", 0, 5000, "a"), Line("rep", 3000, 6000, "b")]

    figures = conversation_figures(lines)

    assert figures is not None
    assert figures.talk_ms == {"rep": 6000, "customer": 0}
    assert figures.interruptions == {"rep": 0, "customer": 0}


def test_figures_mono_recording_has_none() -> None:
    assert conversation_figures([Line("mixed", 0, 1000, "hi")]) is None


async def test_figures_shown_on_review_page_and_api(
    client: Any, database: Database, settings: Settings
) -> None:
    rep, customer = REPS[0], CUSTOMERS[0]
    call_sid = await add_transcribed_call(
        client, database, settings, rep.phone, customer.phone, LINES
    )
    headers = await bearer(database, rep.email)

    response = await client.get(f"/api/v1/calls/{call_sid}/review", headers=headers)
    found = (await response.json())["figures"]

    assert found["talk_ms"] == {"rep": 11_500, "customer": 9_500}
    assert found["talk_ratio"]["rep"] == round(11_500 / 21_000, 4)
    assert found["longest_monologue"] == {
        "speaker": "rep",
        "start_ms": 0,
        "duration_ms": 9000,
    }
    assert found["questions"] == {"rep": 1, "customer": 2}
    assert found["interruptions"] == {"rep": 1, "customer": 1}
