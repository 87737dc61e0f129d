"""Keyword trackers: matching rules, definition, and counts per call and per rep."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import csrf_of, login
from review_data import Line, add_transcribed_call, bearer

from capture.db import Database
from capture.demo_data import CUSTOMERS, REPS
from capture.settings import Settings
from transcripts.trackers import parse_phrases, phrase_pattern

ANA, BEN, CHEN = REPS
HARBOR, LUMEN, NORTHWIND = CUSTOMERS[:3]
MANAGER = "mia@demo.touchline.test"
DAYS = {"from": "2026-11-01", "to": "2026-12-31"}


@pytest.mark.parametrize(
    ("phrase", "text", "count"),
    [
        ("discount", "A Discount? Yes, discount.", 2),
        ("discount", "discounts and discounted", 0),
        ("price list", "send the PRICE\nlist", 1),
        ("Acme", "acme-brand and Acme's", 2),
        ("合同", "我们下周签合同，合同很重要", 2),
        ("折扣", "能不能再打个折扣吗", 1),
        ("折扣", "打折", 0),
    ],
)
def test_phrase_pattern_cases(phrase: str, text: str, count: int) -> None:
    assert len(phrase_pattern(phrase).findall(text)) == count


def test_parse_phrases_splits_and_dedupes() -> None:
    assert parse_phrases("discount\nDiscount, 合同，价格") == [
        "discount",
        "合同",
        "价格",
    ]


async def test_trackers_counted_per_call_and_rep(
    client: Any, database: Database, settings: Settings
) -> None:
    headers = await bearer(database, MANAGER)
    created = await client.post(
        "/api/v1/trackers",
        json={"name": "Pricing", "phrases": ["discount", "price", "折扣"]},
        headers=headers,
    )
    competitor = await client.post(
        "/api/v1/trackers",
        json={"name": "Competitor", "phrases": ["Acme"]},
        headers=headers,
    )
    pricing_id = (await created.json())["id"]
    competitor_id = (await competitor.json())["id"]
    first = await add_transcribed_call(
        client,
        database,
        settings,
        ANA.phone,
        HARBOR.phone,
        [
            Line("rep", 0, 3000, "We can offer a discount on the price."),
            Line("customer", 3000, 6000, "Acme gave us a better price."),
        ],
    )
    second = await add_transcribed_call(
        client,
        database,
        settings,
        ANA.phone,
        LUMEN.phone,
        [Line("customer", 0, 3000, "可以给我们折扣吗？")],
    )
    third = await add_transcribed_call(
        client,
        database,
        settings,
        BEN.phone,
        NORTHWIND.phone,
        [Line("rep", 0, 3000, "Nothing about money today.")],
    )

    response = await client.get("/api/v1/trackers/counts", params=DAYS, headers=headers)
    counts = await response.json()

    assert created.status == 201
    by_call = {call["call_sid"]: call["counts"] for call in counts["calls"]}
    assert by_call[first] == {str(pricing_id): 3, str(competitor_id): 1}
    assert by_call[second] == {str(pricing_id): 1}
    assert by_call[third] == {}
    by_rep = {rep["rep"]: rep for rep in counts["reps"]}
    assert by_rep[ANA.name]["calls"] == 2
    assert by_rep[ANA.name]["counts"] == {str(pricing_id): 4, str(competitor_id): 1}
    assert by_rep[ANA.name]["calls_with_hits"] == {
        str(pricing_id): 2,
        str(competitor_id): 1,
    }
    assert by_rep[BEN.name]["counts"] == {}


async def test_tracker_counts_stay_in_scope(
    client: Any, database: Database, settings: Settings
) -> None:
    manager = await bearer(database, MANAGER)
    await client.post(
        "/api/v1/trackers",
        json={"name": "Contract", "phrases": ["contract"]},
        headers=manager,
    )
    line = [Line("rep", 0, 2000, "the contract is ready")]
    await add_transcribed_call(
        client, database, settings, ANA.phone, HARBOR.phone, line
    )
    await add_transcribed_call(
        client, database, settings, CHEN.phone, CUSTOMERS[4].phone, line
    )

    ana = await client.get(
        "/api/v1/trackers/counts",
        params=DAYS,
        headers=await bearer(database, ANA.email),
    )
    mia = await client.get("/api/v1/trackers/counts", params=DAYS, headers=manager)

    assert [rep["rep"] for rep in (await ana.json())["reps"]] == [ANA.name]
    assert [rep["rep"] for rep in (await mia.json())["reps"]] == [ANA.name]


async def test_tracker_definition_rules(client: Any, database: Database) -> None:
    rep = await bearer(database, ANA.email)
    manager = await bearer(database, MANAGER)

    forbidden = await client.post(
        "/api/v1/trackers", json={"name": "X", "phrases": ["y"]}, headers=rep
    )
    empty = await client.post(
        "/api/v1/trackers", json={"name": "X", "phrases": [" "]}, headers=manager
    )
    nameless = await client.post(
        "/api/v1/trackers", json={"name": "", "phrases": ["y"]}, headers=manager
    )
    await client.post(
        "/api/v1/trackers", json={"name": "Dup", "phrases": ["y"]}, headers=manager
    )
    duplicate = await client.post(
        "/api/v1/trackers", json={"name": "Dup", "phrases": ["z"]}, headers=manager
    )
    listed = await (await client.get("/api/v1/trackers", headers=rep)).json()

    assert forbidden.status == 403
    assert empty.status == 400
    assert (await empty.json())["field"] == "phrases"
    assert nameless.status == 400
    assert (await nameless.json())["field"] == "name"
    assert duplicate.status == 409
    assert [item["phrases"] for item in listed["items"]] == [["y"]]


async def test_trackers_page_form(
    client: Any, database: Database, settings: Settings
) -> None:
    token = await login(client, MANAGER)
    await add_transcribed_call(
        client,
        database,
        settings,
        BEN.phone,
        NORTHWIND.phone,
        [Line("customer", 0, 2000, "what about the 价格 and price")],
    )

    saved = await client.post(
        "/trackers",
        data={"csrf_token": token, "name": "Price", "phrases": "price\n价格"},
        allow_redirects=False,
    )
    page = await (await client.get("/trackers", params=DAYS)).text()
    bad = await client.post(
        "/trackers", data={"csrf_token": csrf_of(page), "name": "Empty", "phrases": ""}
    )

    assert saved.status == 303
    assert "Price" in page
    assert '<td data-tracker="1">2</td>' in page
    assert bad.status == 400
    assert "phrases" in await bad.text()


async def test_tracker_delete_form(client: Any, database: Database) -> None:
    manager = await bearer(database, MANAGER)
    created = await client.post(
        "/api/v1/trackers", json={"name": "Gone", "phrases": ["x"]}, headers=manager
    )
    tracker_id = (await created.json())["id"]
    token = await login(client, ANA.email)

    by_rep = await client.post(
        f"/trackers/{tracker_id}/delete",
        data={"csrf_token": token},
        allow_redirects=False,
    )
    token = await login(client, MANAGER)
    deleted = await client.post(
        f"/trackers/{tracker_id}/delete",
        data={"csrf_token": token},
        allow_redirects=False,
    )
    again = await client.post(
        f"/trackers/{tracker_id}/delete",
        data={"csrf_token": token},
        allow_redirects=False,
    )
    listed = await (await client.get("/api/v1/trackers", headers=manager)).json()

    assert by_rep.status == 403
    assert deleted.status == 303
    assert again.status == 404
    assert listed["items"] == []
