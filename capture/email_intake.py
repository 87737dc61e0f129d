"""The one path by which an email enters the database, from SMTP or a webhook.

Parsing and writing attachment files run on a thread, off the event loop;
the rows are written by the batch writer, so an email commits in the same
transactions as concurrent webhooks and a caller gets its response only
after its email is durable.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from email.message import EmailMessage

from capture.email_files import save_attachments
from capture.email_parse import ParsedEmail, parse_bytes, parse_message
from capture.emails import EmailResult, IncomingEmail, store_email
from capture.settings import Settings
from capture.writer import BatchWriter

log = logging.getLogger(__name__)


class EmailIntake:
    def __init__(self, settings: Settings, writer: BatchWriter) -> None:
        self.settings = settings
        self.writer = writer

    async def capture_bytes(self, raw: bytes, source: str) -> EmailResult:
        """Parse and store a raw RFC 822 message; MalformedEmail if unreadable."""
        parsed = await asyncio.to_thread(parse_bytes, raw)
        return await self.capture_parsed(parsed, source)

    async def capture_message(self, message: EmailMessage, source: str) -> EmailResult:
        parsed = await asyncio.to_thread(parse_message, message)
        return await self.capture_parsed(parsed, source)

    async def capture_parsed(self, parsed: ParsedEmail, source: str) -> EmailResult:
        files = await asyncio.to_thread(
            save_attachments, self.settings.data_dir, parsed.attachments
        )
        incoming = IncomingEmail(parsed, files, source)
        change = functools.partial(
            store_email,
            incoming=incoming,
            capture_domains=self.settings.capture_domains,
        )
        # Both web processes may receive the same email, as a retry does.
        return await self.writer.run(change, lock_key=f"email:{parsed.message_key}")
