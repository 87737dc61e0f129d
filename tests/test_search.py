"""Full-text search over transcripts and SMS, with filters and visibility."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from conftest import login
from review_data import Line, add_sms, add_transcribed_call, bearer, move_call

from capture.db import Database
from capture.demo_data import CUSTOMERS, REPS
from capture.settings import Settings

ANA, BEN, CHEN = REPS
HARBOR, LUMEN, NORTHWIND, QUARRY, RIVERSIDE, SUMMIT = CUSTOMERS
MANAGER = "mia@demo.touchline.test"
OPS = "omar@demo.touchline.test"
ADMIN = "ada@demo.touchline.test"


async def search_api(client: Any, headers: dict[str, str], **params: str) -> Any:
    response = await client.get("/api/v1/search", params=params, headers=headers)
    assert response.status == 200, await response.text()
    return await response.json()


async def test_search_transcript_hit_links_moment(
    client: Any, database: Database, settings: Settings
) -> None:
    lines = [
        Line("rep", 0, 4000, "Thanks for taking the call."),
        Line("customer", 12_400, 16_000, "We can sign the contract on Friday."),
    ]
    call_sid = await add_transcribed_call(
        client, database, settings, ANA.phone, HARBOR.phone, lines
    )

    found = await search_api(client, await bearer(database, ANA.email), q="contract")

    assert len(found["items"]) == 1
    hit = found["items"][0]
    assert hit["source"] == "call"
    assert hit["call_sid"] == call_sid
    assert hit["second"] == 12
    assert hit["speaker"] == "customer"
    assert hit["url"] == f"/calls/{call_sid}?t=12#t=12"
    assert hit["customer"]["name"] == HARBOR.name
    assert found["next"] is None


async def test_search_chinese_two_characters(
    client: Any, database: Database, settings: Settings
) -> None:
    lines = [Line("customer", 3000, 6000, "我们下周签合同，价格还要再谈。")]
    call_sid = await add_transcribed_call(
        client, database, settings, ANA.phone, HARBOR.phone, lines
    )
    await add_sms(client, HARBOR.phone, "合同已经发给您了")
    headers = await bearer(database, ANA.email)

    both = await search_api(client, headers, q="合同")
    phrase = await search_api(client, headers, q="签合同")
    missing = await search_api(client, headers, q="合约")

    assert {item["source"] for item in both["items"]} == {"call", "sms"}
    assert [item["call_sid"] for item in phrase["items"]] == [call_sid]
    assert missing["items"] == []


async def test_search_respects_visibility(
    client: Any, database: Database, settings: Settings
) -> None:
    line = [Line("rep", 1000, 3000, "our discount ends soon")]
    ana_call = await add_transcribed_call(
        client, database, settings, ANA.phone, HARBOR.phone, line
    )
    ben_call = await add_transcribed_call(
        client, database, settings, BEN.phone, NORTHWIND.phone, line
    )
    chen_call = await add_transcribed_call(
        client, database, settings, CHEN.phone, RIVERSIDE.phone, line
    )
    await add_sms(client, RIVERSIDE.phone, "is the discount still on?")

    async def calls_seen(email: str) -> set[str]:
        found = await search_api(client, await bearer(database, email), q="discount")
        return {item.get("call_sid") or item["source"] for item in found["items"]}

    assert await calls_seen(ANA.email) == {ana_call}
    assert await calls_seen(MANAGER) == {ana_call, ben_call}
    assert await calls_seen(ADMIN) == {ana_call, ben_call, chen_call, "sms"}
    assert await calls_seen(OPS) == {"sms"}


async def test_search_filters(
    client: Any, database: Database, settings: Settings
) -> None:
    line = [Line("customer", 2000, 4000, "send the pricing sheet")]
    early = await add_transcribed_call(
        client, database, settings, ANA.phone, HARBOR.phone, line
    )
    late = await add_transcribed_call(
        client, database, settings, BEN.phone, NORTHWIND.phone, line
    )
    await move_call(database, early, datetime(2026, 10, 5, 18, 0, tzinfo=UTC))
    await move_call(database, late, datetime(2026, 11, 20, 18, 0, tzinfo=UTC))
    await add_sms(client, NORTHWIND.phone, "pricing please")
    headers = await bearer(database, ADMIN)
    ana_id = await _user_id(client, headers, early)

    by_date = await search_api(
        client, headers, q="pricing", source="call", **{"from": "2026-11-01"}
    )
    by_rep = await search_api(client, headers, q="pricing", rep=str(ana_id))
    sms_only = await search_api(client, headers, q="pricing", source="sms")
    before = await search_api(client, headers, q="pricing", to="2026-10-31")

    assert [item["call_sid"] for item in by_date["items"]] == [late]
    assert [item["call_sid"] for item in by_rep["items"]] == [early]
    assert [item["source"] for item in sms_only["items"]] == ["sms"]
    assert [item["call_sid"] for item in before["items"]] == [early]


async def _user_id(client: Any, headers: dict[str, str], call_sid: str) -> int:
    found = await search_api(client, headers, q="pricing", source="call")
    rep = next(i["rep"] for i in found["items"] if i["call_sid"] == call_sid)
    return int(rep["id"])


async def test_search_customer_filter_and_paging(
    client: Any, database: Database, settings: Settings
) -> None:
    lines = [
        Line("rep", n * 1000, n * 1000 + 900, f"contract point {n}") for n in range(3)
    ]
    await add_transcribed_call(
        client, database, settings, ANA.phone, HARBOR.phone, lines
    )
    await add_transcribed_call(
        client, database, settings, ANA.phone, LUMEN.phone, lines
    )
    headers = await bearer(database, ANA.email)

    first = await search_api(client, headers, q="contract", limit="4")
    second = await search_api(
        client, headers, q="contract", limit="4", cursor=first["next"]
    )
    harbor_id = next(
        i["customer"]["id"]
        for i in first["items"]
        if i["customer"]["name"] == HARBOR.name
    )
    harbor = await search_api(client, headers, q="contract", customer=str(harbor_id))

    assert len(first["items"]) == 4
    assert len(second["items"]) == 2
    assert second["next"] is None
    assert len(harbor["items"]) == 3
    assert {i["customer"]["name"] for i in harbor["items"]} == {HARBOR.name}


async def test_search_bad_input_names_field(client: Any, database: Database) -> None:
    headers = await bearer(database, ANA.email)
    cases = {
        "q": {"q": " "},
        "source": {"q": "x", "source": "fax"},
        "from": {"q": "x", "from": "2026-13-01"},
        "rep": {"q": "x", "rep": "abc"},
        "to": {"q": "x", "from": "2026-11-02", "to": "2026-11-01"},
    }
    for field, params in cases.items():
        response = await client.get("/api/v1/search", params=params, headers=headers)
        body = await response.json()
        assert response.status == 400, field
        assert body["field"] == field


async def test_search_page_links_moment(
    client: Any, database: Database, settings: Settings
) -> None:
    lines = [Line("customer", 65_000, 68_000, "who is your competitor here")]
    call_sid = await add_transcribed_call(
        client, database, settings, ANA.phone, HARBOR.phone, lines
    )
    await login(client, ANA.email)

    page = await (await client.get("/search", params={"q": "competitor"})).text()
    review = await (await client.get(f"/calls/{call_sid}?t=65")).text()

    assert f'href="/calls/{call_sid}?t=65#t=65"' in page
    assert "1:05" in page
    assert f">{ANA.name}</option>" in page
    assert 'class="customer current"' in review
    assert '.wav#t=65"' in review
