"""Finding the original message inside a forward.

A rep who forwards a customer's email to the capture address is not the
customer's counterpart in it: the original sender and recipients are. Mail
clients forward either as an attached `message/rfc822` part or inline,
below a marker line followed by the original's From, Date, To and Subject.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import getaddresses

from capture.email_headers import (
    Address,
    addresses_of,
    decode_text,
    header_text,
    sent_at_of,
)

# Marker lines of Gmail, Outlook, Apple Mail, Thunderbird and Chinese clients.
MARKER = re.compile(
    r"^[> ]*(-{2,}\s*forwarded message\s*-{2,}|-{2,}\s*original message\s*-{2,}|"
    r"begin forwarded message:|-{2,}\s*(转发的邮件|原始邮件|轉寄的郵件)\s*-{2,}|"
    r"-{2,} ?Weitergeleitete Nachricht ?-{2,})\s*$",
    re.IGNORECASE | re.MULTILINE,
)
HEADER_LINE = re.compile(r"^[> ]*([^:：\n]{1,20})\s*[:：]\s*(.*)$")
FIELD_NAMES = {
    "from": "from",
    "发件人": "from",
    "寄件者": "from",
    "von": "from",
    "to": "to",
    "收件人": "to",
    "收件者": "to",
    "an": "to",
    "cc": "cc",
    "抄送": "cc",
    "副本": "cc",
    "date": "date",
    "sent": "date",
    "发送时间": "date",
    "日期": "date",
    "subject": "subject",
    "主题": "subject",
    "主旨": "subject",
    "betreff": "subject",
}
FORWARD_SUBJECT = re.compile(r"^\s*(fwd?|fw|wg|tr|转发|轉寄)\s*[:：]", re.IGNORECASE)
MAILTO = re.compile(r"\[mailto:([^\]]+)\]", re.IGNORECASE)


@dataclass(frozen=True)
class ForwardedOriginal:
    sender: Address
    to: tuple[Address, ...]
    cc: tuple[Address, ...]
    subject: str
    sent_at: datetime | None
    # The original's text, when it came as an attached message.
    text: str = ""


def find_forwarded(
    attached: list[EmailMessage], text: str, subject: str
) -> ForwardedOriginal | None:
    """Return the forwarded original of a message, if it has one."""
    for inner in attached:
        original = _from_attached(inner)
        if original is not None:
            return original
    if not FORWARD_SUBJECT.match(subject) and not MARKER.search(text):
        return None
    return _from_inline(text)


def _from_attached(inner: EmailMessage) -> ForwardedOriginal | None:
    senders = addresses_of(inner, "from")
    if not senders:
        return None
    body = inner.get_body(preferencelist=("plain",))
    return ForwardedOriginal(
        sender=senders[0],
        to=addresses_of(inner, "to"),
        cc=addresses_of(inner, "cc"),
        subject=header_text(inner, "subject"),
        sent_at=sent_at_of(inner),
        text=decode_text(body) if body is not None else "",
    )


def _from_inline(text: str) -> ForwardedOriginal | None:
    marker = MARKER.search(text)
    if marker is None:
        return None
    fields = _header_block(text[marker.end() :])
    senders = _addresses(fields.get("from", ""))
    if not senders:
        return None
    return ForwardedOriginal(
        sender=senders[0],
        to=_addresses(fields.get("to", "")),
        cc=_addresses(fields.get("cc", "")),
        subject=fields.get("subject", ""),
        sent_at=_date(fields.get("date", "")),
    )


def _header_block(text: str) -> dict[str, str]:
    """Read `Name: value` lines up to the first blank line after them."""
    fields: dict[str, str] = {}
    for line in text.lstrip("\r\n").splitlines():
        stripped = line.strip("> \t")
        if not stripped:
            if fields:
                break
            continue
        found = HEADER_LINE.match(line)
        if found is None:
            break
        name = FIELD_NAMES.get(found.group(1).strip().lower())
        if name is not None and name not in fields:
            fields[name] = found.group(2).strip()
    return fields


def _addresses(value: str) -> tuple[Address, ...]:
    value = MAILTO.sub(r"<\1>", value)
    found = []
    for name, address in getaddresses([value]):
        address = address.strip().lower()
        if "@" in address and " " not in address:
            found.append(Address(" ".join(name.split()), address))
    return tuple(dict.fromkeys(found))


def _date(value: str) -> datetime | None:
    if not value:
        return None
    message = EmailMessage()
    try:
        message["Date"] = value
    except (ValueError, TypeError, IndexError):
        return None
    return sent_at_of(message)
