"""Inbound-email webhook payloads turned into `EmailMessage` objects.

SendGrid Inbound Parse, Mailgun routes and Postmark post a message already
split into fields. Each is rebuilt as one MIME message from the headers
that matter here and the bodies and files, so that one parser handles
every path. A payload that carries the raw message (SendGrid's raw mode,
Mailgun's `body-mime`, Postmark's `RawEmail`) is parsed as it is instead.
The web layer passes the first two of those as bytes.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable
from dataclasses import dataclass
from email import policy
from email.errors import HeaderParseError
from email.message import EmailMessage
from email.parser import BytesParser, HeaderParser
from typing import Any

from capture.email_parse import MalformedEmail

# Headers kept when a message is rebuilt: addressing, threading and the
# markers of automatic mail.
KEPT_HEADERS = (
    "From",
    "To",
    "Cc",
    "Reply-To",
    "Subject",
    "Date",
    "Message-ID",
    "In-Reply-To",
    "References",
    "Auto-Submitted",
    "X-Autoreply",
    "X-Autorespond",
    "X-Autoresponder",
    "X-Failed-Recipients",
    "Precedence",
)
KEPT = {name.lower(): name for name in KEPT_HEADERS}


@dataclass(frozen=True)
class FormFile:
    filename: str
    content_type: str
    content: bytes


def raw_message(raw: bytes) -> EmailMessage:
    if not raw.strip():
        raise MalformedEmail("the raw message is empty", "email")
    return BytesParser(policy=policy.default).parsebytes(raw)


def build_message(
    headers: Iterable[tuple[str, str]],
    text: str,
    html: str,
    files: Iterable[FormFile],
) -> EmailMessage:
    """Build a message from header pairs, bodies and attached files."""
    message = EmailMessage()
    for name, value in headers:
        kept = KEPT.get(name.strip().lower())
        if kept is None or kept in message:
            continue
        try:
            message[kept] = " ".join(str(value).split())
        except (ValueError, TypeError, HeaderParseError) as error:
            raise MalformedEmail(f"header {kept} is invalid: {error}", kept) from error
    if html and text:
        message.set_content(text)
        message.add_alternative(html, subtype="html")
    elif html:
        message.set_content(html, subtype="html")
    else:
        message.set_content(text)
    for file in files:
        maintype, _, subtype = file.content_type.partition("/")
        if not maintype or not subtype or maintype == "multipart":
            maintype, subtype = "application", "octet-stream"
        message.add_attachment(
            file.content, maintype=maintype, subtype=subtype, filename=file.filename
        )
    return message


def header_pairs(block: str) -> list[tuple[str, str]]:
    """Split a raw header block (as SendGrid sends it) into name-value pairs."""
    parsed = HeaderParser(policy=policy.default).parsestr(block)
    return [(name, str(value)) for name, value in parsed.items()]


def sendgrid_message(
    fields: dict[str, str], files: dict[str, FormFile]
) -> EmailMessage:
    """Build a message from SendGrid Inbound Parse fields (not raw mode)."""
    if "headers" in fields:
        headers = header_pairs(fields["headers"])
    else:
        headers = [
            (name, fields[name.lower()])
            for name in ("From", "To", "Cc", "Subject")
            if name.lower() in fields
        ]
    info = _json_object(fields.get("attachment-info", "{}"), "attachment-info")
    ordered = []
    for key in sorted(files, key=_attachment_number):
        file = files[key]
        details = info.get(key)
        if isinstance(details, dict) and isinstance(details.get("filename"), str):
            file = FormFile(details["filename"], file.content_type, file.content)
        ordered.append(file)
    return build_message(
        headers, fields.get("text", ""), fields.get("html", ""), ordered
    )


def mailgun_message(fields: dict[str, str], files: dict[str, FormFile]) -> EmailMessage:
    """Build a message from a Mailgun route's parsed fields."""
    headers: list[tuple[str, str]] = []
    if "message-headers" in fields:
        pairs = _json(fields["message-headers"], "message-headers")
        if not isinstance(pairs, list):
            raise MalformedEmail(
                "message-headers is not a JSON list", "message-headers"
            )
        for pair in pairs:
            if not (isinstance(pair, list) and len(pair) == 2):
                raise MalformedEmail(
                    "message-headers has an entry that is not [name, value]",
                    "message-headers",
                )
            headers.append((str(pair[0]), str(pair[1])))
    for name, field in (("From", "from"), ("Subject", "subject"), ("To", "To")):
        if field in fields:
            headers.append((name, fields[field]))
    ordered = [files[key] for key in sorted(files, key=_attachment_number)]
    return build_message(
        headers, fields.get("body-plain", ""), fields.get("body-html", ""), ordered
    )


def postmark_message(payload: dict[str, Any]) -> EmailMessage:
    """Build a message from Postmark's inbound JSON."""
    if isinstance(payload.get("RawEmail"), str) and payload["RawEmail"].strip():
        return raw_message(payload["RawEmail"].encode("utf-8", "surrogateescape"))
    headers: list[tuple[str, str]] = []
    for entry in _list(payload, "Headers"):
        if isinstance(entry, dict) and {"Name", "Value"} <= entry.keys():
            headers.append((str(entry["Name"]), str(entry["Value"])))
    for name in ("From", "To", "Cc", "Subject", "Date"):
        value = payload.get(name)
        if isinstance(value, str) and value:
            headers.append((name, value))
    files = [_postmark_file(entry) for entry in _list(payload, "Attachments")]
    return build_message(
        headers,
        _string(payload, "TextBody"),
        _string(payload, "HtmlBody"),
        files,
    )


def _postmark_file(entry: Any) -> FormFile:
    if not isinstance(entry, dict):
        raise MalformedEmail("an attachment is not a JSON object", "Attachments")
    name = entry.get("Name")
    content = entry.get("Content")
    if not isinstance(name, str) or not isinstance(content, str):
        raise MalformedEmail("an attachment lacks Name or Content", "Attachments")
    try:
        data = base64.b64decode(content, validate=True)
    except (binascii.Error, ValueError) as error:
        raise MalformedEmail(
            f"attachment {name[:60]!r} is not valid base64", "Attachments"
        ) from error
    content_type = entry.get("ContentType")
    if not isinstance(content_type, str):
        content_type = "application/octet-stream"
    return FormFile(name, content_type, data)


def _attachment_number(key: str) -> int:
    digits = "".join(character for character in key if character.isdigit())
    return int(digits) if digits else 0


def _json(text: str, field: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as error:
        raise MalformedEmail(f"{field} is not valid JSON", field) from error


def _json_object(text: str, field: str) -> dict[str, Any]:
    value = _json(text, field)
    if not isinstance(value, dict):
        raise MalformedEmail(f"{field} is not a JSON object", field)
    return value


def _list(payload: dict[str, Any], field: str) -> list[Any]:
    value = payload.get(field, [])
    if not isinstance(value, list):
        raise MalformedEmail(f"{field} is not a JSON list", field)
    return value


def _string(payload: dict[str, Any], field: str) -> str:
    value = payload.get(field, "")
    if not isinstance(value, str):
        raise MalformedEmail(f"{field} is not a string", field)
    return value
