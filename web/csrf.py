"""CSRF protection: a per-session token that every form sends back.

Every POST, PUT, PATCH and DELETE must carry the session's token in the
`csrf_token` form field or the `X-CSRF-Token` header, except API calls
(bearer tokens, which a browser never sends on its own) and signed
webhooks. The token is issued with the session that renders a form, so the
login form is protected too.
"""

from __future__ import annotations

import hmac
import logging
import secrets

from aiohttp import web
from aiohttp_session import Session, get_session

from web.errors import Handler, render_error
from web.i18n import gettext_noop as N_

log = logging.getLogger(__name__)

FIELD = "csrf_token"
HEADER = "X-CSRF-Token"
SESSION_KEY = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
EXEMPT_PREFIXES = ("/api/", "/twilio/", "/email/")


def csrf_token(session: Session) -> str:
    """Return the session's token, creating it on first use."""
    token = session.get(SESSION_KEY)
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        session[SESSION_KEY] = token
    return token


@web.middleware
async def csrf_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.method in SAFE_METHODS or request.path.startswith(EXEMPT_PREFIXES):
        return await handler(request)
    session = await get_session(request)
    expected = session.get(SESSION_KEY)
    sent: object = request.headers.get(HEADER)
    if sent is None and request.content_type in (
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ):
        sent = (await request.post()).get(FIELD)
    if (
        not isinstance(expected, str)
        or not isinstance(sent, str)
        or not hmac.compare_digest(expected.encode(), sent.encode())
    ):
        log.warning(
            "%s %r rejected: missing or wrong CSRF token", request.method, request.path
        )
        return render_error(
            request,
            403,
            N_(
                "the form has expired or did not come from this site; reload the "
                "page and submit it again"
            ),
            FIELD,
        )
    return await handler(request)
