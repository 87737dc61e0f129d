"""The SMTP capture listener, over real SMTP sessions, on both databases."""

from __future__ import annotations

import asyncio
import base64
import csv
import hashlib
import io
import os
import smtplib
import ssl
from datetime import UTC, datetime, timedelta
from ipaddress import ip_address
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp.test_utils import TestClient
from conftest import csrf_of, free_port, login, make_settings, start_client
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from email_helpers import (
    ANA,
    BEN,
    CAPTURE,
    HARBOR,
    NORTHWIND,
    customer_named,
    mail_overrides,
    make_email,
    send_smtp,
    stored_emails,
    user_id,
)

from capture.access import Viewer
from capture.db import Database
from capture.models import User
from capture.settings import Settings
from reports.export import activities_csv
from reports.periods import parse_range
from reports.reps import rep_summaries
from web.app import create_app

ZONE = ZoneInfo("America/Los_Angeles")


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(tmp_path / "data", database_url, **mail_overrides(free_port()))


@pytest.fixture
async def mail_client(
    aiohttp_client: Any, settings: Settings, demo: None
) -> TestClient[Any, Any]:
    app = create_app(settings, run_worker=False, run_smtp=True)
    return await start_client(aiohttp_client, app)


async def smtp(settings: Settings, raw: bytes, sender: str, to: list[str]) -> Any:
    return await asyncio.to_thread(send_smtp, settings.smtp_port, raw, sender, to)


async def test_smtp_chinese_subject_and_charset(
    mail_client: TestClient[Any, Any], settings: Settings, database: Database
) -> None:
    message = make_email(HARBOR, ANA, "报价单：第二版", "")
    message.set_content("您好，附上报价。".encode("gb18030"), "text", "plain")
    del message["Content-Type"]
    message["Content-Type"] = 'text/plain; charset="gb2312"'
    raw = message.as_bytes()

    await smtp(settings, raw, HARBOR, [CAPTURE])

    [email] = await stored_emails(database)
    assert b"=?utf-8?" in raw.lower()
    assert email.subject == "报价单：第二版"
    assert email.text_body.strip() == "您好，附上报价。"
    assert email.activity.customer is not None
    assert email.activity.customer.name == "Harbor Freight Co"
    assert email.activity.direction == "inbound"
    assert email.activity.rep is not None
    assert email.activity.rep.email == ANA


async def test_smtp_large_attachment_listed(
    mail_client: TestClient[Any, Any], settings: Settings, database: Database
) -> None:
    content = os.urandom(5 * 1024 * 1024)
    message = make_email(ANA, HARBOR, "Signed contract", "Attached.")
    message.add_attachment(
        content, maintype="application", subtype="pdf", filename="合同.pdf"
    )

    await smtp(settings, message.as_bytes(), ANA, [CAPTURE])
    [email] = await stored_emails(database)
    await login(mail_client, ANA)
    page = await mail_client.get(f"/customers/{email.activity.customer_id}")
    download = await mail_client.get(
        f"/emails/{email.id}/attachments/{email.attachments[0].id}"
    )

    [attachment] = email.attachments
    assert email.activity.direction == "outbound"
    assert attachment.filename == "合同.pdf"
    assert attachment.size_bytes == len(content)
    assert attachment.sha256 == hashlib.sha256(content).hexdigest()
    assert (settings.data_dir / attachment.file_path).read_bytes() == content
    assert "合同.pdf" in await page.text()
    assert download.status == 200
    assert download.headers["Content-Type"] == "application/octet-stream"
    assert await download.read() == content


async def test_smtp_reply_threaded_by_references(
    mail_client: TestClient[Any, Any], settings: Settings, database: Database
) -> None:
    first = make_email(ANA, HARBOR, "Delivery dates", "When?", message_id="<m1@x.test>")
    reply = make_email(
        HARBOR,
        ANA,
        "A different subject",
        "Tuesday.",
        message_id="<m2@harbor.example>",
        extra={"References": "<m1@x.test>"},
    )
    unrelated = make_email(HARBOR, ANA, "New topic", "Hi", message_id="<m3@h.test>")

    for message in (first, reply, unrelated):
        await smtp(settings, message.as_bytes(), str(message["From"]), [CAPTURE])

    emails = await stored_emails(database)
    assert len(emails) == 3
    assert emails[1].thread_key == emails[0].thread_key
    assert emails[2].thread_key != emails[0].thread_key


