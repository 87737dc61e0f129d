"""The SMTP capture listener: a BCC and forwarding address for reps.

It accepts mail only for recipients in `capture_domains` and rejects every
other recipient with 550, so it can never relay. It delivers nowhere and
never replies to a message: each accepted message is stored and the
session gets 250 once the email is committed. STARTTLS is offered when
`smtp_tls_cert` is set, and messages above `email_max_bytes` get 552.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from urllib.parse import urlsplit

from aiosmtpd.smtp import SMTP, Envelope, Session

from capture.email_intake import EmailIntake
from capture.email_parse import MalformedEmail
from capture.settings import Settings
from capture.writer import WriterStopped

log = logging.getLogger(__name__)

# aiosmtpd logs each recipient's full address at INFO; addresses stay out
# of the logs, so only its warnings are kept.
logging.getLogger("mail.log").setLevel(logging.WARNING)

# Seconds an idle SMTP connection is kept open (RFC 5321 section 4.5.3.2
# suggests at least 5 minutes for the server's wait).
IDLE_TIMEOUT_S = 300
RELAY_DENIED = (
    "550 5.7.1 Relay access denied: this server accepts mail only for its "
    "capture addresses"
)


def mask_address(address: str) -> str:
    """Keep the domain and the first character of an address, for logs."""
    local, _, domain = address.rpartition("@")
    return f"{local[:1]}***@{domain}" if local else "***"


class CaptureHandler:
    """aiosmtpd hooks: recipients are checked, each message is stored."""

    def __init__(self, intake: EmailIntake, capture_domains: tuple[str, ...]) -> None:
        self.intake = intake
        self.capture_domains = frozenset(capture_domains)

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        domain = address.rpartition("@")[2].lower().rstrip(".")
        if domain not in self.capture_domains:
            log.warning(
                "smtp recipient rejected: recipient=%s peer=%s",
                mask_address(address),
                session.peer,
            )
            return RELAY_DENIED
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        raw = envelope.original_content or b""
        try:
            result = await self.intake.capture_bytes(raw, "smtp")
        except MalformedEmail as error:
            log.warning("smtp message rejected: peer=%s reason=%s", session.peer, error)
            return f"554 5.6.0 Malformed message: {error.message}"
        except WriterStopped:
            log.warning("smtp message deferred: the server is stopping")
            return "451 4.3.2 The server is stopping; try again later"
        except Exception:
            log.exception("smtp message not stored: peer=%s", session.peer)
            return "451 4.3.0 The message could not be stored; try again later"
        log.info(
            "smtp message accepted: email=%s activity=%s outcome=%s",
            result.email_id,
            result.activity_id,
            result.outcome,
        )
        return "250 2.0.0 Message captured"


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    if not settings.smtp_tls_cert:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(settings.smtp_tls_cert, settings.smtp_tls_key or None)
    return context


async def start_smtp(settings: Settings, intake: EmailIntake) -> asyncio.Server:
    """Listen on smtp_host:smtp_port; the caller closes the returned server."""
    loop = asyncio.get_running_loop()
    handler = CaptureHandler(intake, settings.capture_domains)
    context = tls_context(settings)
    hostname = urlsplit(settings.public_url).hostname or "touchline"

    def protocol() -> SMTP:
        return SMTP(
            handler,
            data_size_limit=settings.email_max_bytes,
            enable_SMTPUTF8=True,
            hostname=hostname,
            tls_context=context,
            timeout=IDLE_TIMEOUT_S,
            loop=loop,
        )

    server = await loop.create_server(
        protocol, host=settings.smtp_host, port=settings.smtp_port
    )
    log.info(
        "smtp listener started: host=%s port=%s domains=%s starttls=%s",
        settings.smtp_host,
        settings.smtp_port,
        ",".join(settings.capture_domains) or "(none)",
        context is not None,
    )
    if not settings.capture_domains:
        log.warning("smtp listener has no capture_domains; it rejects every recipient")
    return server
