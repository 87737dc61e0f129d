"""The access policy in the web layer: the viewer of a request and role checks.

The rules themselves live in `capture.access`; handlers pass the viewer
from here to every read query.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp_session import get_session

from capture.access import Viewer
from capture.errors import Forbidden
from capture.models import User
from web.auth import USER, VIEWER
from web.csrf import csrf_token
from web.i18n import template_values


def viewer_of(request: web.Request) -> Viewer:
    """Return the request's viewer; the auth middleware set it on every
    non-public path, so a missing one is a routing mistake."""
    return request[VIEWER]


def user_of(request: web.Request) -> User:
    return request[USER]


def require_admin(request: web.Request) -> Viewer:
    viewer = viewer_of(request)
    if not viewer.is_admin:
        raise Forbidden("this page needs the admin role")
    return viewer


# Paths that never render a page: they must not start a session, which would
# send every webhook, API and static response a new cookie.
NO_PAGES = ("/api/", "/twilio/", "/email/", "/static/", "/healthz", "/metrics")


async def template_context(request: web.Request) -> dict[str, Any]:
    """Context for every template: the user, their viewer, the CSRF token,
    and the language and time zone of the page."""
    if request.path.startswith(NO_PAGES):
        return {}
    user = request.get(USER)
    session = await get_session(request)
    return {
        "current_user": user,
        "viewer": request.get(VIEWER),
        "csrf_token": csrf_token(session),
        **template_values(request),
    }