async def test_smtp_reply_threaded_by_subject(
    mail_client: TestClient[Any, Any], settings: Settings, database: Database
) -> None:
    first = make_email(ANA, HARBOR, "Pallets", "How many?", message_id="<p1@x.test>")
    reply = make_email(HARBOR, ANA, "RE: Pallets", "Ten.", message_id="<p2@h.test>")

    for message in (first, reply):
        await smtp(settings, message.as_bytes(), str(message["From"]), [CAPTURE])

    emails = await stored_emails(database)
    assert emails[1].thread_key == emails[0].thread_key


async def test_smtp_out_of_office_not_counted(
    mail_client: TestClient[Any, Any], settings: Settings, database: Database
) -> None:
    away = make_email(
        ANA,
        HARBOR,
        "Automatic reply: Pallets",
        "I am away until Monday.",
        extra={"Auto-Submitted": "auto-replied"},
    )
    person = make_email(ANA, HARBOR, "Pallets", "Ten pallets ready.")

    await smtp(settings, away.as_bytes(), ANA, [CAPTURE])
    await smtp(settings, person.as_bytes(), ANA, [CAPTURE])
    emails = await stored_emails(database)
    async with database.reads() as session:
        admin = await session.get(
            User, await user_id(database, "ada@demo.touchline.test")
        )
        assert admin is not None
        period = parse_range("2026-11-01", "2026-12-31", ZONE)
        summaries = await rep_summaries(session, period, Viewer.of(admin))

    ana = next(summary for summary in summaries if summary.email == ANA)
    assert emails[0].automatic_reason == "auto-submitted"
    assert emails[0].activity.automatic is True
    assert emails[1].activity.automatic is False
    assert ana.emails == 1
    assert ana.emails_sent == 1
    assert ana.emails_received == 0


async def test_smtp_forward_matches_original_sender(
    mail_client: TestClient[Any, Any], settings: Settings, database: Database
) -> None:
    text = (
        "FYI, see below.\n\n"
        "---------- Forwarded message ---------\n"
        "From: Northwind Orders <orders@northwind.example>\n"
        "Date: Mon, 30 Nov 2026 08:15:00 -0800\n"
        "Subject: Rye flour order\n"
        "To: Ana Ruiz <ana@demo.touchline.test>\n\n"
        "Please send 40 sacks.\n"
    )
    forward = make_email(ANA, CAPTURE, "Fwd: Rye flour order", text)

    await smtp(settings, forward.as_bytes(), ANA, [CAPTURE])

    [email] = await stored_emails(database)
    northwind = await customer_named(database, "Northwind Bakery")
    assert email.activity.customer_id == northwind.id
    assert email.activity.direction == "inbound"
    assert email.activity.rep is not None
    assert email.activity.rep.email == ANA
    assert email.forwarded_by == ANA
    assert email.from_address == NORTHWIND
    assert email.to_addresses == ANA
    assert email.activity.occurred_at.isoformat() == "2026-11-30T16:15:00+00:00"


async def test_smtp_attached_forward_matches_original(
    mail_client: TestClient[Any, Any], settings: Settings, database: Database
) -> None:
    original = make_email(NORTHWIND, BEN, "Invoice 7", "Invoice attached.")
    forward = make_email(ANA, CAPTURE, "Fwd: Invoice 7", "Forwarding.")
    forward.add_attachment(original)

    await smtp(settings, forward.as_bytes(), ANA, [CAPTURE])

    [email] = await stored_emails(database)
    northwind = await customer_named(database, "Northwind Bakery")
    assert email.activity.customer_id == northwind.id
    assert email.activity.rep is not None
    assert email.activity.rep.email == BEN
    assert [a.filename for a in email.attachments] == ["Invoice 7.eml"]


