"""Reading inbound-email webhook bodies up to `email_max_bytes`.

The application's `client_max_size` (1 MiB) suits Twilio and API bodies
but not mail with attachments. These readers stream the body themselves,
so only the inbound-email routes accept large bodies, and they stop
reading as soon as the limit is passed.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import BodyPartReader, web

from capture.email_providers import FormFile
from capture.errors import InvalidInput

CHUNK_BYTES = 64 * 1024


class BodyTooLarge(Exception):
    """The request body is larger than email_max_bytes."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the request body is larger than {limit} bytes")
        self.limit = limit


class Form:
    """Text fields and files of a form; a later field of the same name wins."""

    def __init__(self) -> None:
        self.raw: dict[str, bytes] = {}
        self.files: dict[str, FormFile] = {}
        self.charsets: dict[str, str] = {}

    def text(self, name: str) -> str:
        raw = self.raw.get(name, b"")
        charset = self.charsets.get(name, "utf-8")
        try:
            return raw.decode(charset, errors="replace")
        except LookupError:
            return raw.decode("utf-8", errors="replace")

    def texts(self) -> dict[str, str]:
        return {name: self.text(name) for name in self.raw}


async def read_body(request: web.Request, limit: int) -> bytes:
    if request.content_length is not None and request.content_length > limit:
        raise BodyTooLarge(limit)
    data = bytearray()
    while chunk := await request.content.read(CHUNK_BYTES):
        data += chunk
        if len(data) > limit:
            raise BodyTooLarge(limit)
    return bytes(data)


async def read_json(request: web.Request, limit: int) -> dict[str, Any]:
    if request.content_type != "application/json":
        raise InvalidInput(
            f"content type {request.content_type!r} is not application/json",
            "Content-Type",
        )
    try:
        payload = json.loads(await read_body(request, limit))
    except ValueError as error:
        raise InvalidInput(f"the body is not valid JSON: {error}", "body") from error
    if not isinstance(payload, dict):
        raise InvalidInput("the body is not a JSON object", "body")
    return payload


async def read_form(request: web.Request, limit: int) -> Form:
    """Read a multipart or URL-encoded form, files included."""
    if request.content_type == "application/x-www-form-urlencoded":
        form = Form()
        body = (await read_body(request, limit)).decode("utf-8", errors="replace")
        for name, value in parse_qsl(body, keep_blank_values=True):
            form.raw[name] = value.encode("utf-8")
        return form
    if request.content_type != "multipart/form-data":
        raise InvalidInput(
            f"content type {request.content_type!r} is not multipart/form-data "
            "or application/x-www-form-urlencoded",
            "Content-Type",
        )
    return await _read_multipart(request, limit)


async def _read_multipart(request: web.Request, limit: int) -> Form:
    if request.content_length is not None and request.content_length > limit:
        raise BodyTooLarge(limit)
    form = Form()
    total = 0
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            raise InvalidInput("nested multipart fields are not accepted", "body")
        data = bytearray()
        while chunk := await part.read_chunk(CHUNK_BYTES):
            total += len(chunk)
            if total > limit:
                raise BodyTooLarge(limit)
            data += chunk
        name = part.name or ""
        if part.filename is not None:
            content_type = part.headers.get("Content-Type", "application/octet-stream")
            form.files[name] = FormFile(part.filename, content_type, bytes(data))
        else:
            form.raw[name] = bytes(data)
            charset = part.get_charset(default="")
            if charset:
                form.charsets[name] = charset
    return form
