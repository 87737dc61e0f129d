"""Shared pieces of the email tests: settings, messages and database reads."""

from __future__ import annotations

import smtplib
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from capture.db import Database
from capture.models import Activity, Customer, Email, User

CAPTURE = "log@capture.touchline.test"
ANA = "ana@demo.touchline.test"
BEN = "ben@demo.touchline.test"
HARBOR = "ops@harbor.example"
NORTHWIND = "orders@northwind.example"
MAILGUN_KEY = "mailgun-signing-key-for-tests"
WEBHOOK_PASSWORD = "webhook-password-for-tests"
# Above the 5 MiB attachment once base64-encoded, well below a test's memory.
MAX_BYTES = 8 * 1024 * 1024


def mail_overrides(smtp_port: int) -> dict[str, Any]:
    return {
        "smtp_port": smtp_port,
        "capture_domains": "capture.touchline.test",
        "mailgun_signing_key": MAILGUN_KEY,
        "email_webhook_password": WEBHOOK_PASSWORD,
        "email_max_bytes": MAX_BYTES,
    }


def make_email(
    sender: str,
    to: str,
    subject: str,
    text: str,
    *,
    message_id: str | None = None,
    extra: dict[str, str] | None = None,
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = format_datetime(datetime(2026, 12, 1, 9, 30, tzinfo=UTC))
    if message_id is not None:
        message["Message-ID"] = message_id
    for name, value in (extra or {}).items():
        message[name] = value
    message.set_content(text)
    return message


def send_smtp(port: int, raw: bytes, sender: str, recipients: list[str]) -> Any:
    """Send one message over a real SMTP session; blocking.

    smtplib sends bytes as they are, and `as_bytes()` ends lines with LF
    alone, so lines are converted to the CRLF that SMTP requires.
    """
    if b"\r\n" not in raw:
        raw = raw.replace(b"\n", b"\r\n")
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
        return smtp.sendmail(sender, recipients, raw)


async def stored_emails(database: Database) -> list[Email]:
    async with database.reads() as session:
        result = await session.scalars(
            select(Email)
            .options(
                selectinload(Email.attachments),
                selectinload(Email.activity).selectinload(Activity.customer),
                selectinload(Email.activity).selectinload(Activity.rep),
            )
            .order_by(Email.id)
        )
        return list(result.all())


async def customer_named(database: Database, name: str) -> Customer:
    async with database.reads() as session:
        return (
            await session.scalars(select(Customer).where(Customer.name == name))
        ).one()


async def user_id(database: Database, email: str) -> int:
    async with database.reads() as session:
        return int(
            (await session.scalars(select(User.id).where(User.email == email))).one()
        )


def read_file(data_dir: Path, relative: str) -> bytes:
    return (data_dir / relative).read_bytes()