async def test_smtp_no_message_id_and_duplicate(
    mail_client: TestClient[Any, Any], settings: Settings, database: Database
) -> None:
    without_id = make_email(HARBOR, ANA, "No id", "Plain text.").as_bytes()
    with_id = make_email(
        HARBOR, ANA, "Has id", "Text.", message_id="<dup@harbor.example>"
    )

    await smtp(settings, without_id, HARBOR, [CAPTURE])
    await smtp(settings, without_id, HARBOR, [CAPTURE])
    await smtp(settings, with_id.as_bytes(), HARBOR, [CAPTURE])
    with_id.replace_header("Subject", "Has id, resent")
    await smtp(settings, with_id.as_bytes(), HARBOR, [CAPTURE])

    emails = await stored_emails(database)
    assert [email.subject for email in emails] == ["No id", "Has id"]
    assert emails[0].message_id == ""
    assert emails[1].message_id == "dup@harbor.example"


async def test_smtp_domain_match_and_free_mail(
    mail_client: TestClient[Any, Any], settings: Settings, database: Database
) -> None:
    colleague = make_email("new.buyer@harbor.example", ANA, "Hello", "New buyer here.")
    stranger = make_email("someone@gmail.com", ANA, "Question", "Who are you?")

    await smtp(settings, colleague.as_bytes(), "new.buyer@harbor.example", [CAPTURE])
    await smtp(settings, stranger.as_bytes(), "someone@gmail.com", [CAPTURE])

    emails = await stored_emails(database)
    harbor = await customer_named(database, "Harbor Freight Co")
    assert emails[0].activity.customer_id == harbor.id
    assert emails[1].activity.customer_id is None
    assert emails[1].activity.rep_id == await user_id(database, ANA)


async def test_smtp_relay_rejected(
    mail_client: TestClient[Any, Any], settings: Settings, database: Database
) -> None:
    raw = make_email(HARBOR, "victim@elsewhere.example", "Relay", "x").as_bytes()

    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        await smtp(settings, raw, HARBOR, ["victim@elsewhere.example"])

    code, reply = refused.value.recipients["victim@elsewhere.example"]
    assert code == 550
    assert b"Relay access denied" in reply
    assert await stored_emails(database) == []


async def test_smtp_malformed_rejected_server_continues(
    mail_client: TestClient[Any, Any], settings: Settings, database: Database
) -> None:
    broken = (
        b"From: ops@harbor.example\r\nTo: ana@demo.touchline.test\r\n"
        b"Subject: Broken\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: multipart/mixed\r\n\r\nno boundary at all\r\n"
    )
    no_sender = b"To: ana@demo.touchline.test\r\nSubject: Who\r\n\r\nbody\r\n"

    with pytest.raises(smtplib.SMTPDataError) as rejected:
        await smtp(settings, broken, HARBOR, [CAPTURE])
    with pytest.raises(smtplib.SMTPDataError) as anonymous:
        await smtp(settings, no_sender, HARBOR, [CAPTURE])
    good = make_email(HARBOR, ANA, "Still here", "Fine.")
    await smtp(settings, good.as_bytes(), HARBOR, [CAPTURE])

    assert rejected.value.smtp_code == 554
    assert b"MIME structure is broken" in rejected.value.smtp_error
    assert anonymous.value.smtp_code == 554
    assert b"From header" in anonymous.value.smtp_error
    assert [email.subject for email in await stored_emails(database)] == ["Still here"]


async def test_smtp_size_limit(
    mail_client: TestClient[Any, Any], settings: Settings, database: Database
) -> None:
    message = make_email(HARBOR, ANA, "Too big", "x")
    message.add_attachment(
        base64.b64encode(os.urandom(settings.email_max_bytes)),
        maintype="application",
        subtype="octet-stream",
        filename="big.bin",
    )

    with pytest.raises(smtplib.SMTPException):
        await smtp(settings, message.as_bytes(), HARBOR, [CAPTURE])

    assert await stored_emails(database) == []


async def test_smtp_reply_before_original_threads(
    mail_client: TestClient[Any, Any], settings: Settings, database: Database
) -> None:
    reply = make_email(
        HARBOR,
        ANA,
        "Re: Quote",
        "Yes.",
        message_id="<late-reply@h.test>",
        extra={"In-Reply-To": "<root@x.test>", "References": "<root@x.test>"},
    )
    original = make_email(ANA, HARBOR, "Quote", "Price?", message_id="<root@x.test>")

    await smtp(settings, reply.as_bytes(), HARBOR, [CAPTURE])
    await smtp(settings, original.as_bytes(), ANA, [CAPTURE])

    first, second = await stored_emails(database)
    assert first.subject == "Re: Quote"
    assert second.thread_key == first.thread_key


