"""API bearer tokens.

NOTE: pages and recordings are not yet behind a login. Until sessions and
roles exist, run the service only where every user may see all data.
"""

from __future__ import annotations

from aiohttp import web

from capture.accounts import user_for_token
from capture.models import User
from web.errors import Handler, render_error
from web.keys import DATABASE

USER = web.RequestKey("user", User)


@web.middleware
async def token_middleware(
    request: web.Request, handler: Handler
) -> web.StreamResponse:
    if not request.path.startswith("/api/"):
        return await handler(request)
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return _unauthorised(request, "missing bearer token")
    if not token.strip().isascii():
        return _unauthorised(request, "invalid or revoked token")
    async with request.app[DATABASE].reads() as session:
        user = await user_for_token(session, token.strip())
    if user is None:
        return _unauthorised(request, "invalid or revoked token")
    request[USER] = user
    return await handler(request)


def _unauthorised(request: web.Request, message: str) -> web.Response:
    response = render_error(request, 401, message, "Authorization")
    response.headers["WWW-Authenticate"] = 'Bearer realm="touchline"'
    return response
