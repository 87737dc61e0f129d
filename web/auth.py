"""Authentication: login sessions in encrypted cookies, and API bearer tokens.

Pages and recordings need a login session; `/api/` needs a bearer token.
Twilio and email webhooks (signed), `/healthz`, `/metrics`, `/login` and static files
are public. A session ends after `session_idle_seconds` without a request,
`session_max_seconds` after login, at logout, and when the user's
`session_version` changes (password change, deactivation).
"""

from __future__ import annotations

import time
from typing import NoReturn
from urllib.parse import quote

from aiohttp import web
from aiohttp_session import Session, get_session, new_session
from aiohttp_session.cookie_storage import EncryptedCookieStorage
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import select

from capture.access import Viewer
from capture.accounts import user_for_token
from capture.models import User
from capture.settings import Settings
from web.csrf import csrf_token
from web.errors import Handler, render_error
from web.keys import DATABASE, USER, VIEWER
from web.runtime import current_settings

COOKIE_NAME = "touchline_session"
# Pages load scripts, styles, images and audio from this site only, so text
# that slipped through escaping still could not run a script. Inline style
# attributes are allowed for positions drawn by the templates.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; media-src 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
PUBLIC_PATHS = frozenset({"/healthz", "/metrics", "/login"})
PUBLIC_PREFIXES = ("/twilio/", "/email/", "/static/")
# Paths that work without a login but load the user when there is one,
# because the language switch also serves the login page.
OPTIONAL_LOGIN_PATHS = frozenset({"/account/language"})

# Keys of the session cookie's data.
USER_ID = "user_id"
VERSION = "session_version"
LOGIN_AT = "login_at"
SEEN_AT = "seen_at"


def session_key(secret_key: str) -> bytes:
    """Derive the raw 32-byte Fernet key of the cookies from `secret_key` (HKDF)."""
    return HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=None,
        info=b"touchline session cookie",
    ).derive(secret_key.encode())


def session_storage(settings: Settings) -> EncryptedCookieStorage:
    """Cookies encrypted and signed with Fernet, HttpOnly and SameSite=Lax.

    They are Secure when `public_url` is https, so a browser sends them
    only over https.
    """
    return EncryptedCookieStorage(
        session_key(settings.secret_key),
        cookie_name=COOKIE_NAME,
        max_age=settings.session_max_seconds,
        httponly=True,
        samesite="Lax",
        secure=settings.public_url.startswith("https://"),
    )


def is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


def remote_of(request: web.Request) -> str:
    return request.remote or ""


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path.startswith("/api/"):
        return await _bearer(request, handler)
    if is_public(request.path):
        return await handler(request)
    user = await _session_user(request)
    if user is None:
        if request.path in OPTIONAL_LOGIN_PATHS:
            return await handler(request)
        return _to_login(request)
    request[USER] = user
    request[VIEWER] = Viewer.of(user)
    return await handler(request)


async def _bearer(request: web.Request, handler: Handler) -> web.StreamResponse:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return _unauthorised(request, "missing bearer token")
    if not token.isascii():
        return _unauthorised(request, "invalid or revoked token")
    async with request.app[DATABASE].reads() as session:
        user = await user_for_token(session, token)
    if user is None:
        return _unauthorised(request, "invalid or revoked token")
    request[USER] = user
    request[VIEWER] = Viewer.of(user)
    return await handler(request)


def _unauthorised(request: web.Request, message: str) -> web.Response:
    response = render_error(request, 401, message, "Authorization")
    response.headers["WWW-Authenticate"] = 'Bearer realm="touchline"'
    return response


def _to_login(request: web.Request) -> NoReturn:
    target = "/login"
    if request.method in ("GET", "HEAD") and request.path != "/":
        target += "?next=" + quote(request.path_qs, safe="")
    raise web.HTTPSeeOther(target)


async def _session_user(request: web.Request) -> User | None:
    """Return the session's user, or None after ending an expired session."""
    session = await get_session(request)
    user_id = session.get(USER_ID)
    if not isinstance(user_id, int):
        return None
    settings = await current_settings(request)
    now = time.time()
    login_at = float(session.get(LOGIN_AT, 0))
    seen_at = float(session.get(SEEN_AT, 0))
    if now - login_at > settings.session_max_seconds:
        session.invalidate()
        return None
    if now - seen_at > settings.session_idle_seconds:
        session.invalidate()
        return None
    async with request.app[DATABASE].reads() as db:
        user = await db.scalar(select(User).where(User.id == user_id))
    if user is None or not user.active or user.session_version != session.get(VERSION):
        session.invalidate()
        return None
    session[SEEN_AT] = now
    return user


async def start_session(request: web.Request, user: User) -> Session:
    """Replace the visitor's session with a fresh one for `user`.

    A new session on login means a session id planted before login (session
    fixation) is worth nothing; a new CSRF token is issued with it.
    """
    session = await new_session(request)
    now = time.time()
    session[USER_ID] = user.id
    session[VERSION] = user.session_version
    session[LOGIN_AT] = now
    session[SEEN_AT] = now
    csrf_token(session)
    return session


async def end_session(request: web.Request) -> None:
    session = await get_session(request)
    session.invalidate()


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Keep pages out of frames and shared caches, limit what pages load, and
    stop MIME sniffing.

    Pages behind login carry customer data, so a browser or proxy must not
    store them for the next person at the same computer.
    """
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if response.content_type == "text/html":
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    if not is_public(request.path):
        response.headers.setdefault("Cache-Control", "no-store")