async def test_smtp_email_counts_in_export(
    mail_client: TestClient[Any, Any], settings: Settings, database: Database
) -> None:
    sent = make_email(ANA, HARBOR, "Offer", "Our offer.")
    received = make_email(HARBOR, ANA, "Re: Offer", "Thanks.")
    away = make_email(
        HARBOR, ANA, "Out of office", "Away.", extra={"X-Autoreply": "yes"}
    )
    for message in (sent, received, away):
        await smtp(settings, message.as_bytes(), str(message["From"]), [CAPTURE])

    period = parse_range("2026-11-01", "2026-12-31", ZONE)
    async with database.reads() as session:
        chunks = [chunk async for chunk in activities_csv(session, period, None)]
    rows = list(csv.reader(io.StringIO(b"".join(chunks).decode("utf-8-sig"))))

    header, body = rows[0], rows[1:]
    status = header.index("status")
    text = header.index("text")
    emails = [(row[status], row[text]) for row in body if row[8] == "email"]
    assert emails == [
        ("sent", "Offer"),
        ("received", "Re: Offer"),
        ("automatic", "Out of office"),
    ]


async def test_smtp_unmatched_email_in_inbox(
    mail_client: TestClient[Any, Any], settings: Settings, database: Database
) -> None:
    stranger = make_email("someone@gmail.com", ANA, "Hello there", "Hi")
    await smtp(settings, stranger.as_bytes(), "someone@gmail.com", [CAPTURE])
    await login(mail_client, ANA)

    home = await (await mail_client.get("/")).text()

    start = home.index('<section id="unmatched">')
    inbox = home[start : home.index("</section>", start)]
    [email] = await stored_emails(database)
    assert f'href="/emails/{email.id}"' in inbox
    assert "someone@gmail.com" in inbox


async def test_smtp_starttls_with_certificate(
    aiohttp_client: Any, tmp_path: Path, database_url: str, demo: None
) -> None:
    cert, key = write_self_signed(tmp_path)
    overrides = {
        **mail_overrides(free_port()),
        "smtp_tls_cert": str(cert),
        "smtp_tls_key": str(key),
    }
    settings = make_settings(tmp_path / "data", database_url, **overrides)
    await start_client(
        aiohttp_client, create_app(settings, run_worker=False, run_smtp=True)
    )
    raw = make_email(HARBOR, ANA, "Over TLS", "Encrypted.").as_bytes()

    def send() -> bool:
        with smtplib.SMTP("127.0.0.1", settings.smtp_port, timeout=30) as client:
            client.ehlo()
            offered = client.has_extn("starttls")
            client.starttls(context=ssl.create_default_context(cafile=str(cert)))
            client.sendmail(HARBOR, [CAPTURE], raw.replace(b"\n", b"\r\n"))
            return offered

    offered = await asyncio.to_thread(send)

    database = Database(settings.database_url)
    try:
        subjects = [email.subject for email in await stored_emails(database)]
    finally:
        await database.dispose()
    assert offered
    assert subjects == ["Over TLS"]


def write_self_signed(folder: Path) -> tuple[Path, Path]:
    """Write a self-signed certificate for 127.0.0.1 and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "smtp.pem", folder / "smtp.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


async def test_added_address_attaches_unmatched_email(
    mail_client: TestClient[Any, Any], settings: Settings, database: Database
) -> None:
    inbound = make_email("buyer@gmail.com", ANA, "Price list?", "Hi")
    outbound = make_email(ANA, "buyer@gmail.com", "Re: Price list?", "Attached")
    other = make_email("ba.buyer@gmail.com", ANA, "Unrelated", "Hi")
    for message in (inbound, outbound, other):
        await smtp(settings, message.as_bytes(), str(message["From"]), [CAPTURE])
    harbor = await customer_named(database, "Harbor Freight Co")
    await login(mail_client, ANA)
    page = await mail_client.get(f"/customers/{harbor.id}")

    response = await mail_client.post(
        f"/customers/{harbor.id}/contacts",
        data={
            "csrf_token": csrf_of(await page.text()),
            "kind": "email",
            "value": "Buyer@Gmail.com",
            "label": "",
        },
        allow_redirects=False,
    )

    customers = [e.activity.customer_id for e in await stored_emails(database)]
    assert response.status == 303
    assert customers == [harbor.id, harbor.id, None]
