"""Reject control characters in query strings and paths before any handler runs.

A NUL byte cannot be stored in PostgreSQL text and matches everything in a
SQLite LIKE, and line breaks in values end up in logs. No valid query or
path contains them.
"""

from __future__ import annotations

import re

from aiohttp import web

from capture.errors import InvalidInput, NotFound
from web.errors import Handler

CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


@web.middleware
async def input_middleware(
    request: web.Request, handler: Handler
) -> web.StreamResponse:
    for name, value in request.query.items():
        if CONTROL.search(value):
            raise InvalidInput(f"{name} contains control characters", name)
    for name, value in request.match_info.items():
        if CONTROL.search(value):
            raise NotFound(f"{name} not found", name)
    return await handler(request)
