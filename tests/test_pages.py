"""The HTML pages render real data and errors."""

from __future__ import annotations

from typing import Any

from conftest import post_signed
from twilio_params import call_status, inbound_sms, new_sid

from capture.demo_data import CUSTOMERS, ORGANISATION_NUMBER, REPS

ANA = REPS[0]
HARBOR = CUSTOMERS[0]


async def test_pages_customer_search_any_format(client: Any, as_admin: str) -> None:
    response = await client.get("/customers", params={"q": "415.555.0201"})

    text = await response.text()
    assert response.status == 200
    assert HARBOR.name in text
    assert CUSTOMERS[1].name not in text


async def test_pages_customer_stream_and_call(client: Any, as_admin: str) -> None:
    sid = new_sid("CA")
    params = call_status(
        sid, "completed", 3, caller=ANA.phone, called=HARBOR.phone, duration=75
    )
    await post_signed(client, "/twilio/voice/status", params)

    stream = await (await client.get("/customers/1")).text()
    call = await (await client.get(f"/calls/{sid}")).text()

    assert f'href="/calls/{sid}"' in stream
    assert "talk time 1 min 15 sec" in stream
    assert "Talk time: 1 min 15 sec" in call
    assert "No recording." in call


async def test_pages_reps_counts(client: Any, as_admin: str) -> None:
    params = call_status(
        new_sid("CA"),
        "completed",
        3,
        caller=ANA.phone,
        called=HARBOR.phone,
        duration=40,
    )
    await post_signed(client, "/twilio/voice/status", params)

    text = await (
        await client.get(
            "/reports/reps", params={"from": "2026-11-01", "to": "2026-12-31"}
        )
    ).text()

    row = text.split(ANA.name, 1)[1].split("</tr>", 1)[0]
    assert "<td>1</td><td>1</td><td>40 sec</td>" in row


async def test_pages_not_found_is_a_page(client: Any, as_admin: str) -> None:
    response = await client.get("/customers/999")

    assert response.status == 404
    assert response.content_type == "text/html"
    assert "customer 999 not found" in await response.text()


async def test_pages_escape_message_bodies(client: Any, as_admin: str) -> None:
    body = "<script>alert(1)</script>"
    params = inbound_sms(new_sid("SM"), HARBOR.phone, ORGANISATION_NUMBER, body)
    await post_signed(client, "/twilio/sms", params)

    text = await (await client.get("/customers/1")).text()

    assert body not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text


async def test_pages_partial_number_search(client: Any, as_admin: str) -> None:
    response = await client.get("/customers", params={"q": "555-0201"})

    text = await response.text()
    assert HARBOR.name in text
    assert CUSTOMERS[1].name not in text


async def test_pages_partial_email_search(client: Any, as_admin: str) -> None:
    response = await client.get("/customers", params={"q": "ops@harbor"})

    text = await response.text()
    assert HARBOR.name in text
    assert CUSTOMERS[1].name not in text
