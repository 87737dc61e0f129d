"""Reject control characters in query strings and paths before any handler runs.

A NUL byte cannot be stored in PostgreSQL text and matches everything in a
SQLite LIKE, and line breaks in values end up in logs. No valid query or
path contains them.
"""

from __future__ import annotations

import re

from aiohttp import web
from aiohttp.web_request import FileField
from multidict import MultiDictProxy

from capture.errors import InvalidInput, NotFound
from web.errors import Handler

CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


@web.middleware
async def input_middleware(
    request: web.Request, handler: Handler
) -> web.StreamResponse:
    # Most webhooks carry no query, and parsing an empty one still costs.
    if request.query_string:
        for name, value in request.query.items():
            if CONTROL.search(value):
                raise InvalidInput(f"{name} contains control characters", name)
    for name, value in request.match_info.items():
        if CONTROL.search(value):
            raise NotFound(f"{name} not found", name)
    return await handler(request)


def form_text(
    form: MultiDictProxy[str | bytes | bytearray | FileField],
    name: str,
    max_length: int | None,
) -> str:
    """Return a form field as text ("" when absent), checked for length.

    A `max_length` of None marks a password: any characters are kept, and
    the password rules check the length.
    """
    value = form.get(name, "")
    if not isinstance(value, str):
        raise InvalidInput(f"{name} must be text, not a file", name)
    if max_length is None:
        return value
    if CONTROL.search(value):
        raise InvalidInput(f"{name} contains control characters", name)
    if len(value) > max_length:
        raise InvalidInput(f"{name} is longer than {max_length} characters", name)
    return value
