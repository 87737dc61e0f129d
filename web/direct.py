"""The outermost middleware: signed webhooks skip the layers built for people.

Twilio and email webhooks need error rendering and the input checks, but
not sessions, CSRF tokens or login. Those layers let a webhook through
unchanged, yet each adds a coroutine per request: about 8 µs of a
webhook's 140 µs of CPU in the webhook benchmark (docs/benchmarks.md).
"""

from __future__ import annotations

import functools

from aiohttp import web

from web.errors import Handler, error_middleware
from web.inputs import input_middleware

DIRECT_PREFIXES = ("/twilio/", "/email/")


@web.middleware
async def direct_middleware(
    request: web.Request, handler: Handler
) -> web.StreamResponse:
    if not request.path.startswith(DIRECT_PREFIXES):
        return await handler(request)
    route_handler = functools.partial(
        input_middleware, handler=request.match_info.handler
    )
    return await error_middleware(request, route_handler)
