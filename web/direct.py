"""A short way through the middlewares for signed webhooks.

Twilio and email webhooks need error rendering and the input checks, but
none of the layers built for people and scripts: sessions, CSRF tokens and
login. Those pass a webhook through untouched, yet each still costs a
coroutine per request, which at peak load was a tenth of a webhook's time.
This outermost middleware sends webhooks straight to their route's handler
with only the two layers they need; everything else takes the full chain.
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
