"""Reading addresses, Message-IDs, dates and automatic-mail markers from headers."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import Message
from email.utils import getaddresses, parsedate_to_datetime

MESSAGE_ID = re.compile(r"<([^<>\s]+)>")
# Reply and forward prefixes in English, German, French, Spanish and Chinese
# mail clients, repeated ("Re: Fwd: Re:") as clients stack them.
SUBJECT_PREFIX = re.compile(
    r"^\s*((re|fwd?|aw|wg|tr|rv|sv|antw|回复|回覆|答复|转发|轉寄)\s*(\[\d+\])?\s*[:：]\s*)+",
    re.IGNORECASE,
)
OUT_OF_OFFICE = re.compile(
    r"^\s*(out of (the )?office|automatic reply|auto(matic)?[- ]?reply|auto:|"
    r"abwesenheitsnotiz|absence|自动回复|自動回覆|不在办公室)",
    re.IGNORECASE,
)
# Charsets that mail labels with an older name than the text needs: GB2312
# mail routinely carries GBK characters, and GB18030 covers both.
CHARSET_ALIASES = {"gb2312": "gb18030", "gbk": "gb18030", "x-gbk": "gb18030"}
BOUNCE_SENDERS = frozenset({"mailer-daemon", "postmaster"})
BOUNCE_SUBJECT = re.compile(
    r"^\s*(undeliverable|undelivered mail|delivery status notification|"
    r"mail delivery (failed|failure|subsystem)|returned mail|退信)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Address:
    name: str
    # Lower case.
    address: str


def _has_surrogates(value: str) -> bool:
    return any("\udc80" <= character <= "\udcff" for character in value)


def _unescape(value: str) -> str:
    """Decode raw 8-bit header bytes that the parser kept as surrogates.

    RFC 5322 headers are ASCII, yet some clients send UTF-8 or GBK bytes
    without encoded words. UTF-8 is tried first, then GB18030.
    """
    raw = value.encode("ascii", "surrogateescape")
    for charset in ("utf-8", "gb18030"):
        try:
            return raw.decode(charset)
        except UnicodeDecodeError:
            continue
    return raw.decode("utf-8", "replace")


def _header_values(message: Message, name: str) -> list[str]:
    """Return the values of every `name` header as text.

    `policy.default` decodes 8-bit header bytes as UTF-8 and replaces what
    fails, so a header with raw bytes is decoded here from its raw value.
    """
    name = name.lower()
    parsed = message.get_all(name) or []
    raw = [value for key, value in message.raw_items() if key.lower() == name]
    if len(raw) != len(parsed):
        return [str(value) for value in parsed]
    return [
        _unescape(original)
        if isinstance(original, str) and _has_surrogates(original)
        else str(value)
        for original, value in zip(raw, parsed, strict=True)
    ]


def decode_text(part: Message) -> str:
    """Decode a text part with its charset, replacing bytes it cannot decode."""
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    charset = (part.get_content_charset() or "utf-8").lower()
    charset = CHARSET_ALIASES.get(charset, charset)
    try:
        return payload.decode(charset, errors="replace")
    except LookupError:
        return payload.decode("utf-8", errors="replace")


def header_text(message: Message, name: str) -> str:
    values = _header_values(message, name)
    if not values:
        return ""
    return " ".join(values[0].split())


def addresses_of(message: Message, name: str) -> tuple[Address, ...]:
    """Return the addresses of every `name` header, lower case, in order."""
    values = _header_values(message, name)
    found: list[Address] = []
    for display, address in getaddresses(values):
        address = address.strip().lower()
        if "@" not in address or " " in address or len(address) > 320:
            continue
        found.append(Address(" ".join(display.split())[:300], address))
    return tuple(dict.fromkeys(found))


def message_ids(message: Message, name: str) -> tuple[str, ...]:
    """Return the Message-IDs in a header, without angle brackets."""
    values = message.get_all(name) or []
    text = " ".join(str(value) for value in values)
    ids = MESSAGE_ID.findall(text)
    if not ids and text.strip() and name == "message-id":
        # A bare id without brackets still identifies the message.
        ids = [text.strip().split()[0]]
    return tuple(ids)


def sent_at_of(message: Message) -> datetime | None:
    raw = message.get("date")
    if raw is None:
        return None
    try:
        moment = parsedate_to_datetime(str(raw))
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        # RFC 5322 section 3.3: "-0000" means UTC with no local offset known.
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def subject_key(subject: str) -> str:
    """Return the subject without reply and forward prefixes, lower case."""
    return " ".join(SUBJECT_PREFIX.sub("", subject).split()).lower()[:200]


def automatic_reason(message: Message, sender: Address, subject: str) -> str | None:
    """Return why a message was sent by a machine, or None for a person's mail.

    Auto-Submitted (RFC 3834), X-Autoreply and its relatives, delivery
    reports and bounce senders, Precedence, and out-of-office subjects.
    """
    submitted = header_text(message, "auto-submitted").lower()
    if submitted and submitted != "no":
        return "auto-submitted"
    for name in ("x-autoreply", "x-autorespond", "x-autoresponder"):
        if message.get(name) is not None:
            return "autoreply"
    local = sender.address.partition("@")[0]
    if (
        message.get_content_type() == "multipart/report"
        or local in BOUNCE_SENDERS
        or message.get("x-failed-recipients") is not None
        or BOUNCE_SUBJECT.match(subject)
    ):
        return "bounce"
    if OUT_OF_OFFICE.match(subject):
        return "out-of-office"
    precedence = header_text(message, "precedence").lower()
    if precedence == "auto_reply":
        return "autoreply"
    if precedence in ("bulk", "junk", "list"):
        return "bulk"
    return None
