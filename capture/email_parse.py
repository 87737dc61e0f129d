"""Parsing an RFC 5322 message into the parts the activity stream needs.

The standard library's `email` package with `policy.default` decodes
encoded words in headers and every charset Python has a codec for.
Malformed MIME that cannot be read raises `MalformedEmail`, which names
the part at fault.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.errors import (
    HeaderParseError,
    MessageDefect,
    MultipartInvariantViolationDefect,
    NoBoundaryInMultipartDefect,
    StartBoundaryNotFoundDefect,
)
from email.message import EmailMessage, Message
from email.parser import BytesParser
from typing import Any

from capture.email_forward import ForwardedOriginal, find_forwarded
from capture.email_headers import (
    Address,
    addresses_of,
    automatic_reason,
    decode_text,
    header_text,
    message_ids,
    sent_at_of,
)
from capture.errors import InvalidInput

# Defects that leave the body unreadable; other defects are tolerated.
FATAL_DEFECTS: tuple[type[MessageDefect], ...] = (
    NoBoundaryInMultipartDefect,
    StartBoundaryNotFoundDefect,
    MultipartInvariantViolationDefect,
)


class MalformedEmail(InvalidInput):
    """The message is not valid RFC 5322 / MIME; `field` names the header or part."""


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str
    content: bytes


@dataclass(frozen=True)
class ParsedEmail:
    # Without angle brackets; empty when the message has none.
    message_id: str
    # SHA-256 of the Message-ID, or of the content when there is none.
    message_key: str
    subject: str
    sender: Address
    to: tuple[Address, ...]
    cc: tuple[Address, ...]
    sent_at: datetime | None
    # Message-IDs this message replies to: In-Reply-To first, then
    # References, newest first.
    replied_ids: tuple[str, ...]
    # The first Message-ID of References, which RFC 5322 makes the thread's
    # first message; In-Reply-To when there are no References.
    thread_root_id: str
    text: str
    html: str
    attachments: tuple[Attachment, ...]
    automatic_reason: str | None
    forwarded: ForwardedOriginal | None


def parse_bytes(raw: bytes) -> ParsedEmail:
    """Parse a raw RFC 822 message; raise MalformedEmail when it is unreadable."""
    if not raw.strip():
        raise MalformedEmail("the message is empty", "message")
    message = BytesParser(policy=policy.default).parsebytes(raw)
    return parse_message(message)


def parse_message(message: EmailMessage) -> ParsedEmail:
    """Extract addresses, bodies, attachments and threading headers."""
    if not message.keys():
        raise MalformedEmail("the message has no headers", "message")
    _reject_fatal_defects(message)
    try:
        return _parse(message)
    except (HeaderParseError, ValueError, TypeError, IndexError, KeyError) as error:
        raise MalformedEmail(
            f"the message cannot be parsed: {error}", "message"
        ) from error


def _parse(message: EmailMessage) -> ParsedEmail:
    senders = addresses_of(message, "from")
    if not senders:
        raise MalformedEmail("the From header is missing or has no address", "from")
    subject = header_text(message, "subject")
    text, html = _bodies(message)
    attachments, originals = _attachments(message)
    forwarded = find_forwarded(originals, text, subject)
    if not text and forwarded is not None:
        text = forwarded.text
    message_id = next(iter(message_ids(message, "message-id")), "")
    references = message_ids(message, "references")
    in_reply_to = message_ids(message, "in-reply-to")
    replied = in_reply_to + tuple(reversed(references))
    parsed = ParsedEmail(
        message_id=message_id,
        message_key="",
        subject=subject,
        sender=senders[0],
        to=addresses_of(message, "to"),
        cc=addresses_of(message, "cc"),
        sent_at=sent_at_of(message),
        replied_ids=tuple(dict.fromkeys(replied)),
        thread_root_id=(references or in_reply_to or ("",))[0],
        text=text,
        html=html,
        attachments=tuple(attachments),
        automatic_reason=automatic_reason(message, senders[0], subject),
        forwarded=forwarded,
    )
    return _with_key(parsed)


def _reject_fatal_defects(message: EmailMessage) -> None:
    for part in message.walk():
        for defect in part.defects:
            if isinstance(defect, FATAL_DEFECTS):
                name = type(defect).__name__
                raise MalformedEmail(
                    f"the MIME structure is broken ({name}); the message cannot "
                    "be read",
                    "content-type",
                )


def message_key_of(message_id: str) -> str:
    return hashlib.sha256(b"id:" + message_id.encode("utf-8", "replace")).hexdigest()


def _with_key(parsed: ParsedEmail) -> ParsedEmail:
    if parsed.message_id:
        key = message_key_of(parsed.message_id)
    else:
        # The same message delivered twice (SMTP and a webhook, or a retry)
        # has the same parties, date, subject, text and files.
        digest = hashlib.sha256(b"content:")
        parts: list[Any] = [
            parsed.sender.address,
            ",".join(a.address for a in parsed.to),
            ",".join(a.address for a in parsed.cc),
            parsed.sent_at.isoformat() if parsed.sent_at else "",
            parsed.subject,
            parsed.text.strip(),
        ]
        for part in parts:
            digest.update(str(part).encode("utf-8", "replace") + b"\0")
        for attachment in parsed.attachments:
            digest.update(hashlib.sha256(attachment.content).digest())
        key = digest.hexdigest()
    return ParsedEmail(**{**parsed.__dict__, "message_key": key})


def _bodies(message: EmailMessage) -> tuple[str, str]:
    plain = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    text = decode_text(plain) if isinstance(plain, Message) else ""
    markup = decode_text(html) if isinstance(html, Message) else ""
    return text, markup


def _leaves(part: EmailMessage) -> list[EmailMessage]:
    """Return the non-multipart parts, without descending into attached messages."""
    if part.get_content_maintype() != "multipart":
        return [part]
    leaves: list[EmailMessage] = []
    for child in part.iter_parts():
        leaves.extend(_leaves(child))  # type: ignore[arg-type]
    return leaves


def _attachments(
    message: EmailMessage,
) -> tuple[list[Attachment], list[EmailMessage]]:
    """Return the files of a message and the messages attached to it."""
    bodies = {
        id(part)
        for part in (
            message.get_body(preferencelist=("plain",)),
            message.get_body(preferencelist=("html",)),
        )
        if part is not None
    }
    files: list[Attachment] = []
    originals: list[EmailMessage] = []
    for part in _leaves(message):
        if id(part) in bodies:
            continue
        content_type = part.get_content_type()
        if content_type == "message/rfc822":
            inner = _inner_message(part)
            originals.append(inner)
            files.append(_message_file(inner))
            continue
        filename = part.get_filename()
        if filename is None and part.get_content_disposition() != "attachment":
            continue
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes):
            raise MalformedEmail(
                f"attachment {filename!r} has no readable content", "attachment"
            )
        name = (filename or f"attachment-{len(files) + 1}").strip()[:300]
        files.append(Attachment(name, content_type, payload))
    return files, originals


def _inner_message(part: EmailMessage) -> EmailMessage:
    payload = part.get_payload()
    if isinstance(payload, list) and payload and isinstance(payload[0], EmailMessage):
        return payload[0]
    raise MalformedEmail("an attached message/rfc822 part is empty", "attachment")


def _message_file(inner: EmailMessage) -> Attachment:
    subject = header_text(inner, "subject") or "message"
    safe = "".join(c if c.isalnum() or c in " -_." else "_" for c in subject)
    return Attachment(
        f"{safe.strip()[:80] or 'message'}.eml", "message/rfc822", inner.as_bytes()
    )


def now_or(moment: datetime | None) -> datetime:
    """Return `moment`, or now when it is missing or more than a day ahead."""
    now = datetime.now(UTC)
    if moment is None or (moment - now).total_seconds() > 86400:
        return now
    return moment
