"""Full-text search over email delivered by SMTP and the inbound endpoint."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from conftest import free_port, login, make_settings, start_client
from email_helpers import (
    ANA,
    BEN,
    CAPTURE,
    HARBOR,
    NORTHWIND,
    mail_overrides,
    make_email,
    send_smtp,
    user_id,
)
from review_data import add_sms, bearer

from capture.db import Database
from capture.settings import Settings
from web.app import create_app

CHEN = "chen@demo.touchline.test"
RIVERSIDE = "admin@riverside.example"
HARBOR_PHONE = "+14155550201"
MANAGER = "mia@demo.touchline.test"
OPS = "omar@demo.touchline.test"
ADMIN = "ada@demo.touchline.test"


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(tmp_path / "data", database_url, **mail_overrides(0))


@pytest.fixture
async def mail_client(
    aiohttp_client: Any, settings: Settings, demo: None
) -> TestClient[Any, Any]:
    return await start_client(aiohttp_client, create_app(settings, run_worker=False))


@pytest.fixture
async def smtp_client(
    aiohttp_client: Any, settings: Settings, demo: None
) -> tuple[TestClient[Any, Any], int]:
    """A server with the SMTP capture listener on a free port, and that port."""
    listening = replace(settings, smtp_port=free_port())
    app = create_app(listening, run_worker=False, run_smtp=True)
    return await start_client(aiohttp_client, app), listening.smtp_port


async def deliver(
    client: TestClient[Any, Any], database: Database, message: EmailMessage
) -> dict[str, Any]:
    """POST a raw message to the `mime` inbound endpoint, as a script does."""
    headers = {**await bearer(database, ADMIN), "Content-Type": "message/rfc822"}
    response = await client.post(
        "/email/inbound/mime", data=message.as_bytes(), headers=headers
    )
    assert response.status == 200, await response.text()
    stored: dict[str, Any] = await response.json()
    return stored


def dated(message: EmailMessage, moment: datetime) -> EmailMessage:
    message.replace_header("Date", format_datetime(moment))
    return message


async def search_api(
    client: TestClient[Any, Any], headers: dict[str, str], **params: str
) -> Any:
    response = await client.get("/api/v1/search", params=params, headers=headers)
    assert response.status == 200, await response.text()
    return await response.json()


async def test_email_subject_and_body_found(
    mail_client: TestClient[Any, Any], database: Database
) -> None:
    message = make_email(
        HARBOR,
        ANA,
        "Warehouse quote",
        "Hello Ana,\n\nplease find the revised pricing below.\n\nRegards",
        message_id="<quote-1@harbor.example>",
    )
    stored = await deliver(mail_client, database, message)
    headers = await bearer(database, ANA)

    by_body = await search_api(mail_client, headers, q="revised pricing")
    by_subject = await search_api(mail_client, headers, q="warehouse")
    across = await search_api(mail_client, headers, q='warehouse "revised pricing"')
    missing = await search_api(mail_client, headers, q="invoice")

    [hit] = by_body["items"]
    customer_id = stored["customer_id"]
    activity_id = stored["activity_id"]
    assert hit["source"] == "email"
    assert hit["email_id"] == stored["email_id"]
    assert hit["activity_id"] == activity_id
    assert hit["subject"] == "Warehouse quote"
    assert hit["text"] == "Hello Ana, please find the revised pricing below. Regards"
    assert hit["customer"] == {"id": customer_id, "name": "Harbor Freight Co"}
    assert hit["rep"]["name"] == "Ana Ruiz"
    assert hit["url"] == (
        f"/customers/{customer_id}?touch={activity_id}#activity-{activity_id}"
    )
    assert hit["email_url"] == f"/emails/{stored['email_id']}"
    assert "call_sid" not in hit
    assert [item["email_id"] for item in by_subject["items"]] == [stored["email_id"]]
    assert [item["email_id"] for item in across["items"]] == [stored["email_id"]]
    assert missing["items"] == []


async def test_email_html_only_searched_as_text(
    mail_client: TestClient[Any, Any], database: Database
) -> None:
    message = make_email(HARBOR, ANA, "Budget", "")
    message.set_content(
        '<p style="color:teal">Our <b>annual</b> budget&nbsp;is fixed.</p>'
        "<div>预算已经确定</div>",
        subtype="html",
    )
    stored = await deliver(mail_client, database, message)
    headers = await bearer(database, ANA)

    words = await search_api(mail_client, headers, q="annual budget")
    chinese = await search_api(mail_client, headers, q="预算")
    markup = await search_api(mail_client, headers, q="teal")

    [hit] = words["items"]
    assert hit["email_id"] == stored["email_id"]
    assert hit["text"] == "Our annual budget is fixed. 预算已经确定"
    assert [item["email_id"] for item in chinese["items"]] == [stored["email_id"]]
    assert markup["items"] == []


async def test_email_chinese_over_smtp(
    smtp_client: tuple[TestClient[Any, Any], int], database: Database
) -> None:
    mail_client, smtp_port = smtp_client
    message = make_email(HARBOR, ANA, "报价单：第二版", "")
    message.set_content(
        "您好，附上报价。我们下周签合同。".encode("gb18030"), "text", "plain"
    )
    del message["Content-Type"]
    message["Content-Type"] = 'text/plain; charset="gb2312"'
    await asyncio.to_thread(send_smtp, smtp_port, message.as_bytes(), HARBOR, [CAPTURE])
    headers = await bearer(database, ANA)

    two = await search_api(mail_client, headers, q="合同")
    phrase = await search_api(mail_client, headers, q="签合同")
    subject = await search_api(mail_client, headers, q="第二版")
    both = await search_api(mail_client, headers, q="报价 合同")
    missing = await search_api(mail_client, headers, q="合约")

    [hit] = two["items"]
    assert hit["source"] == "email"
    assert hit["subject"] == "报价单：第二版"
    assert hit["text"] == "您好，附上报价。我们下周签合同。"
    assert [item["email_id"] for item in phrase["items"]] == [hit["email_id"]]
    assert [item["email_id"] for item in subject["items"]] == [hit["email_id"]]
    assert [item["email_id"] for item in both["items"]] == [hit["email_id"]]
    assert missing["items"] == []


async def test_email_search_respects_access(
    mail_client: TestClient[Any, Any], database: Database
) -> None:
    ana = await deliver(
        mail_client, database, make_email(HARBOR, ANA, "Renewal", "renewal terms")
    )
    chen = await deliver(
        mail_client, database, make_email(RIVERSIDE, CHEN, "Renewal", "renewal terms")
    )
    # Ben writes to Ana's customer: his own touch, on a stream he cannot open.
    ben = await deliver(
        mail_client, database, make_email(BEN, HARBOR, "Renewal", "renewal terms")
    )

    async def found(user: str) -> dict[int, Any]:
        headers = await bearer(database, user)
        result = await search_api(mail_client, headers, q="renewal")
        return {item["email_id"]: item for item in result["items"]}

    by_ana = await found(ANA)
    by_ben = await found(BEN)
    by_chen = await found(CHEN)
    by_manager = await found(MANAGER)
    by_ops = await found(OPS)
    await login(mail_client, BEN)
    page = await (await mail_client.get("/search", params={"q": "renewal"})).text()

    everyone = {ana["email_id"], chen["email_id"], ben["email_id"]}
    assert set(by_ana) == {ana["email_id"], ben["email_id"]}
    assert set(by_ben) == {ben["email_id"]}
    assert by_ben[ben["email_id"]]["url"] is None
    assert by_ben[ben["email_id"]]["email_url"] == f"/emails/{ben['email_id']}"
    assert by_ana[ben["email_id"]]["url"] is not None
    assert set(by_chen) == {chen["email_id"]}
    assert set(by_manager) == {ana["email_id"], ben["email_id"]}
    assert set(by_ops) == everyone
    assert "Harbor Freight Co" in page
    assert f'href="/customers/{ben["customer_id"]}' not in page
    assert f'href="/emails/{ben["email_id"]}"' in page


async def test_email_search_filters(
    mail_client: TestClient[Any, Any], database: Database
) -> None:
    november = datetime(2026, 11, 10, 17, 0, tzinfo=UTC)
    december = datetime(2026, 12, 2, 17, 0, tzinfo=UTC)
    early = await deliver(
        mail_client,
        database,
        dated(make_email(HARBOR, ANA, "Delivery", "delivery window"), november),
    )
    late = await deliver(
        mail_client,
        database,
        dated(make_email(NORTHWIND, BEN, "Delivery", "delivery window"), december),
    )
    await add_sms(mail_client, HARBOR_PHONE, "delivery window moved")
    headers = await bearer(database, ADMIN)
    ben_id = await user_id(database, BEN)

    emails = await search_api(mail_client, headers, q="delivery", source="email")
    sms = await search_api(mail_client, headers, q="delivery", source="sms")
    by_rep = await search_api(mail_client, headers, q="delivery", rep=str(ben_id))
    by_customer = await search_api(
        mail_client,
        headers,
        q="delivery",
        source="email",
        customer=str(early["customer_id"]),
    )
    by_date = await search_api(
        mail_client, headers, q="delivery", **{"from": "2026-12-01", "to": "2026-12-02"}
    )

    assert [i["email_id"] for i in emails["items"]] == [
        late["email_id"],
        early["email_id"],
    ]
    assert [i["source"] for i in sms["items"]] == ["sms"]
    assert [i["email_id"] for i in by_rep["items"]] == [late["email_id"]]
    assert [i["email_id"] for i in by_customer["items"]] == [early["email_id"]]
    assert [i["email_id"] for i in by_date["items"]] == [late["email_id"]]


async def test_search_page_links_email_touch(
    mail_client: TestClient[Any, Any], database: Database
) -> None:
    old = await deliver(
        mail_client,
        database,
        dated(
            make_email(HARBOR, ANA, "Samples", "the sample kit shipped"),
            datetime(2026, 1, 5, 17, 0, tzinfo=UTC),
        ),
    )
    await login(mail_client, ANA)
    for number in range(101):
        await add_sms(mail_client, HARBOR_PHONE, f"newer message {number}")
    activity_id = old["activity_id"]
    touch = f"/customers/{old['customer_id']}?touch={activity_id}"

    page = await (
        await mail_client.get("/search", params={"q": "sample kit", "source": "email"})
    ).text()
    newest = await (await mail_client.get(f"/customers/{old['customer_id']}")).text()
    stream = await (await mail_client.get(touch)).text()

    assert f'href="{touch}#activity-{activity_id}"' in page
    assert f'href="/emails/{old["email_id"]}">Samples</a>' in page
    assert 'value="email" selected' in page
    assert "the sample kit shipped" in page
    assert f'id="activity-{activity_id}"' not in newest
    assert f'<tr id="activity-{activity_id}" class="current">' in stream
