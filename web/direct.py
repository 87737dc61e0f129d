"""The outermost middleware: signed webhooks skip the layers built for people.

Every webhook request is recorded in the webhook ledger (`telephony.ledger`).

Twilio and email webhooks need error rendering and the input checks, but
not sessions, CSRF tokens or login. Those layers let a webhook through
unchanged, yet each adds a coroutine per request: about 8 µs of a
webhook's 140 µs of CPU in the webhook benchmark (docs/benchmarks.md).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable

from aiohttp import web

from telephony.ledger import observe
from web.errors import Handler, error_middleware
from web.inputs import input_middleware
from web.keys import WRITER

DIRECT_PREFIXES = ("/twilio/", "/email/")


@web.middleware
async def direct_middleware(
    request: web.Request, handler: Handler
) -> web.StreamResponse:
    if not request.path.startswith(DIRECT_PREFIXES):
        return await handler(request)
    return await serve_webhook(request, request.match_info.handler)


def serve_webhook(
    request: web.Request, handler: Handler, *, replay_of: int | None = None
) -> Awaitable[web.StreamResponse]:
    """Run a webhook handler inside the error and input checks, recorded in
    the webhook ledger; a replay passes the ledger row it repeats.

    It returns the coroutine rather than awaiting it, which saves webhooks
    a coroutine frame.
    """
    route_handler = functools.partial(input_middleware, handler=handler)
    checked = functools.partial(error_middleware, handler=route_handler)
    return observe(request, checked, request.app[WRITER], replay_of=replay_of)
