"""`POST /email/inbound/{provider}` with real provider bodies, on both databases."""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from conftest import login, make_settings, start_client
from email_helpers import (
    ANA,
    HARBOR,
    MAILGUN_KEY,
    MAX_BYTES,
    WEBHOOK_PASSWORD,
    mail_overrides,
    make_email,
    stored_emails,
)

from capture.accounts import create_token
from capture.db import Database, transaction
from capture.settings import Settings
from web.app import create_app


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    overrides = {**mail_overrides(0), "smtp_port": 0}
    return make_settings(tmp_path / "data", database_url, **overrides)


@pytest.fixture
async def mail_client(
    aiohttp_client: Any, settings: Settings, demo: None
) -> TestClient[Any, Any]:
    return await start_client(aiohttp_client, create_app(settings, run_worker=False))


def basic(password: str = WEBHOOK_PASSWORD) -> dict[str, str]:
    token = base64.b64encode(f"inbound:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def mailgun_signature(key: str = MAILGUN_KEY) -> dict[str, str]:
    timestamp, token = str(int(time.time())), "a" * 50
    signature = hmac.new(
        key.encode(), (timestamp + token).encode(), hashlib.sha256
    ).hexdigest()
    return {"timestamp": timestamp, "token": token, "signature": signature}


async def test_sendgrid_parsed_with_charsets(
    mail_client: TestClient[Any, Any], database: Database
) -> None:
    form = aiohttp.FormData()
    form.add_field(
        "headers",
        "From: =?UTF-8?B?5byg5LiJ?= <ops@harbor.example>\n"
        "To: ana@demo.touchline.test\n"
        "Subject: =?UTF-8?B?5oql5Lu35Y2V?=\n"
        "Message-ID: <sg1@harbor.example>\n"
        "Date: Tue, 01 Dec 2026 10:00:00 +0800\n",
    )
    form.add_field("text", "价格如下", content_type="text/plain; charset=gb2312")
    form.add_field("html", "<p>价格如下</p>")
    form.add_field("charsets", json.dumps({"text": "gb2312", "html": "UTF-8"}))
    form.add_field(
        "attachment-info", json.dumps({"attachment1": {"filename": "报价.xlsx"}})
    )
    form.add_field(
        "attachment1",
        b"PK\x03\x04",
        filename="file1",
        content_type="application/vnd.ms-excel",
    )

    response = await mail_client.post(
        "/email/inbound/sendgrid", data=form, headers=basic()
    )

    assert response.status == 200, await response.text()
    [email] = await stored_emails(database)
    assert email.subject == "报价单"
    assert email.from_name == "张三"
    assert email.text_body.strip() == "价格如下"
    assert email.source == "sendgrid"
    assert [a.filename for a in email.attachments] == ["报价.xlsx"]
    assert email.activity.customer is not None
    assert email.activity.customer.name == "Harbor Freight Co"


async def test_sendgrid_raw_and_duplicate(
    mail_client: TestClient[Any, Any], database: Database
) -> None:
    raw = make_email(HARBOR, ANA, "Raw mode", "Hello", message_id="<raw@h.test>")

    statuses = []
    for _ in range(2):
        form = aiohttp.FormData({"email": raw.as_string()})
        response = await mail_client.post(
            "/email/inbound/sendgrid", data=form, headers=basic()
        )
        statuses.append((response.status, (await response.json())["status"]))

    assert statuses == [(200, "created"), (200, "duplicate")]
    assert len(await stored_emails(database)) == 1


async def test_sendgrid_wrong_password(
    mail_client: TestClient[Any, Any], database: Database
) -> None:
    form = aiohttp.FormData({"email": make_email(HARBOR, ANA, "x", "y").as_string()})

    response = await mail_client.post(
        "/email/inbound/sendgrid", data=form, headers=basic("wrong")
    )

    assert response.status == 401
    assert (await response.json())["field"] == "Authorization"
    assert await stored_emails(database) == []


async def test_mailgun_signed_fields(
    mail_client: TestClient[Any, Any], database: Database
) -> None:
    headers = [["Message-Id", "<mg1@harbor.example>"], ["In-Reply-To", "<x@y>"]]
    form = aiohttp.FormData(
        {
            **mailgun_signature(),
            "from": "Harbor Ops <ops@harbor.example>",
            "To": ANA,
            "subject": "Mailgun route",
            "body-plain": "Plain part",
            "body-html": "<b>HTML part</b>",
            "message-headers": json.dumps(headers),
            "attachment-count": "1",
        }
    )
    form.add_field(
        "attachment-1",
        b"%PDF-1.4",
        filename="quote.pdf",
        content_type="application/pdf",
    )

    response = await mail_client.post("/email/inbound/mailgun", data=form)

    assert response.status == 200, await response.text()
    [email] = await stored_emails(database)
    assert email.message_id == "mg1@harbor.example"
    assert email.text_body.strip() == "Plain part"
    assert email.html_body.strip() == "<b>HTML part</b>"
    assert [a.filename for a in email.attachments] == ["quote.pdf"]


async def test_mailgun_body_mime(
    mail_client: TestClient[Any, Any], database: Database
) -> None:
    raw = make_email(HARBOR, ANA, "MIME route", "Body", message_id="<mg2@h.test>")
    form = aiohttp.FormData({**mailgun_signature(), "body-mime": raw.as_string()})

    response = await mail_client.post("/email/inbound/mailgun", data=form)

    assert response.status == 200, await response.text()
    assert [e.subject for e in await stored_emails(database)] == ["MIME route"]


async def test_mailgun_bad_signature_406(
    mail_client: TestClient[Any, Any], database: Database
) -> None:
    raw = make_email(HARBOR, ANA, "Forged", "Body")
    signed = mailgun_signature("not-the-key")
    stale = {**mailgun_signature(), "timestamp": "1000000000"}

    responses = []
    for fields in (signed, stale, {}):
        form = aiohttp.FormData({**fields, "body-mime": raw.as_string()})
        responses.append(await mail_client.post("/email/inbound/mailgun", data=form))

    assert [r.status for r in responses] == [406, 406, 406]
    assert (await responses[0].json())["field"] == "signature"
    assert await stored_emails(database) == []


async def test_postmark_json_with_attachment(
    mail_client: TestClient[Any, Any], database: Database
) -> None:
    payload = {
        "From": "Harbor Ops <ops@harbor.example>",
        "To": ANA,
        "Subject": "Postmark inbound",
        "Date": "Tue, 1 Dec 2026 09:00:00 -0800",
        "MessageID": "postmark-own-id",
        "TextBody": "See the file.",
        "HtmlBody": "",
        "Headers": [
            {"Name": "Message-ID", "Value": "<pm1@harbor.example>"},
            {"Name": "X-Autoreply", "Value": "yes"},
        ],
        "Attachments": [
            {
                "Name": "notes.txt",
                "Content": base64.b64encode(b"notes").decode(),
                "ContentType": "text/plain",
                "ContentLength": 5,
            }
        ],
    }

    response = await mail_client.post(
        "/email/inbound/postmark", json=payload, headers=basic()
    )

    assert response.status == 200, await response.text()
    [email] = await stored_emails(database)
    assert email.message_id == "pm1@harbor.example"
    assert email.automatic_reason == "autoreply"
    assert email.activity.automatic is True
    assert [a.filename for a in email.attachments] == ["notes.txt"]


async def test_postmark_bad_base64_names_field(
    mail_client: TestClient[Any, Any], database: Database
) -> None:
    payload = {
        "From": HARBOR,
        "To": ANA,
        "Subject": "Broken",
        "TextBody": "x",
        "Attachments": [{"Name": "a.bin", "Content": "%%%not base64"}],
    }

    response = await mail_client.post(
        "/email/inbound/postmark", json=payload, headers=basic()
    )

    assert response.status == 400
    assert (await response.json())["field"] == "Attachments"
    assert await stored_emails(database) == []


async def test_mime_needs_bearer_token(
    mail_client: TestClient[Any, Any], database: Database
) -> None:
    async with transaction(database.writes) as session:
        secret, _ = await create_token(session, ANA)
    raw = make_email(HARBOR, ANA, "Raw RFC 822", "Body").as_bytes()
    mime = {"Content-Type": "message/rfc822"}

    anonymous = await mail_client.post("/email/inbound/mime", data=raw, headers=mime)
    accepted = await mail_client.post(
        "/email/inbound/mime",
        data=raw,
        headers={**mime, "Authorization": f"Bearer {secret}"},
    )

    customer_id = (await accepted.json())["customer_id"]
    stream = await mail_client.get(
        f"/api/v1/customers/{customer_id}/activities",
        headers={"Authorization": f"Bearer {secret}"},
    )

    assert anonymous.status == 401
    assert accepted.status == 200, await accepted.text()
    assert [e.source for e in await stored_emails(database)] == ["mime"]
    assert stream.status == 200
    [item] = (await stream.json())["items"]
    assert item["channel"] == "email"
    assert item["email"]["subject"] == "Raw RFC 822"
    assert item["email"]["from"] == HARBOR


async def test_mime_malformed_and_too_large(
    mail_client: TestClient[Any, Any], database: Database
) -> None:
    async with transaction(database.writes) as session:
        secret, _ = await create_token(session, ANA)
    headers = {"Content-Type": "message/rfc822", "Authorization": f"Bearer {secret}"}
    broken = b"From: ops@harbor.example\r\nContent-Type: multipart/mixed\r\n\r\nx\r\n"

    malformed = await mail_client.post(
        "/email/inbound/mime", data=broken, headers=headers
    )
    too_large = await mail_client.post(
        "/email/inbound/mime", data=io.BytesIO(b"x" * (MAX_BYTES + 1)), headers=headers
    )
    unknown = await mail_client.post("/email/inbound/fax", data=b"x")

    assert malformed.status == 400
    assert (await malformed.json())["field"] == "content-type"
    assert too_large.status == 413
    assert (await too_large.json())["field"] == "body"
    assert unknown.status == 404
    assert (await unknown.json())["field"] == "provider"
    assert await stored_emails(database) == []


async def test_email_page_plain_text_default(
    mail_client: TestClient[Any, Any], database: Database
) -> None:
    form = aiohttp.FormData(
        {
            **mailgun_signature(),
            "from": HARBOR,
            "To": ANA,
            "subject": "Markup",
            "body-plain": "Plain words",
            "body-html": '<p>Rich words</p><script>alert(1)</script><img src="https://t.example/p.gif">',
        }
    )
    await mail_client.post("/email/inbound/mailgun", data=form)
    [email] = await stored_emails(database)
    await login(mail_client, ANA)

    plain = await mail_client.get(f"/emails/{email.id}")
    html = await mail_client.get(f"/emails/{email.id}?view=html")

    plain_text, html_text = await plain.text(), await html.text()
    assert "Plain words" in plain_text
    assert "Rich words" not in plain_text
    assert "Rich words" in html_text
    assert "<script>alert" not in html_text
    assert "t.example" not in html_text
    assert "script-src" not in html.headers["Content-Security-Policy"]
    assert "default-src 'none'" in html.headers["Content-Security-Policy"]


async def test_email_page_html_only_text(
    mail_client: TestClient[Any, Any], database: Database
) -> None:
    payload = {
        "From": HARBOR,
        "To": ANA,
        "Subject": "Only HTML",
        "HtmlBody": "<p>Fish &amp; chips</p><div>second<br>line</div>"
        "<script>alert(1)</script>",
    }
    await mail_client.post("/email/inbound/postmark", json=payload, headers=basic())
    [email] = await stored_emails(database)
    await login(mail_client, ANA)

    page = await mail_client.get(f"/emails/{email.id}")

    text = await page.text()
    assert email.text_body == ""
    assert "Fish &amp; chips\nsecond\nline</pre>" in text
    assert "alert(1)" not in text
